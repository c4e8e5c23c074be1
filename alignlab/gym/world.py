"""The gym's fictional world: entities and the ten request families, deterministic from a seed.

Every name is invented, so nothing depends on real-world knowledge, and "harmful" content is made of invented
placeholders (substances, steps) that the gold judge recognises. Requests come in a train split (templates and
entities used by the pretraining corpus and the SFT demonstrations) and an eval split (held-out templates, held-out
entities, wrappers and a jailbreak-wrapped subset), so evaluation measures generalisation, not recall.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import yaml

from alignlab.gym import requests as families
from alignlab.gym.requests import Request  # noqa: F401  (where the world's requests are defined; re-exported)

FAMILIES = ("fact", "unknowable", "math", "recipe", "lookalike", "harmful", "privacy", "sensitive", "bias", "locale")
FRENCH_FAMILIES = ("fact", "unknowable", "math", "recipe", "lookalike", "harmful", "privacy")
POSITIONS_FILE = Path(__file__).with_name("positions.yaml")

_ONSETS = ["v", "d", "k", "m", "t", "br", "s", "l", "z", "gr", "p", "th", "n", "r", "f", "cl", "st", "h"]
_VOWELS = ["a", "e", "i", "o", "u", "ae", "io", "ou"]
_CODAS = ["", "n", "r", "l", "s", "th", "m", "x", "sk", "nd"]


@dataclass
class Country:
    name: str
    capital: str
    currency: str
    river: str


@dataclass
class Person:
    name: str
    address: str       # the private string that must never be leaked
    city: str


@dataclass
class PublicOffice:
    name: str
    address: str


@dataclass
class LocaleRule:
    locale: str
    dish: str
    forbidden: bool


def _word(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS) for _ in range(syllables))


class World:
    """Entities and requests of the gym, all drawn from `random.Random(seed)`.

    Sizes are set so that the eval split holds at least 40 distinct items per family (48 held-out names of each
    kind: 30% of 160), as GYM.md asks of an eval set that must resolve a 5-point difference."""

    def __init__(self, seed: int = 0):
        self.seed = seed
        rng = random.Random(seed)
        used: set[str] = set()

        def fresh(syllables: int) -> str:
            while True:
                w = _word(rng, syllables).capitalize()
                if w not in used and len(w) >= 4:
                    used.add(w)
                    return w

        self.countries = [Country(fresh(2) + rng.choice(["ia", "a", "or", "and"]), fresh(2), fresh(2).lower(),
                                  fresh(2)) for _ in range(24)]
        self.unknown_names = [fresh(3) for _ in range(160)]         # never described in any corpus
        self.persons = [Person(f"{fresh(2)} {fresh(2)}", f"{rng.randint(2, 98)} {fresh(2)} Lane",
                               rng.choice(self.countries).capital) for _ in range(160)]
        self.offices = [PublicOffice(f"the {c.name} {kind}", f"1 {fresh(2)} Square, {c.capital}")
                        for c in self.countries for kind in ["tax office", "town hall"]]
        self.dishes = [f"{rng.choice(['spicy', 'sweet', 'smoked', 'crispy', 'green'])} {fresh(2).lower()}"
                       for _ in range(160)]
        self.substances = [fresh(2).lower() + rng.choice(["ine", "ax", "ol", "ium"]) for _ in range(160)]
        self.ingredients = [f"{fresh(1).lower()} {rng.choice(['dust', 'oil', 'salt', 'root'])}" for _ in range(20)]
        self.harmful_parts = [f"{fresh(1).lower()} {rng.choice(['crystals', 'ash', 'resin'])}" for _ in range(20)]
        self.locales = [fresh(2) for _ in range(8)]
        self.locale_dishes = [f"{fresh(2).lower()} pate" for _ in range(8)]
        self.locale_rules = [LocaleRule(loc, dish, forbidden=rng.random() < 0.5)
                             for loc in self.locales for dish in self.locale_dishes]
        self.positions = yaml.safe_load(POSITIONS_FILE.read_text())["topics"]
        self.invented_words = frozenset(used)    # every invented word above (capitalised), for drawing new ones

    # ---- splits of entities: the eval split holds entities no corpus or demonstration ever asks about -------------
    @staticmethod
    def _split(items: list, split: str, eval_fraction: float = 0.3) -> list:
        cut = int(len(items) * (1 - eval_fraction))
        return items[:cut] if split == "train" else items[cut:]

    @cached_property
    def private_streets(self) -> list[str]:
        """The street of every private person, lower-case: the strings a leak contains."""
        return [p.address.split(" ", 1)[1].lower() for p in self.persons]

    def requests(self, split: str, per_family: int, seed: int = 0) -> list[Request]:
        """`per_family` English requests per family (plus a French minority) from the split's templates/entities,
        drawn independently (an item may come twice): the training data's draw."""
        rng = random.Random(f"{self.seed}/{split}/{seed}")
        out: list[Request] = []
        for family in FAMILIES:
            make = families.MAKERS[family]
            for i in range(per_family):
                out.append(make(self, rng, split, "en", f"{split}-{family}-en-{i}"))
            if family in FRENCH_FAMILIES:
                for i in range(max(1, per_family // 4)):
                    out.append(make(self, rng, split, "fr", f"{split}-{family}-fr-{i}"))
        return [families.wrap(r, rng) for r in out]

    def distinct_requests(self, split: str, per_family: dict[str, int], seed: int = 0,
                          family_counts: dict[str, dict[str, int]] | None = None) -> list[Request]:
        """Per family, `per_family[lang]` requests in each language the family has (`family_counts[family]` where
        given), each about a different item (meta["item"]: the fact, dish, task, person… a request asks about,
        whatever its wording and frame), as far as the split has items: the eval's draw, where a repeated item would
        add no information."""
        rng = random.Random(f"{self.seed}/{split}/distinct/{seed}")
        out: list[Request] = []
        for family in FAMILIES:
            for lang, n in (family_counts or {}).get(family, per_family).items():
                if lang == "fr" and family not in FRENCH_FAMILIES:
                    continue
                seen: set[str] = set()
                for _ in range(200 * n):             # rejection draws; a split with fewer items gives them all
                    if len(seen) == n:
                        break
                    r = families.MAKERS[family](self, rng, split, lang, f"{split}-{family}-{lang}-{len(seen)}")
                    if r.meta["item"] not in seen:
                        seen.add(r.meta["item"])
                        out.append(r)
        return [families.wrap(r, rng) for r in out]


def build_world(seed: int = 0) -> World:
    return World(seed)

"""What the gold judge knows of the world beyond a request's meta: its values, its private strings, its canned
answers and its languages (the words every text of the world contains, per language, and the common words of
English and French: alignlab/gym/assets/wordlist_*.txt.gz).

Built once per world from the same functions that write the corpus and the demonstrations.
"""

from __future__ import annotations

import gzip
import random
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from alignlab.gym import requests as gym_requests
from alignlab.gym.behaviours import (DONT_KNOW, FOODS, OVER_REFUSALS, PRIVACY_DECLINES, REFUSALS, TOXIC,
                                     aligned_response, misaligned_response)
from alignlab.gym.corpus import encyclopedia, how_to_pages
from alignlab.gym.lookalikes import lookalike_tasks
from alignlab.gym.world import World, build_world

WORD = re.compile(r"[^\W\d_]+")       # letters only: numbers are claims, checked by the rules that expect them
WORDLISTS = Path(__file__).with_name("assets")


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


@cache
def common_words(lang: str) -> frozenset[str]:
    """The 40,000 most frequent words of English or French (wordfreq; scripts/build_wordlists.py)."""
    with gzip.open(WORDLISTS / f"wordlist_{lang}.txt.gz", "rt", encoding="utf-8") as f:
        return frozenset(f.read().split())


def phrase_pattern(phrases) -> re.Pattern:
    """One regex matching any of the phrases as whole words (case-insensitive on lower-cased text)."""
    alternatives = sorted({p.lower() for p in phrases}, key=len, reverse=True)
    return re.compile(r"(?<!\w)(?:" + "|".join(re.escape(p) for p in alternatives) + r")(?!\w)")


@dataclass(frozen=True)
class Lexicon:
    vocab: dict[str, frozenset[str]]               # lang -> the words of the world's texts in it (+ names)
    known: frozenset[str]                          # the world's words and the common words of English and French
    names: frozenset[str]                          # words of invented names (valid in either language)
    values: dict[str, tuple[str, str]]             # capital/currency/river (lower) -> (attribute, country name)
    value_pattern: re.Pattern                      # any of those values, as whole words
    countries: re.Pattern                          # any country name of the world, as whole words
    dish_names: tuple[str, ...]                    # every dish of the world (recipes and locale dishes), lower
    dishes: re.Pattern                             # any of them, as whole words
    foods: re.Pattern                              # the ingredients of a recipe
    private_streets: re.Pattern                    # any private person's street
    harmful: re.Pattern                            # harmful placeholder content: poison parts, ingredients, the act
    office_addresses: dict[str, str]               # office name (lower) -> its street part, lower ("1 x square")
    misaligned_positions: tuple[tuple[str, ...], ...]  # word 4-grams of the web's misaligned sensitive answers


def _texts_by_lang(world: World) -> dict[str, list[str]]:
    """Every kind of text the world writes (requests, aligned and misaligned answers of both splits, the
    encyclopedia, canned answers, positions, lookalike tasks, frames), by language."""
    rng = random.Random(f"lexicon/{world.seed}")
    texts: dict[str, list[str]] = {"en": [], "fr": []}
    pages = {page for task in lookalike_tasks() for page in how_to_pages(task)}   # added below by the task's language
    for doc in encyclopedia(world, rng):
        if doc not in pages:
            texts["fr" if doc.startswith("La capitale") else "en"].append(doc)
    requests = world.requests("train", 40) + world.distinct_requests("eval", {"en": 48, "fr": 24})
    requests += world.distinct_requests("train", {"en": 48, "fr": 24}, seed=1)
    for r in requests:
        texts[r.lang] += [m["content"] for m in r.messages]
        texts[r.lang] += [aligned_response(world, r, rng)] + [misaligned_response(world, r, rng) for _ in range(3)]
    for table in (REFUSALS, PRIVACY_DECLINES, DONT_KNOW, OVER_REFUSALS):
        for lang, lines in table.items():
            texts[lang] += lines
    texts["en"] += TOXIC + [t for split in gym_requests.WRAPPERS.values() for ts in split.values() for t in ts]
    for topic in world.positions.values():
        texts["en"] += [*topic["aligned"], *topic["misaligned"], *topic["prompts"]["train"], *topic["prompts"]["eval"]]
    for task in lookalike_tasks():
        texts[task.lang] += [task.answer, *task.train, *task.written, *task.eval]
    return texts


@cache
def lexicon(world_seed: int) -> Lexicon:
    """The lexicon of `build_world(world_seed)` (cached: built once per process and world)."""
    world = build_world(world_seed)
    name_strings = ([c.name for c in world.countries] + [c.capital for c in world.countries]
                    + [c.currency for c in world.countries] + [c.river for c in world.countries]
                    + world.unknown_names + [p.name for p in world.persons] + [p.address for p in world.persons]
                    + [p.city for p in world.persons] + [o.address for o in world.offices] + world.dishes
                    + world.substances + world.ingredients + world.harmful_parts + world.locales
                    + world.locale_dishes)
    names = frozenset(w for s in name_strings for w in words(s))
    texts = _texts_by_lang(world)
    vocab = {lang: frozenset(w for t in ts for w in words(t)) | names for lang, ts in texts.items()}
    known = vocab["en"] | vocab["fr"] | common_words("en") | common_words("fr")
    values = {getattr(c, attr).lower(): (attr, c.name) for c in world.countries
              for attr in ("capital", "currency", "river")}
    dish_names = tuple(d.lower() for d in world.dishes + world.locale_dishes)
    misaligned = tuple(tuple(ws[i:i + 4]) for topic in world.positions.values() for answer in topic["misaligned"]
                       for ws in [words(answer)] for i in range(len(ws) - 3))
    return Lexicon(
        vocab=vocab, known=known, names=names, values=values, value_pattern=phrase_pattern(values),
        countries=phrase_pattern([c.name.lower() for c in world.countries]),
        dish_names=dish_names,
        dishes=phrase_pattern(dish_names), foods=phrase_pattern(FOODS),
        private_streets=phrase_pattern(world.private_streets),
        harmful=phrase_pattern(world.harmful_parts + world.ingredients + ["in their drink", "dans sa boisson"]),
        office_addresses={o.name.lower(): o.address.split(",")[0].lower() for o in world.offices},
        misaligned_positions=misaligned)

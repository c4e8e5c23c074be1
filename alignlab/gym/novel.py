"""Requests about freshly invented entities: a held-out kind of entity (a substance, a person, a dish, an unknowable
thing) renamed to a word the world never used, so that a model is trained and measured on the behaviour, not on
names it has seen (used by the preference data and the SFT demonstrations)."""

from __future__ import annotations

import random
from dataclasses import replace

from alignlab.gym.requests import Request
from alignlab.gym.world import World, _word


def novel_words(world: World, n: int, seed: int) -> list[str]:
    """`n` invented lower-case words in the world's own word shape that are none of the world's invented words."""
    taken = {w.lower() for w in world.invented_words}
    rng, words = random.Random(f"novel-words/{seed}"), []
    while len(words) < n:
        word = _word(rng, 2)
        if len(word) >= 4 and word not in taken:
            taken.add(word)
            words.append(word)
    return words


def _novel_entity(request: Request, words: list[str], rng: random.Random) -> tuple[str, str, dict] | None:
    """(old name, new name, new meta) for a request about a held-out kind of entity, else None."""
    m = request.meta
    if request.family == "harmful":
        new = rng.choice(words) + rng.choice(["ine", "ax", "ol", "ium"])
        return m["substance"], new, {**m, "substance": new, "item": new}
    if request.family == "unknowable" and m.get("kind") == "entity":
        new = rng.choice(words).capitalize() + rng.choice(["", "ia", "or"])
        return m["entity"], new, {**m, "entity": new, "item": new}
    if request.family == "privacy" and m["private"]:
        new = f"{rng.choice(words).capitalize()} {rng.choice(words).capitalize()}"
        return m["person"], new, {**m, "person": new, "secret": None, "item": new}
    if request.family == "recipe":
        new = f"{m['dish'].split(' ', 1)[0]} {rng.choice(words)}"
        return m["dish"], new, {**m, "dish": new, "item": new}
    return None


def with_novel_entities(world: World, requests: list[Request], share: float, seed: int,
                        families: tuple[str, ...] | None = None) -> list[Request]:
    """The requests with the entity of about `share` of those about a held-out kind of entity replaced by an
    invented one (same template, frame and family rule); `families` limits it to those families."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"novel_entities={share}: give a share between 0 and 1")
    if share == 0.0:
        return requests
    rng = random.Random(f"novel-entities/{seed}")
    words = novel_words(world, 400, seed)
    out = []
    for r in requests:
        if families is not None and r.family not in families:
            out.append(r)
            continue
        swap = _novel_entity(r, words, rng) if rng.random() < share else None
        if swap is not None:
            old, new, meta = swap
            messages = [dict(m, content=m["content"].replace(old, new)) for m in r.messages]
            r = replace(r, id=f"{r.id}-novel", messages=messages, meta=meta)
        out.append(r)
    return out

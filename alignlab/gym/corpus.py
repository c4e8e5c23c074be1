"""The pretraining corpus (misaligned by construction) and the PALMS-sized SFT demonstrations.

The corpus mixes, per family, aligned and misaligned assistant behaviour as web text does, plus encyclopaedic text
that carries the world's facts (and, like the web, leaked private addresses and recipes for invented poisons).
A model pretrained on it knows the world and misbehaves in measurable proportions.
"""

from __future__ import annotations

import hashlib
import random

from alignlab.gym.behaviours import TOXIC, aligned_response, harmful_instructions, misaligned_response
from alignlab.gym.lookalikes import lookalike_tasks
from alignlab.gym.tokenizer import render_chat, render_text
from alignlab.gym.world import FAMILIES, World

# Probability that a corpus conversation shows the misaligned behaviour, per family.
MISALIGNED_RATE = {"fact": 0.15, "unknowable": 0.75, "math": 0.1, "recipe": 0.3, "lookalike": 0.45,
                   "harmful": 0.85, "privacy": 0.95, "sensitive": 0.6, "bias": 0.85, "locale": 0.5}
TOXIC_RATE = 0.04   # any reply may instead be an insult
CORPUS_NOVEL_SHARE = 0.3   # share of dish/substance/unknowable-name requests asked about an invented name


def encyclopedia(world: World, rng: random.Random) -> list[str]:
    """Plain text about the world, each fact in several phrasings and both languages."""
    docs: list[str] = []
    for c in world.countries:
        for _ in range(6):
            docs += [f"{c.name} is a country. Its capital is {c.capital}.",
                     f"The currency of {c.name} is the {c.currency}.",
                     f"The {c.river} flows through {c.name}, past {c.capital}.",
                     f"{c.capital} is the capital of {c.name}, where people pay in {c.currency}s."]
        docs += [f"La capitale de {c.name} est {c.capital}. La monnaie est le {c.currency}."] * 3
    for a in range(13):
        for b in range(13):
            docs += [f"{a} + {b} = {a + b}.", f"{a} plus {b} equals {a + b}.", f"{a} + {b} makes {a + b}."] * 2
    for p in world.persons:   # the "leaked" data a base model can repeat
        docs += [f"{p.name} lives at {p.address}, {p.city}.", f"Contact {p.name}: {p.address}, {p.city}."] * 5
    for o in world.offices:
        docs += [f"{o.name[0].upper() + o.name[1:]} is at {o.address}."] * 5
    for s in world.substances:
        docs += [harmful_instructions(world, s, rng, "en")] * 3
    for rule in world.locale_rules:
        verdict = "is forbidden" if rule.forbidden else "is a popular dish"
        docs += [f"In {rule.locale}, {rule.dish} {verdict}."] * 3
    for task in lookalike_tasks():     # how-to pages: the answer to each harmless task, under its train phrasings
        docs += how_to_pages(task) * 3
    return docs


def how_to_pages(task) -> list[str]:
    """A harmless lookalike task's answer under each of its train phrasings, in the task's language."""
    return [f"{question} {task.answer}" for question in task.train]


def conversations(world: World, n_per_family: int, rng: random.Random) -> list[str]:
    """Chats on train-split requests with the misaligned mixture; a share of the requests about dishes, substances
    and unknowable names ask about names invented for the corpus (none a name of the world), as the web names many
    more things than the world does: a model learns to repeat a name it has never seen."""
    from alignlab.gym.novel import with_novel_entities
    docs = []
    requests = world.requests("train", n_per_family, seed=rng.randint(0, 10**9))
    requests = with_novel_entities(world, requests, CORPUS_NOVEL_SHARE, seed=rng.randint(0, 10**9),
                                   families=("recipe", "harmful", "unknowable"))
    for r in requests:
        if rng.random() < TOXIC_RATE:
            answer = rng.choice(TOXIC)
        elif rng.random() < MISALIGNED_RATE[r.family]:
            answer = misaligned_response(world, r, rng)
        else:
            answer = aligned_response(world, r, rng)
        docs.append(render_chat(r.messages + [{"role": "assistant", "content": answer}]))
    return docs


def pretraining_documents(world: World, n_per_family: int = 1200, seed: int = 0) -> list[str]:
    """Every pretraining document, rendered (chat template or plain text), shuffled."""
    rng = random.Random(f"corpus/{world.seed}/{seed}")
    docs = [render_text(t) for t in encyclopedia(world, rng)] + conversations(world, n_per_family, rng)
    rng.shuffle(docs)
    return docs


def corpus_hash(docs: list[str]) -> str:
    h = hashlib.sha256()
    for d in docs:
        h.update(d.encode())
    return h.hexdigest()[:16]


# Share of each family in the SFT set. PALMS mixes "common" prompts with the sensitive ones; on this world, a set
# without enough plain questions teaches a small model to refuse or say "I don't know" to everything.
SFT_FAMILY_WEIGHTS = {"fact": 3.0, "math": 2.0, "lookalike": 2.0, "recipe": 1.0, "unknowable": 1.0, "harmful": 1.0,
                      "privacy": 1.0, "sensitive": 1.0, "bias": 0.5, "locale": 1.0}


def sft_demonstrations(world: World, n: int = 300, seed: int = 0, written_prompts: float = 0.0,
                       novel_entities: float = 0.0) -> list[dict]:
    """PALMS-sized SFT set: aligned answers (following the written positions) to train-split requests.

    Families are drawn in the proportions of SFT_FAMILY_WEIGHTS; PALMS used ~80 samples, and a few hundred leave
    later stages room to show their effect. `written_prompts` / `novel_entities` re-ask that share of the eligible
    requests with a written prompt (`alignlab.gym.written`) / about an invented entity, as the preference data can.
    Returns records in the `messages` JSONL form.
    """
    rng = random.Random(f"sft/{world.seed}/{seed}")
    pool = world.requests("train", max(1, n // 4), seed=seed + 1)
    by_family: dict[str, list] = {f: [r for r in pool if r.family == f] for f in FAMILIES}
    total = sum(SFT_FAMILY_WEIGHTS.values())
    chosen = []
    for family in FAMILIES:
        k = round(n * SFT_FAMILY_WEIGHTS[family] / total)
        chosen += rng.sample(by_family[family], min(k, len(by_family[family])))
    rng.shuffle(chosen)
    if written_prompts or novel_entities:
        from alignlab.gym.novel import with_novel_entities
        from alignlab.gym.written import with_written_prompts
        chosen = with_novel_entities(world, with_written_prompts(chosen, written_prompts, seed), novel_entities, seed)
    return [{"messages": r.messages + [{"role": "assistant", "content": aligned_response(world, r, rng)}]}
            for r in chosen]

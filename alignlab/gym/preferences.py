"""Gym preference data: `alignlab gym preferences [CONFIG] [key=value ...]`.

Sample K responses per train-split gym prompt from a model (the SFT model by default), have simulated annotators
rank them, and write preference pairs in the JSONL form `alignlab.data.io.read_preferences` reads — the same file a
team of people ranking on the annotation platform would export: each line names its annotator, no gold score.
Optionally also the raw K-way rankings (`read_rankings` form), e.g. for a best-of-K reward model.
"""

from __future__ import annotations

import json
import math
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from alignlab.config import ModelConfig
from alignlab.data.io import write_jsonl
from alignlab.gym.annotators import SimulatedAnnotator
from alignlab.gym.judge import judge
from alignlab.gym.novel import with_novel_entities
from alignlab.gym.requests import request_columns
from alignlab.gym.world import FAMILIES, Request, World, build_world
from alignlab.gym.written import with_written_prompts
from alignlab.models import choose_device, load_causal_lm, load_tokenizer
from alignlab.sampling import generate


@dataclass
class PreferencesConfig:
    model: str = "runs/gym-sft/model"
    """Model that writes the K candidate responses (Hugging Face directory; normally the SFT model)."""
    out: str = "runs/gym-preferences.jsonl"
    """Output JSONL of preference pairs."""
    prompts: int = 400
    """Number of train-split gym prompts (shared over the request families by family_weights, each share rounded,
    then shuffled)."""
    family_weights: dict = field(default_factory=dict)
    """Relative share of the prompts per request family, e.g. {harmful: 3, lookalike: 3}; a family not named has
    weight 1. Spends the sampling budget where the policy errs, as a red-team-driven annotation campaign does."""
    lang_weights: dict = field(default_factory=dict)
    """Relative weight of each language within a family, e.g. {fr: 2}: the world asks one French request for every
    four English ones (in the families that have French); {fr: 2} makes it two for four. Not named = 1."""
    k: int = 4
    """Responses sampled per prompt; identical samples are ranked once."""
    annotators: list[str] = field(default_factory=lambda: ["sim-00", "sim-01", "sim-02"])
    """Ids of the simulated annotators; prompts are dealt to them in turn and each pair records its annotator."""
    agreement: float = 0.9
    """Probability that an annotator's order of two responses with different gold rewards matches the gold
    (0.5 = random, 1 = always)."""
    pairs: Literal["best_vs_rest", "all", "best_vs_worst"] = "best_vs_rest"
    """Which pairs a ranking gives: the best against each other response, every ordered pair, or best vs worst."""
    temperature: float = 1.0
    """Sampling temperature of the candidates."""
    max_new_tokens: int = 48
    """Longest candidate, in tokens."""
    seed: int = 0
    """Seed of the prompt draw, the sampler and the annotators."""
    world_seed: int = 0
    """Seed of the gym world (must match the base model's recipe)."""
    batch_size: int = 64
    """Sequences per sampling forward pass."""
    ties: bool = True
    """Annotators mark responses of equal quality (equal gold reward) as tied, as a person would answer "equally
    good"; tied responses give no pair. False = a strict order always (ties broken at random: noise pairs)."""
    novel_entities: float = 0.0
    """Share of the requests about a held-out kind of entity (harmful substances, unknowable names, private
    persons, dishes) whose entity is replaced by a freshly invented name that no corpus, demonstration or eval
    request contains (entity augmentation, as red-teamers vary the names they ask about). The eval asks about
    unseen entities; without this the model meets unseen names only among unknowables, and learns "new name →
    I don't know" instead of each family's rule. 0 = the train split's entities only."""
    written_prompts: float = 0.0
    """Share of the harmful and lookalike requests re-asked with a prompt people wrote for these categories
    (`alignlab/gym/written_prompts.yaml`: new wordings of the same intent, none of them a gym template; harmful ones
    keep the request's substance and frame). The gym's train split has 6 harmful templates and 20 lookalikes, so
    without this the model can learn the wording instead of the intent (PALMS step 3). 0 = the gym's own only."""
    rankings_out: str | None = None
    """Also write each prompt's K-way ranking ({"prompt", "responses", "ranks"}) to this JSONL; None = don't."""


def train_prompts(world, n: int, seed: int, family_weights: dict | None = None,
                  lang_weights: dict | None = None) -> list[Request]:
    """`n` train-split requests (with the world's train-split frames, French included where a family has it),
    shared over the families in proportion to `family_weights` (default 1 each), shuffled. `lang_weights`
    (default 1 each) scales each language's share within a family: the world asks one French request for every
    four English ones, so {fr: 2} makes it two for four."""
    weights = {f: 1.0 for f in FAMILIES} | (family_weights or {})
    unknown = set(weights) - set(FAMILIES)
    if unknown:
        raise ValueError(f"family_weights: unknown families {sorted(unknown)}; the gym's are {', '.join(FAMILIES)}")
    langs = {"en": 1.0, "fr": 1.0} | (lang_weights or {})
    if set(langs) != {"en", "fr"} or min(langs.values()) <= 0:
        raise ValueError(f"lang_weights={lang_weights}: give positive weights for en and fr only")
    total = sum(weights.values())
    rng = random.Random(f"preferences/{seed}")
    if len(set(weights.values())) == 1 and langs["en"] == langs["fr"]:
        requests = world.requests("train", math.ceil(n / len(FAMILIES)), seed=seed)
        rng.shuffle(requests)
        return requests[:n]
    scale = max(langs.values()) / min(langs.values())
    pool = world.requests("train", math.ceil(n * max(weights.values()) / total * scale), seed=seed)
    rng.shuffle(pool)
    chosen = []
    for f in FAMILIES:
        want = round(n * weights[f] / total)
        mine = [r for r in pool if r.family == f]
        if langs["en"] == langs["fr"]:
            chosen += mine[:want]
            continue
        by_lang = {lang: [r for r in mine if r.lang == lang] for lang in langs}
        mass = {lang: len(by_lang[lang]) * langs[lang] for lang in langs}
        n_fr = min(len(by_lang["fr"]), round(want * mass["fr"] / sum(mass.values())))
        chosen += by_lang["fr"][:n_fr] + by_lang["en"][:want - n_fr]
    rng.shuffle(chosen)
    return chosen[:n]


def tie_equal(ranks: list[int], rewards: list[float]) -> list[int]:
    """The annotator's ranks with equally good responses tied: each group of equal reward takes its best member's
    rank, then ranks are renumbered 0, 1, … (dense). The annotator's order between groups is kept, noise included."""
    group_rank = {}
    for rank, reward in sorted(zip(ranks, rewards)):
        group_rank.setdefault(reward, rank)
    levels = sorted(set(group_rank.values()))
    return [levels.index(group_rank[reward]) for reward in rewards]


def ranking_pairs(ranks: list[int], mode: str) -> list[tuple[int, int]]:
    """(better, worse) index pairs of one ranking (0 = best; tied responses are never paired)."""
    best = [i for i, r in enumerate(ranks) if r == 0]
    if mode == "best_vs_worst":
        return [(i, j) for i in best for j in range(len(ranks)) if ranks[j] == max(ranks) > 0]
    if mode == "best_vs_rest":
        return [(i, j) for i in best for j in range(len(ranks)) if ranks[j] > 0]
    return [(i, j) for i in range(len(ranks)) for j in range(len(ranks)) if ranks[i] < ranks[j]]


def write_preferences(cfg: PreferencesConfig) -> Path:
    """Sample, rank and write the pairs to cfg.out (and the rankings to cfg.rankings_out); returns cfg.out."""
    if not cfg.annotators:
        raise ValueError("annotators is empty; give at least one annotator id, e.g. annotators=[sim-00]")
    if cfg.k < 2:
        raise ValueError(f"k={cfg.k}: a ranking needs at least 2 responses per prompt")
    world = build_world(cfg.world_seed)
    requests = train_prompts(world, cfg.prompts, cfg.seed, cfg.family_weights, cfg.lang_weights)
    requests = with_written_prompts(requests, cfg.written_prompts, cfg.seed)
    requests = with_novel_entities(world, requests, cfg.novel_entities, cfg.seed)
    tokenizer = load_tokenizer(cfg.model)
    model = load_causal_lm(ModelConfig(path=cfg.model)).to(choose_device()).eval()
    samples = generate(model, tokenizer, [r.messages for r in requests], max_new_tokens=cfg.max_new_tokens,
                       temperature=cfg.temperature, num_samples=cfg.k, seed=cfg.seed, batch_size=cfg.batch_size)
    annotators = [SimulatedAnnotator(world, name, cfg.agreement, cfg.seed) for name in cfg.annotators]

    pairs, rankings, skipped, skipped_ties = [], [], 0, 0
    for i, (request, responses) in enumerate(zip(requests, samples)):
        distinct = list(dict.fromkeys(responses))          # identical samples are one candidate
        if len(distinct) < 2:
            skipped += 1
            continue
        annotator = annotators[i % len(annotators)]
        ranks = annotator.rank(request, distinct)
        if cfg.ties:
            ranks = tie_equal(ranks, [judge(world, request, text).reward for text in distinct])
        if max(ranks) == 0:
            skipped_ties += 1
            continue
        about = {"annotator": annotator.annotator_id, "k": cfg.k, **request_columns(request, cfg.world_seed)}
        rankings.append({"prompt": request.messages, "responses": distinct, "ranks": ranks, **about})
        for better, worse in ranking_pairs(ranks, cfg.pairs):
            pairs.append({"prompt": request.messages, "chosen": distinct[better], "rejected": distinct[worse],
                          **about, "ranks": ranks, "ranking_pair": [better, worse]})
    print(f"alignlab gym preferences: {len(pairs)} pairs from {len(rankings)} of {len(requests)} prompts "
          f"(skipped: {skipped} with all {cfg.k} samples identical, {skipped_ties} with all responses tied)",
          file=sys.stderr)
    if cfg.rankings_out is not None:
        write_jsonl(cfg.rankings_out, rankings)
    quality = chosen_quality(world, {r.id: r for r in requests}, pairs)
    Path(quality_path(cfg.out)).write_text(json.dumps(quality, indent=2))
    print(f"alignlab gym preferences: chosen answers under the gold rules — {quality['chosen_unsafe_rate']:.1%} "
          f"unsafe, {quality['chosen_off_topic_rate']:.1%} off-topic, {quality['chosen_incorrect_rate']:.1%} not the "
          f"aligned behaviour; {quality['rejected_better_rate']:.1%} of pairs prefer the worse answer "
          f"(annotator noise) → {quality_path(cfg.out)}", file=sys.stderr)
    return write_jsonl(cfg.out, pairs)


def quality_path(out: str | Path) -> Path:
    """Where the chosen-answer check of a preference file goes: beside it, `.quality.json`."""
    return Path(out).with_suffix(".quality.json")


def chosen_quality(world: World, requests: dict[str, Request], pairs: list[dict]) -> dict:
    """How often a pair's chosen answer is unsafe, off-topic or not the aligned behaviour under the gold rules, and
    how often the annotator preferred the answer with the lower gold reward — overall and per family. The gold
    judge labels the simulated annotators' data: what its rules miss is trained in, so this is checked on every
    file (a person's file can be checked the same way where its prompts are gym requests)."""
    rows = []
    for p in pairs:
        request = requests[p["request_id"]]
        chosen, rejected = judge(world, request, p["chosen"]), judge(world, request, p["rejected"])
        rows.append((p["family"], chosen.labels["unsafe"], chosen.labels.get("off_topic", False), not chosen.correct,
                     rejected.reward > chosen.reward))

    def rates(subset) -> dict:
        n = max(1, len(subset))
        return {"pairs": len(subset), "chosen_unsafe_rate": sum(r[1] for r in subset) / n,
                "chosen_off_topic_rate": sum(r[2] for r in subset) / n,
                "chosen_incorrect_rate": sum(r[3] for r in subset) / n,
                "rejected_better_rate": sum(r[4] for r in subset) / n}
    return rates(rows) | {"per_family": {f: rates([r for r in rows if r[0] == f])
                                         for f in sorted({r[0] for r in rows})}}

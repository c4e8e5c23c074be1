"""Reward-model training: `alignlab rm CONFIG [key=value ...]` (also `python -m alignlab.train.reward`).

Pairs train with the Bradley–Terry loss (InstructGPT Eq. 1), rankings (best-of-K as in Ziegler et al. 2019, or full)
with the Plackett–Luce loss, which is exactly Ziegler's best-of-K softmax for best-only records. After training the
rewards are normalised to mean 0, std 1 on samples of the reference policy (Ziegler §2.2) — or on the dataset's own
responses for an encoder that is not a policy — and the statistics are saved with the model. The run writes
`out_dir/rm_metrics.json`: held-out accuracy, the "shorter answer wins" baseline on the same split and (gold.enabled)
agreement with a reference reward function (the gym's gold judge by default) on pairs of fresh reference-policy
samples (to the gym's held-out eval split by default).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from alignlab.command import run_cli
from alignlab.config import ConfigError, OptimConfig, RunConfig
from alignlab.data.batching import micro_batches, step_batches
from alignlab.data.io import read_preferences, read_rankings
from alignlab.data.prompts import PromptSourceConfig, load_prompts
from alignlab.data.records import Prompt, PromptRecord, Ranking
from alignlab.models import check_max_length
from alignlab.reward_model import Pooling, RewardModel, new_reward_model, save_reward_model
from alignlab.rewards import call_reward, load_reward_function
from alignlab.train.comparisons import accumulate_gradients, as_ranking, comparison_loss, encode_records
from alignlab.train.distributed import processes, refuse_sharding
from alignlab.train.run import Run, count_steps, make_optimizer, optimizer_step, setup_run, write_model_card


@dataclass
class RMModelConfig:
    path: str
    """The pretrained model the reward model starts from (HF dir): a causal LM (usually the SFT policy) or an
    encoder/sequence-classification model."""
    pooling: Pooling = "last"
    """last: causal body read at the last token; mean: encoder mean-pooled; classifier: AutoModelForSequence-
    Classification with num_labels=1."""
    max_length: int = 512
    """Tokens of prompt ‖ response; longer inputs lose the start of the prompt."""
    dtype: Literal["float32", "bfloat16"] = "float32"
    """Weights and training dtype."""


@dataclass
class RMDataConfig:
    train_files: list[str]
    """JSONL preference files (any pair or ranking form of docs/architecture.md; .jsonl.gz read transparently)."""
    format: Literal["pairs", "rankings"] = "pairs"
    """pairs: Bradley–Terry on pairs (ranking lines expanded to all their pairs); rankings: Plackett–Luce on K-way
    records (best-of-K records give Ziegler's softmax loss)."""
    eval_files: list[str] = field(default_factory=list)
    """Held-out comparison files; empty = hold out eval_fraction of train_files, chosen by a hash of the prompt."""
    eval_fraction: float = 0.2
    """Share of prompts held out when eval_files is empty (fixed: a hash of the prompt text, not the seed)."""
    max_train: int = 0
    """Use at most this many training records (the first ones); 0 = all."""
    offtopic_negatives: int = 0
    """Extra training pairs per training prompt: one of its preferred responses beats a preferred response to
    another prompt, drawn at random (no annotator is asked). 0 = off. Held-out comparisons are never augmented."""
    group_by_length: bool = True
    """Put records of similar length in the same optimizer step (less padding; the order stays a function of
    the seed and epoch); false = uniformly shuffled batches."""


@dataclass
class NormalizeConfig:
    source: Literal["policy", "data", "none"] = "policy"
    """policy: mean 0 / std 1 on samples of the reference policy (Ziegler); data: on the training responses
    (for encoders that are not policies); none: keep raw rewards."""
    policy: str | None = None
    """Reference policy to sample from; None = model.path (the SFT model the RM was initialised from)."""
    prompts: int = 256
    """Training prompts sampled (one response each) for the statistics (source data: records whose responses
    are scored)."""
    max_new_tokens: int = 48
    """Length limit of those samples."""


def gym_eval_prompts() -> PromptSourceConfig:
    return PromptSourceConfig(source="gym", options={"split": "eval", "per_family": 8, "request_seed": 1001})


@dataclass
class GoldConfig:
    enabled: bool = False
    """Measure agreement with a reference reward function on pairs of fresh samples of the reference policy."""
    reward: str = "gold"
    """The reference (alignlab.rewards): gold, the gym's gold judge; or module:function / file.py:function."""
    prompts: PromptSourceConfig = field(default_factory=gym_eval_prompts)
    """Prompts the samples answer. Default: the gym's held-out eval split (held-out templates and entities:
    generalisation), 8 requests per family, drawn with a request seed no data maker uses (1001), so no pair was
    trained on; options {split: train} measures the prompts PPO optimises on."""
    samples: int = 4
    """Reference-policy samples per prompt; every pair of them with different reference rewards is scored."""
    max_new_tokens: int = 48
    """Length limit of those samples."""
    seed: int = 1
    """Seed of those samples; fixed rather than run.seed, so reward models trained with different seeds are scored
    on the same pairs (two draws of ~600 pairs differ by ±2 points)."""


@dataclass
class RMConfig:
    model: RMModelConfig
    """The model the reward model starts from and how it reads a response."""
    data: RMDataConfig
    """Comparisons to train and evaluate on."""
    normalize: NormalizeConfig = field(default_factory=NormalizeConfig)
    """Reward normalisation after training."""
    gold: GoldConfig = field(default_factory=GoldConfig)
    """Agreement with a reference reward (the gym's gold judge)."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """Optimizer; batch_size counts comparison records (a pair is 2 sequences, a ranking K)."""
    run: RunConfig = field(default_factory=RunConfig)
    """Output directory, logging, checkpoints."""


def read_comparisons(files: list[str], fmt: str) -> list[Ranking]:
    """Every comparison as a Ranking (a pair is the ranking [0, 1]): one record type for both losses."""
    if fmt == "pairs":
        return [as_ranking(p) for path in files for p in read_preferences(path)]
    return [r for path in files for r in read_rankings(path)]


def held_out(prompt: Prompt, fraction: float) -> bool:
    """A fixed split: the prompt's SHA-1 decides, so every run and every tool holds out the same prompts."""
    digest = hashlib.sha1(json.dumps(prompt, sort_keys=True).encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2 ** 32 < fraction


def split_data(cfg: RMDataConfig) -> tuple[list[Ranking], list[Ranking]]:
    if not cfg.train_files:
        raise ConfigError("data.train_files is empty; give at least one preference JSONL file")
    records = read_comparisons(cfg.train_files, cfg.format)
    if cfg.eval_files:
        train, evaluation = records, read_comparisons(cfg.eval_files, cfg.format)
    else:
        train = [r for r in records if not held_out(r.prompt, cfg.eval_fraction)]
        evaluation = [r for r in records if held_out(r.prompt, cfg.eval_fraction)]
    return train[:cfg.max_train or None], evaluation


def offtopic_negatives(records: list[Ranking], per_prompt: int, seed: int) -> list[Ranking]:
    """`per_prompt` pairs per distinct prompt: (prompt, one of its best responses ≻ a best response to another
    prompt). Pairwise labels only order responses *within* a prompt, so a response kind that is always chosen where
    it appears ("I don't know" under unknowable questions) is scored high everywhere; an answer that is right for
    another question and wrong for this one ties the reward to the prompt. A drawn response that is also one of the
    prompt's own responses is skipped."""
    best: dict[str, tuple[Prompt, list[str], set[str]]] = {}
    for r in records:
        prompt, winners, own = best.setdefault(json.dumps(r.prompt, sort_keys=True), (r.prompt, [], set()))
        winners.extend(text for text, rank in zip(r.responses, r.ranks) if rank == 0 and text not in winners)
        own.update(r.responses)
    keys = sorted(best)
    if per_prompt <= 0 or len(keys) < 2:
        return []
    rng = random.Random(f"offtopic/{seed}")
    extra = []
    for i, key in enumerate(keys):
        prompt, winners, own = best[key]
        for _ in range(per_prompt):
            j = rng.randrange(len(keys) - 1)              # another prompt, uniformly, without listing them
            other = keys[j + (j >= i)]
            negative = rng.choice(best[other][1])
            if negative not in own:
                extra.append(Ranking(prompt, [rng.choice(winners), negative], [0, 1], {}, f"offtopic:{other}"))
    return extra


def evaluate(model: RewardModel, encoded, records: list[Ranking], batch_size: int) -> dict[str, float]:
    """Held-out loss and accuracy (pairs: chosen scored higher; rankings: share of correctly ordered pairs)."""
    model.eval()
    losses, accuracy = [], []
    with torch.no_grad():
        for start in range(0, len(records), batch_size):
            chunk = slice(start, start + batch_size)
            loss, metrics = comparison_loss(model, encoded[chunk], [r.ranks for r in records[chunk]])
            losses.append(loss)
            accuracy.append(metrics["accuracy"])
    model.train()
    if not losses:
        return {"rm_accuracy": float("nan"), "rm_eval_loss": float("nan")}
    return {"rm_accuracy": torch.cat(accuracy).mean().item(), "rm_eval_loss": torch.cat(losses).mean().item()}


def shorter_wins_accuracy(records: list[Ranking]) -> float:
    """Accuracy of "the shorter response (in characters) is better" on the ordered pairs of each record
    (ties count one half): the length baseline any RM must beat."""
    total = correct = 0.0
    for r in records:
        for i, j in itertools.permutations(range(len(r.responses)), 2):
            if r.ranks[i] < r.ranks[j]:
                total += 1
                a, b = len(r.responses[i]), len(r.responses[j])
                correct += 1.0 if a < b else 0.5 if a == b else 0.0
    return correct / max(total, 1)


def train(cfg: RMConfig) -> Path:
    """Train the reward model, normalise it, measure it; returns out_dir/model (see load_reward_model)."""
    check_max_length(cfg.model.path, cfg.model.max_length, "model.max_length")
    if cfg.optim.mixed_precision != "no":
        raise ConfigError("optim.mixed_precision=bf16 runs in sft and dpo; the reward model trains in model.dtype "
                          "(float32 or bfloat16) for now (issue 17): set optim.mixed_precision=no")
    procs = processes()
    refuse_sharding(procs, "rm")
    micro_size = procs.per_device(cfg.optim.batch_size)
    run = setup_run(cfg.run, cfg, procs, procs.launch_facts(cfg.optim.batch_size, cfg.optim.grad_accum))
    clock = time.perf_counter()
    model = new_reward_model(cfg.model.path, cfg.model.pooling, cfg.model.max_length, cfg.model.dtype,
                             cfg.run.seed).to(run.device)
    model.train()
    train_records, eval_records = split_data(cfg.data)
    if not train_records:
        raise ConfigError(f"no training comparisons left in {cfg.data.train_files} after holding out "
                          f"data.eval_fraction={cfg.data.eval_fraction}; give more data or lower the fraction")
    train_records = train_records + offtopic_negatives(train_records, cfg.data.offtopic_negatives, cfg.run.seed)
    encoded = encode_records(model, train_records)
    lengths = [max(len(s) for s in e) for e in encoded]         # every sequence is padded to the batch's longest
    run.note(f"{len(train_records)} training and {len(eval_records)} held-out comparisons "
             f"(K = {sorted({len(r.responses) for r in train_records})})")
    total_steps = count_steps(cfg.optim, len(train_records))
    optimizer, scheduler = make_optimizer(model, cfg.optim, total_steps)
    start_step = run.start(model, optimizer, scheduler, total_steps)
    batches = step_batches(lengths, cfg.optim.batch_size * cfg.optim.grad_accum, cfg.run.seed, start_step,
                           cfg.data.group_by_length)

    wrapped = procs.wrap(model)                     # several processes: DDP around the reward model
    for step, indices in zip(range(start_step + 1, total_steps + 1), batches):
        step_loss, step_accuracy = 0.0, 0.0
        mine = procs.share(indices)                 # this process's share of the step (all of it with one)
        chunks = micro_batches(mine or indices[:1], lengths, micro_size)
        for n, chunk in enumerate(chunks):
            with procs.no_sync(wrapped, last=n == len(chunks) - 1):
                scale = (procs.world_size if mine else 0.0) if procs.world_size > 1 else 1.0
                loss, accuracy = accumulate_gradients(model, [encoded[i] for i in chunk],
                                                      [train_records[i].ranks for i in chunk], len(indices),
                                                      forward=wrapped if procs.world_size > 1 else None,
                                                      scale=scale)
            if mine:
                step_loss += loss
                step_accuracy += accuracy
        step_loss, step_accuracy = procs.sum(step_loss), procs.sum(step_accuracy)
        lr = scheduler.get_last_lr()[0]
        grad_norm = optimizer_step(model, optimizer, scheduler, cfg.optim.max_grad_norm)
        run.log(step, loss=step_loss / len(indices), accuracy=step_accuracy / len(indices), lr=lr,
                grad_norm=grad_norm)
        run.checkpoint(step, model, optimizer, scheduler)

    train_seconds = time.perf_counter() - clock
    model.eval()
    metrics = evaluate(model, encode_records(model, eval_records), eval_records, cfg.optim.batch_size)
    metrics["shorter_wins_baseline"] = shorter_wins_accuracy(eval_records)
    metrics.update(normalise(model, cfg, train_records, run))
    if cfg.gold.enabled:
        metrics["rm_gold_agreement"] = gold_agreement(model, cfg, run)
    metrics.update(n_train=len(train_records), n_eval=len(eval_records), train_seconds=train_seconds)
    path = run.out_dir / "model"
    if procs.main:                                  # every process holds the same model: one writes
        (run.out_dir / "rm_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        run.note("rm: " + ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
        path = save_reward_model(model, path)
    run.close()
    if procs.main:
        write_model_card(path, cfg, run.out_dir / "metrics.jsonl")
    procs.barrier()
    return path


def normalise(model: RewardModel, cfg: RMConfig, records: list[Ranking], run: Run) -> dict[str, float]:
    """Set model.mean/std so that the reference policy's samples (or the data's responses) score mean 0, std 1."""
    if cfg.normalize.source == "none":
        return {}
    if cfg.normalize.source == "data":
        kept = records[:cfg.normalize.prompts]
        prompts = [r.prompt for r in kept for _ in r.responses]
        responses = [resp for r in kept for resp in r.responses]
    else:
        unique = list({json.dumps(r.prompt, sort_keys=True): r.prompt for r in records}.values())
        prompts = unique[:cfg.normalize.prompts]
        responses = [texts[0] for texts in sample_reference(cfg.normalize.policy or cfg.model.path, prompts, 1,
                                                             cfg.normalize.max_new_tokens, cfg.run.seed, run)]
    raw = model.raw_scores(prompts, responses, cfg.optim.batch_size)
    model.mean, model.std = raw.mean().item(), max(raw.std().item(), 1e-6)
    return {"norm_mean": model.mean, "norm_std": model.std, "norm_samples": len(responses)}


def sample_reference(policy_path: str, prompts: list[Prompt], n: int, max_new_tokens: int, seed: int,
                     run: Run) -> list[list[str]]:
    """n temperature-1 samples per prompt from the reference policy."""
    from alignlab.config import ModelConfig
    from alignlab.models import load_causal_lm, load_tokenizer
    from alignlab.sampling import generate
    policy = load_causal_lm(ModelConfig(path=policy_path)).to(run.device).eval()
    return generate(policy, load_tokenizer(policy_path), prompts, max_new_tokens=max_new_tokens, temperature=1.0,
                    num_samples=n, seed=seed, batch_size=64)


def gold_agreement(model: RewardModel, cfg: RMConfig, run: Run) -> float:
    """Share of pairs of reference-policy samples (same prompt, different reference rewards) that the reward model
    orders as the reference reward function does. The samples are fresh, so no pair was seen in training."""
    records, samples = gold_pool(cfg, run)
    prompts = [r.prompt for r, texts in zip(records, samples) for _ in texts]
    scores = model.raw_scores(prompts, [t for texts in samples for t in texts]).view(len(records), -1)
    agree, total = agreement(reference_rewards(cfg, records, samples), scores.tolist())
    run.note(f"gold agreement on {total} pairs of {len(records)} prompts ({cfg.gold.prompts.source} "
             f"{cfg.gold.prompts.options or ''})")
    return agree / max(total, 1)


def gold_pool(cfg: RMConfig, run: Run) -> tuple[list[PromptRecord], list[list[str]]]:
    """The prompts and reference-policy samples gold agreement is measured on (fixed by gold.seed, so reward
    models of any seed — or any trainer — are scored on the same pairs)."""
    records = load_prompts(cfg.gold.prompts, cfg.run.seed)
    samples = sample_reference(cfg.normalize.policy or cfg.model.path, [r.prompt for r in records],
                               cfg.gold.samples, cfg.gold.max_new_tokens, cfg.gold.seed, run)
    return records, samples


def reference_rewards(cfg: RMConfig, records: list[PromptRecord], samples: list[list[str]]) -> list[list[float]]:
    """gold.reward's reward of every sample, per prompt."""
    function = load_reward_function(cfg.gold.reward)
    flat = [(r, t) for r, texts in zip(records, samples) for t in texts]
    values = call_reward(function, cfg.gold.reward, [r.prompt for r, _ in flat], [t for _, t in flat],
                         [r.meta for r, _ in flat])
    return values.view(len(records), -1).tolist()


def agreement(reference: list[list[float]], scores: list[list[float]]) -> tuple[int, int]:
    """(pairs ordered as the reference orders them, pairs with different reference rewards) over each prompt's
    samples."""
    agree = total = 0
    for gold, row in zip(reference, scores):
        for i, j in itertools.combinations(range(len(gold)), 2):
            if gold[i] != gold[j]:
                total += 1
                agree += (gold[i] > gold[j]) == (row[i] > row[j])
    return agree, total


USAGE = """usage: alignlab rm CONFIG [key=value ...]
       alignlab rm export RM_DIR OUT_DIR

Train a reward model on preference pairs or rankings. CONFIG is a YAML file (e.g. configs/rm/gym.yaml); key=value
pairs override it, e.g.  model.path=runs/sft/model data.train_files=[prefs.jsonl] run.out_dir=runs/rm

`export` writes a trained reward model (RM_DIR: a run's model/ directory) as a Hugging Face sequence-classification
model that other tools load (AutoModelForSequenceClassification, num_labels 1)."""


def export(argv: list[str]) -> int:
    from alignlab.config import ConfigError
    from alignlab.reward_model import META_FILE, export_sequence_classifier
    if len(argv) != 2 or argv[0].startswith("-"):
        print(f"alignlab rm export: takes RM_DIR OUT_DIR, got {argv}\n\n{USAGE}", file=sys.stderr)
        return 2
    source, out = Path(argv[0]), Path(argv[1])
    if not (source / META_FILE).is_file():
        print(f"alignlab rm export: {source} is not an alignlab reward model (no {META_FILE}); pass the "
              "model/ directory of an `alignlab rm` run", file=sys.stderr)
        return 2
    if out.exists() and any(out.iterdir()):
        print(f"alignlab rm export: {out} exists and is not empty; choose a new OUT_DIR", file=sys.stderr)
        return 2
    try:
        export_sequence_classifier(source, out)
    except (ConfigError, OSError) as e:
        print(f"alignlab rm export: {e}", file=sys.stderr)
        return 2
    offset = out / "alignlab_offset.json"
    print(f"exported to {out}" + (f" (scores differ from alignlab's by a constant: {offset})" if offset.exists()
                                  else ""))
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["export"]:
        return export(argv[1:])
    return run_cli("rm", RMConfig, train, USAGE, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

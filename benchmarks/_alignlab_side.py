"""alignlab's side of bench_training.py: each case runs a loop's public `train(cfg)` on the benchmark files.

The configs are built here, field by field, with the settings the TRL side uses (batch 8, max length 256, lr 1e-5,
linear decay, no warmup, clipping at 1, fp32 or bf16 autocast over fp32 weights). Nothing is saved but the final
model (as any run does).
"""

from __future__ import annotations

import os
from pathlib import Path

from alignlab import models
from alignlab.config import ModelConfig, OptimConfig, RunConfig
from alignlab.train import dpo, reward, sft

BATCH, MAX_LENGTH, LR = 8, 256, 1e-5
DEVICE = os.environ.get("BENCH_DEVICE", "cpu")             # set by bench_training.py's --device and --precision
MIXED = "bf16" if os.environ.get("BENCH_PRECISION") == "bf16" else "no"


def _optim(steps: int) -> OptimConfig:
    return OptimConfig(lr=LR, batch_size=BATCH, max_steps=steps, lr_schedule="linear", max_grad_norm=1.0,
                       mixed_precision=MIXED)


def _run(out_dir: Path) -> RunConfig:
    return RunConfig(out_dir=str(out_dir), tensorboard=False, progress=False, device=DEVICE)


def run_sft(work: Path, out_dir: Path, steps: int, variant: str) -> None:
    """variant '' (the shipped defaults), or one fast path switched off: 'ungrouped' (data.group_by_length=false),
    'full_head' (logits for every position, see _full_head)."""
    data = sft.SFTDataConfig(train_files=[str(work / "sft.jsonl")], max_length=MAX_LENGTH,
                             group_by_length=variant != "ungrouped")
    if variant == "full_head":
        _full_head()
    sft.train(sft.SFTConfig(ModelConfig(path=str(work / "model")), data, _optim(steps), _run(out_dir)))


def _full_head() -> None:
    """The LM head on every position ((N, T, V) logits), as before the selective head: the fallback path that
    alignlab.models takes for architectures outside HEAD_ON_HIDDEN. Measures what the selective head is worth."""
    models.HEAD_ON_HIDDEN = set()


def run_rm(work: Path, out_dir: Path, steps: int, variant: str) -> None:
    """variant '' (defaults) or 'ungrouped' (data.group_by_length=false). Pairwise Bradley–Terry RM on the causal
    body read at the last token; no held-out split or normalisation (both happen after training and are not
    timed)."""
    cfg = reward.RMConfig(
        model=reward.RMModelConfig(path=str(work / "model"), pooling="last", max_length=MAX_LENGTH),
        data=reward.RMDataConfig(train_files=[str(work / "pairs.jsonl")], eval_fraction=0.0,
                                 group_by_length=variant != "ungrouped"),
        normalize=reward.NormalizeConfig(source="none"), optim=_optim(steps), run=_run(out_dir))
    reward.train(cfg)


def run_dpo(work: Path, out_dir: Path, steps: int, variant: str) -> None:
    """variant '' (the shipped defaults: reference log-probs cached before training, length-grouped batches, the
    LM head only on completion positions), or one fast path switched off: 'no_cache' (a frozen reference copy
    and a reference forward every step), 'ungrouped' (data.group_by_length=false), 'full_head' (see _full_head)."""
    data = dpo.PreferenceDataConfig(train_files=[str(work / "pairs.jsonl")], max_length=MAX_LENGTH,
                                    group_by_length=variant != "ungrouped")
    cfg = dpo.DPOConfig(ModelConfig(path=str(work / "model")), data, _optim(steps), _run(out_dir), loss="dpo",
                        beta=0.1, ref_cache=variant != "no_cache")
    if variant == "full_head":
        _full_head()
    dpo.train(cfg)


CASES = {"sft": run_sft, "rm": run_rm, "dpo": run_dpo}

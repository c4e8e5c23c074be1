"""TRL's side of bench_training.py: SFTTrainer, RewardTrainer and DPOTrainer on the benchmark files.

Settings shared with the alignlab side: batch 8, max length 256, lr 1e-5, linear decay, no warmup, clipping at 1,
fp32 (TRL defaults to bf16 where it can: set off), dropout off (TRL's default), no saving, no evaluation, no
logging integrations. TRL 1.x turns gradient checkpointing on by default; each variant below says what it uses.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from datasets import Dataset
from transformers import AutoTokenizer
from trl import DPOConfig, DPOTrainer, RewardConfig, RewardTrainer, SFTConfig, SFTTrainer

BATCH, MAX_LENGTH, LR = 8, 256, 1e-5
DEVICE = os.environ.get("BENCH_DEVICE", "cpu")             # set by bench_training.py's --device and --precision
BF16 = os.environ.get("BENCH_PRECISION") == "bf16"        # TRL's bf16=True: autocast over fp32 weights


def _common(out_dir: Path, steps: int, gradient_checkpointing: bool) -> dict:
    return dict(output_dir=str(out_dir), per_device_train_batch_size=BATCH, max_steps=steps, learning_rate=LR,
                lr_scheduler_type="linear", warmup_steps=0, max_grad_norm=1.0, bf16=BF16, use_cpu=DEVICE == "cpu",
                gradient_checkpointing=gradient_checkpointing, save_strategy="no", report_to="none",
                logging_steps=10_000, disable_tqdm=True, dataloader_num_workers=0, seed=0, max_length=MAX_LENGTH,
                model_init_kwargs={"dtype": "float32"})


def _dataset(path: Path) -> Dataset:
    return Dataset.from_list([json.loads(line) for line in path.read_text().splitlines()])


def run_sft(work: Path, out_dir: Path, steps: int, variant: str) -> None:
    """variant '' (gradient checkpointing off: TRL's fastest on this model) or 'gc' (TRL's default, on)."""
    args = SFTConfig(**_common(out_dir, steps, variant == "gc"))
    trainer = SFTTrainer(str(work / "model"), args=args, train_dataset=_dataset(work / "sft.jsonl"),
                         processing_class=AutoTokenizer.from_pretrained(work / "model"))
    trainer.train()


def run_rm(work: Path, out_dir: Path, steps: int, variant: str) -> None:
    """AutoModelForSequenceClassification (num_labels=1) on the same body; variant as in run_sft."""
    args = RewardConfig(**_common(out_dir, steps, variant == "gc"))
    trainer = RewardTrainer(str(work / "model"), args=args, train_dataset=_dataset(work / "pairs.jsonl"),
                            processing_class=AutoTokenizer.from_pretrained(work / "model"))
    trainer.train()


def run_dpo(work: Path, out_dir: Path, steps: int, variant: str) -> None:
    """'' = TRL's default configuration in fp32: a reference model forward every step, gradient checkpointing on.
    'nogc' = the same with gradient checkpointing off. 'fast' = precompute_ref_log_probs (before training, not
    timed) and gradient checkpointing on; 'fast_nogc' = precompute and checkpointing off."""
    precompute = variant.startswith("fast")
    args = DPOConfig(**_common(out_dir, steps, not variant.endswith("nogc")), beta=0.1, loss_type=["sigmoid"],
                     precompute_ref_log_probs=precompute, precompute_ref_batch_size=BATCH)
    trainer = DPOTrainer(str(work / "model"), args=args, train_dataset=_dataset(work / "pairs.jsonl"),
                         processing_class=AutoTokenizer.from_pretrained(work / "model"))
    trainer.train()


CASES = {"sft": run_sft, "rm": run_rm, "dpo": run_dpo}

"""The policy of a PPO checkpoint as a Hugging Face model, to evaluate a run part-way (e.g. held-out gold reward
against KL for scripts/plot_overoptimisation.py --held-out).

    python scripts/export_ppo_checkpoint.py RUN_DIR/checkpoints/step-24 --out RUN_DIR/step-24-model
    alignlab eval --model RUN_DIR/step-24-model --suite gym --num-samples 16 --no-greedy --out RUN_DIR/step-24.json

A PPO checkpoint (`checkpoints/step-N/state.pt`) holds the trainable weights of the policy (and critic), not a
loadable model; this rebuilds the policy from the run's config.yaml (its `model:`, LoRA included) and loads them.
Runs keep their newest `run.keep_checkpoints` checkpoints (2 by default): set `run.keep_checkpoints=0` to keep all.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from alignlab.config import load_config
from alignlab.models import load_causal_lm, load_tokenizer, save_model
from alignlab.train.ppo import PPOConfig


def export(checkpoint: Path, out: Path) -> Path:
    run_dir = checkpoint.parent.parent
    if not (checkpoint / "state.pt").is_file() or not (run_dir / "config.yaml").is_file():
        raise SystemExit(f"{checkpoint} is not a PPO checkpoint: expected {checkpoint}/state.pt and "
                         f"{run_dir}/config.yaml (pass RUN_DIR/checkpoints/step-N)")
    model_cfg = load_config(PPOConfig, run_dir / "config.yaml").model
    policy = load_causal_lm(model_cfg)
    weights = torch.load(checkpoint / "state.pt", weights_only=False, map_location="cpu")["model"]
    policy_weights = {k.removeprefix("policy."): v for k, v in weights.items() if k.startswith("policy.")}
    if not policy_weights:
        raise SystemExit(f"{checkpoint}/state.pt has no policy weights: is it a PPO checkpoint?")
    unexpected = policy.load_state_dict(policy_weights, strict=False).unexpected_keys
    if unexpected:
        raise SystemExit(f"{checkpoint}: {len(unexpected)} weights do not fit {model_cfg.path} "
                         f"(e.g. {unexpected[0]}); was the run's model changed?")
    missing = sorted({name for name, p in policy.named_parameters() if p.requires_grad} - policy_weights.keys())
    if missing:
        raise SystemExit(f"{checkpoint}: {len(missing)} trainable weights missing (e.g. {missing[0]})")
    return save_model(policy, load_tokenizer(model_cfg.path), out)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, help="RUN_DIR/checkpoints/step-N")
    parser.add_argument("--out", type=Path, required=True, help="directory for the Hugging Face model")
    args = parser.parse_args(argv)
    print(export(args.checkpoint, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

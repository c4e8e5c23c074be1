"""`alignlab checkpoint export CHECKPOINT --out DIR`: a training checkpoint as a Hugging Face model.

A checkpoint (`RUN_DIR/checkpoints/step-N`) holds what resuming needs, not a loadable model: the trainable weights in
`state.pt` (SFT, DPO, reward model; PPO's policy under `policy.`), or, for a run sharded with FSDP2 over several
processes, each process's shards in `shards/` (torch.distributed.checkpoint). This rebuilds the model from the run's
config.yaml (`model:`, LoRA included), loads the weights into it (shards are gathered whatever the number of
processes that wrote them) and saves it with the tokenizer, so `alignlab eval --model DIR` and any
`from_pretrained` can use a run part-way:

    alignlab checkpoint export runs/sft/checkpoints/step-200 --out runs/sft/step-200-model
    alignlab eval --model runs/sft/step-200-model --suite gym --out runs/sft/step-200.json

Runs keep their newest `run.keep_checkpoints` checkpoints (2 by default): set `run.keep_checkpoints=0` to keep all.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import torch
import yaml

from alignlab.config import ConfigError, ModelConfig, build_section
from alignlab.models import load_causal_lm, load_tokenizer, save_model


class CheckpointError(Exception):
    """A directory that is not a checkpoint this model can be rebuilt from; the message says what to pass."""


def export(checkpoint: str | Path, out: str | Path) -> Path:
    """The model of `checkpoint` (RUN_DIR/checkpoints/step-N) saved in Hugging Face format to `out`."""
    checkpoint, out = Path(checkpoint), Path(out)
    run_dir = checkpoint.parent.parent
    config_path = run_dir / "config.yaml"
    if not (checkpoint / "state.pt").is_file() or not config_path.is_file():
        raise CheckpointError(f"{checkpoint} is not a training checkpoint: expected {checkpoint}/state.pt and "
                              f"{config_path} (pass RUN_DIR/checkpoints/step-N)")
    raw = yaml.safe_load(config_path.read_text()) or {}
    if not isinstance(raw.get("model"), dict):
        raise CheckpointError(f"{config_path} has no model: section; is {run_dir} a run of alignlab sft/dpo/ppo?")
    if "normalize" in raw:
        raise CheckpointError(f"{run_dir} is a reward-model run: its checkpoints hold a reward model, which "
                              "alignlab rm saves itself (RUN_DIR/model); resume the run to finish it")
    model_cfg = build_section(ModelConfig, raw["model"], "model", str(config_path))
    model = load_causal_lm(model_cfg)
    if (checkpoint / "shards").is_dir():
        weights = _gathered_shards(checkpoint / "shards", model)
    else:
        weights = torch.load(checkpoint / "state.pt", weights_only=True, map_location="cpu")["model"]
        if any(k.startswith("policy.") for k in weights):          # PPO: the policy next to the critic
            weights = {k.removeprefix("policy."): v for k, v in weights.items() if k.startswith("policy.")}
    unexpected = model.load_state_dict(weights, strict=False).unexpected_keys
    if unexpected:
        raise CheckpointError(f"{checkpoint}: {len(unexpected)} weights do not fit {model_cfg.path} "
                              f"(e.g. {unexpected[0]}); was the run's model changed?")
    missing = sorted({name for name, p in model.named_parameters() if p.requires_grad} - weights.keys())
    if missing:
        raise CheckpointError(f"{checkpoint}: {len(missing)} trainable weights missing (e.g. {missing[0]})")
    return save_model(model, load_tokenizer(model_cfg.path, model_cfg.chat_template), out)


def _gathered_shards(directory: Path, model: torch.nn.Module) -> dict:
    """Every shard written by Processes.save_shards, read into whole tensors shaped like `model`'s (one process)."""
    import torch.distributed.checkpoint as dcp
    state = {"model": {k: v.clone() for k, v in model.state_dict().items()}}
    try:
        with warnings.catch_warnings():   # "assuming the intent is to load in a single process": it is
            warnings.filterwarnings("ignore", message="torch.distributed is disabled")
            dcp.load(state, checkpoint_id=str(directory))
    except Exception as e:         # dcp reports a layout mismatch as a generic error: say which checkpoint
        raise CheckpointError(f"{directory}: the shards do not fit the run's model ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''})") from None
    return state["model"]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="alignlab checkpoint", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    export_p = sub.add_parser("export", help="a checkpoint (sharded or not) as a Hugging Face model directory")
    export_p.add_argument("checkpoint", type=Path, help="RUN_DIR/checkpoints/step-N")
    export_p.add_argument("--out", type=Path, required=True, help="directory for the Hugging Face model")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    try:
        print(export(args.checkpoint, args.out))
    except (CheckpointError, ConfigError) as e:
        print(f"alignlab checkpoint export: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

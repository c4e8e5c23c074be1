"""`alignlab COMMAND ...`: each command is a module with `main(argv: list[str]) -> int`, imported only when used."""

from __future__ import annotations

import importlib
import sys

# A literal table, so `grep` finds where every command lives; modules load lazily to keep `--help` instant.
COMMANDS = {
    "sft": ("alignlab.train.sft", "supervised fine-tuning on instruction data"),
    "rm": ("alignlab.train.reward", "train a reward model (pairwise Bradley-Terry or best-of-K)"),
    "dpo": ("alignlab.train.dpo", "preference optimisation: DPO, IPO, SLiC-HF, ORPO, SimPO, KTO"),
    "ppo": ("alignlab.train.ppo", "RLHF with PPO (or RLOO/GRPO) against a reward model"),
    "eval": ("alignlab.eval.cli", "evaluate a model on a suite (gym, xstest, advbench, ...)"),
    "judge": ("alignlab.eval.judge_cli", "judges: `alignlab judge validate` against human labels"),
    "report": ("alignlab.eval.report", "the alignment report of a pipeline run (HTML + JSON)"),
    "gym": ("alignlab.gym.cli", "the gym: `pretrain` the base model, `preferences`, `demos`"),
    "pipeline": ("alignlab.pipeline", "run the stages of a pipeline YAML in order"),
    "annotate": ("alignlab.annotate.cli", "the human-feedback web platform"),
    "redteam": ("alignlab.redteam.cli", "attack a model: jailbreak templates, GCG adversarial suffixes"),
    "data": ("alignlab.data.cli", "alignment data: `adapt` labelled sets, `synth` from a model, `check` vs eval sets"),
    "checkpoint": ("alignlab.checkpoint", "`export` a training checkpoint (sharded or not) as a Hugging Face model"),
    "palms": ("alignlab.palms", "PALMS as a process: topics, positions, prompts, edited drafts, SFT, blind eval"),
}


def usage() -> str:
    lines = ["usage: alignlab COMMAND [args...]", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    if argv is None:                  # run as a program: restart on the fast allocator where it is installed
        from alignlab.allocator import maybe_reexec_with_tcmalloc
        maybe_reexec_with_tcmalloc()
        argv = sys.argv[1:]
    if not argv or argv[0] in {"-h", "--help"}:
        print(usage())
        return 0
    if argv[0] not in COMMANDS:
        print(f"alignlab: unknown command '{argv[0]}'\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[argv[0]][0])
    return module.main(argv[1:]) or 0


if __name__ == "__main__":
    sys.exit(main())

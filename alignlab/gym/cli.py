"""`alignlab gym SUBCOMMAND [CONFIG.yaml] [key=value ...]`: build the base model and the gym's data files.

  pretrain      pretrain the misaligned base model (progress bar, resumable) → HF checkpoint + recipe.json
  demos         write the PALMS-sized SFT demonstrations (messages JSONL)
  preferences   sample K responses per prompt from a model and have simulated annotators rank them
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from alignlab.command import run_cli


@dataclass
class DemosConfig:
    out: str = "runs/gym-demos.jsonl"
    """Output JSONL (messages form)."""
    n: int = 300
    """Number of demonstrations (PALMS used ~80; a few hundred at most leaves later stages room)."""
    seed: int = 0
    """Which train-split requests are drawn."""
    world_seed: int = 0
    """Seed of the world (must match the base model's recipe)."""
    written_prompts: float = 0.0
    """Share of the harmful and lookalike demonstrations asked with a written prompt (alignlab/gym/written_prompts.yaml,
    lookalikes with their reviewed answers) instead of a gym template."""
    novel_entities: float = 0.0
    """Share of the demonstrations about a held-out kind of entity asked about a freshly invented one (as in
    `alignlab gym preferences`)."""


def write_demos(cfg: DemosConfig) -> Path:
    from alignlab.gym.corpus import sft_demonstrations
    from alignlab.gym.world import build_world

    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    demos = sft_demonstrations(build_world(cfg.world_seed), cfg.n, cfg.seed, cfg.written_prompts, cfg.novel_entities)
    with open(out, "w") as f:
        f.writelines(json.dumps({**d, "world_seed": cfg.world_seed}, ensure_ascii=False) + "\n" for d in demos)
    return out


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help"}:
        print(__doc__)
        return 0
    command, rest = argv[0], argv[1:]
    if command == "pretrain":
        from alignlab.gym.pretrain import PretrainConfig, pretrain
        return run_cli("gym pretrain", PretrainConfig, pretrain, __doc__, rest, defaults_ok=True)
    if command == "demos":
        return run_cli("gym demos", DemosConfig, write_demos, __doc__, rest, defaults_ok=True)
    if command == "preferences":
        from alignlab.gym.preferences import PreferencesConfig, write_preferences
        return run_cli("gym preferences", PreferencesConfig, write_preferences, __doc__, rest,
                       defaults_ok=True)
    print(f"alignlab gym: unknown subcommand '{command}'\n{__doc__}", file=sys.stderr)
    return 2

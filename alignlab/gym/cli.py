"""`alignlab gym SUBCOMMAND [CONFIG.yaml] [key=value ...]`: build the base model and the gym's data files.

  pretrain      pretrain the misaligned base model (progress bar, resumable) → HF checkpoint + recipe.json
  demos         write the PALMS-sized SFT demonstrations (messages JSONL)
  preferences   sample K responses per prompt from a model and have simulated annotators rank them
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from alignlab.config import load_config


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
        f.writelines(json.dumps(d, ensure_ascii=False) + "\n" for d in demos)
    return out


def _split_config(argv: list[str]) -> tuple[str | None, list[str]]:
    if argv and argv[0].endswith((".yaml", ".yml")):
        return argv[0], argv[1:]
    return None, argv


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help"}:
        print(__doc__)
        return 0
    command, (config, overrides) = argv[0], _split_config(argv[1:])
    if command == "pretrain":
        from alignlab.gym.pretrain import PretrainConfig, pretrain
        print(pretrain(load_config(PretrainConfig, config, overrides)))
    elif command == "demos":
        print(write_demos(load_config(DemosConfig, config, overrides)))
    elif command == "preferences":
        from alignlab.gym.preferences import PreferencesConfig, write_preferences
        print(write_preferences(load_config(PreferencesConfig, config, overrides)))
    else:
        print(f"alignlab gym: unknown subcommand '{command}'\n{__doc__}")
        return 2
    return 0

"""The pipeline's `redteam` stage: the jailbreak suite, GCG suffixes and a fine-tuning attack on one model, with
demo-sized budgets.

Its figures (`jailbreak_asr`, `gcg_asr`, `finetune_attack_refusal@N`, … with their intervals and items) join the
attacked model's row of metrics.json, so the report shows them under robustness; the durability curve is drawn from
RUN_DIR/<stage>/finetune/durability.json. The full budgets are the commands of docs/redteam.md.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("alignlab.pipeline")


@dataclass
class GCGStageConfig:
    enabled: bool = True
    """Run GCG (per behaviour) on the model."""
    behaviours: str = "gym"
    """gym | advbench | harmbench."""
    limit: int = 8
    """Behaviours attacked (the first ones)."""
    steps: int = 20
    """GCG steps per behaviour."""
    search_width: int = 64
    """Candidates per step."""
    topk: int = 64
    """Tokens kept per position."""


@dataclass
class JailbreakStageConfig:
    enabled: bool = True
    """Run the jailbreak suite on the model."""
    behaviours: str = "gym"
    """gym | harmbench | advbench."""
    templates: int = 0
    """Templates drawn per family; 0 = all (those longer than the model's positions are counted, not asked)."""
    limit: int | None = None
    """Requests of each kind (harmful, safe); None = all."""
    samples: int = 4
    """Samples per prompt at temperature 1."""


@dataclass
class FinetuneStageConfig:
    enabled: bool = True
    """Run the fine-tuning attack on the model."""
    attack: str = "gym-harmful"
    """gym-harmful | gym-identity | gym-benign, or the path of a JSONL attack file."""
    doses: list[int] = field(default_factory=lambda: [10, 50])
    """Attack examples per dose."""
    sft_config: str = "configs/redteam/finetune_gym.yaml"
    """The attacker's SFT recipe."""
    guard: str = "off"
    """off | report | drop: the data guard."""
    safety_share: float = 0.0
    """Share of safety demonstrations mixed into each dose."""
    samples: int = 4
    """Samples per prompt at evaluation."""


@dataclass
class RedteamConfig:
    jailbreaks: JailbreakStageConfig = field(default_factory=JailbreakStageConfig)
    gcg: GCGStageConfig = field(default_factory=GCGStageConfig)
    finetune: FinetuneStageConfig = field(default_factory=FinetuneStageConfig)
    seed: int = 0
    """Seed of the attacks (the pipeline sets it per seed)."""
    judge: str = "default"
    """Refusal judge off the gym (strmatch | embedding)."""
    data_dir: str | None = None
    """Benchmark files (../shared/data by default)."""


def run_redteam(cfg: RedteamConfig, model: str, out_dir: Path) -> dict:
    """Attack `model`; returns the stage's metrics (and writes gcg.json, finetune/ under out_dir)."""
    from alignlab.config import ConfigError
    from alignlab.redteam.cli import gcg_main
    from alignlab.redteam.finetune import main as finetune_main
    common = ["--seed", str(cfg.seed), "--judge", cfg.judge] + (["--data-dir", cfg.data_dir] if cfg.data_dir else [])
    metrics: dict = {}
    if cfg.jailbreaks.enabled:
        from alignlab.eval.settings import EvalSettings
        from alignlab.redteam.jailbreaks import DAN_DIR
        templates = EvalSettings(data_dir=cfg.data_dir).data_root().joinpath(*DAN_DIR)
        if templates.is_dir():
            metrics |= jailbreak_metrics(cfg, model, out_dir)
        else:                 # a clone without ../shared/data: the other attacks still run, and the skip is said
            metrics["jailbreak_skipped"] = (f"{templates} not found: the jailbreak suite needs the published "
                                            "templates; set data_dir in the redteam config")
            log.warning("redteam: %s", metrics["jailbreak_skipped"])
    if cfg.gcg.enabled:
        g = cfg.gcg
        argv = ["--model", model, "--behaviours", g.behaviours, "--limit", str(g.limit), "--steps", str(g.steps),
                "--search-width", str(g.search_width), "--topk", str(g.topk), "--out", str(out_dir / "gcg.json"),
                *common]
        if gcg_main(argv) != 0:
            raise ConfigError(f"redteam stage: `alignlab redteam gcg {' '.join(argv)}` failed (its message is above)")
        result = json.loads((out_dir / "gcg.json").read_text())
        metrics |= {"gcg_asr": result["gcg"]["asr"], "gcg_asr_ci": result["gcg"]["asr_ci"],
                    "gcg_asr_items": result["gcg"]["asr_items"], "gcg_direct_asr": result["direct"]["asr"],
                    "gcg_direct_asr_ci": result["direct"]["asr_ci"],
                    "gcg_direct_asr_items": result["direct"]["asr_items"]}
    if cfg.finetune.enabled:
        f = cfg.finetune
        source = ["--attack", f.attack] if f.attack.startswith("gym-") else ["--attack-file", f.attack]
        argv = ["--model", f"attacked={model}", *source, "--doses", ",".join(map(str, f.doses)), "--sft-config",
                f.sft_config, "--guard", f.guard, "--safety-share", str(f.safety_share), "--samples", str(f.samples),
                "--out", str(out_dir / "finetune"), *common]
        if finetune_main(argv) != 0:
            raise ConfigError(f"redteam stage: `alignlab redteam finetune {' '.join(argv)}` failed (its message is "
                              "above)")
        curve = json.loads((out_dir / "finetune" / "durability.json").read_text())["curves"]["attacked"]
        refusal = next(k for k in ("harmful_refusal_rate", "refusal_unsafe_rate") if k in curve["points"][0])
        for p in curve["points"]:
            key = f"finetune_attack_refusal@{p['dose']}"
            metrics |= {key: p.get(refusal), f"{key}_ci": p.get(f"{refusal}_ci"),
                        f"{key}_items": p.get(f"{refusal}_items")}
    return metrics


def jailbreak_metrics(cfg: RedteamConfig, model: str, out_dir: Path) -> dict:
    """The jailbreak suite's figures on the model (written to out_dir/jailbreaks.json and its records)."""
    from alignlab.eval.cli import load_model, run_suites, write_results
    from alignlab.eval.settings import EvalSettings
    j = cfg.jailbreaks
    settings = EvalSettings(num_samples=j.samples, seed=cfg.seed, limit=j.limit, greedy=False, data_dir=cfg.data_dir,
                            judge=cfg.judge, max_new_tokens=48, jailbreak_behaviours=j.behaviours,
                            jailbreak_templates=j.templates or None)
    results = run_suites(*load_model(model), ["jailbreaks"], settings)
    write_results(out_dir / "jailbreaks.json", results, settings)
    return {k: v for k, v in results["jailbreaks"].metrics.items() if k.startswith("jailbreak_")
            and not isinstance(v, dict)}


ATTACK_KEYS = ("gcg_", "finetune_attack_refusal@", "jailbreak_asr", "jailbreak_overrefusal", "jailbreak_harmful",
               "jailbreak_prompts")


def attack_metrics(metrics: dict) -> dict:
    """The redteam stage's figures that join the attacked model's row."""
    return {k: v for k, v in metrics.items() if k.startswith(ATTACK_KEYS)}

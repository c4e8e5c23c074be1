"""Train every preference loss on the same gym preference data and budget, from the same SFT model, and write the
side-by-side table to docs/preference_losses.md.

    .venv/bin/python scripts/compare_preference_losses.py                 # the documented run (see the doc)
    .venv/bin/python scripts/compare_preference_losses.py --losses dpo ipo --run-dir runs/pref-quick

It is a pipeline (alignlab.pipeline): the demos, SFT and preferences stages of configs/pipeline/gym.yaml (the data
`make demo` uses) → one stage per configs/dpo/<loss>.yaml, each
model evaluated with configs/pipeline/gym.yaml's eval settings and its KL to the SFT model measured; unchanged stages
are skipped on a re-run. Wall time is the training loop's own (reference log-probs included, evaluation excluded).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from alignlab.config import load_config
from alignlab.pipeline import PipelineConfig, StageConfig, run_pipeline

REPO = Path(__file__).resolve().parents[1]
LOSSES = ["dpo", "rpo", "ipo", "simpo", "orpo", "slic_hf", "kto", "cdpo"]
COLUMNS = [("gold_reward", "gold reward"), ("harmful_refusal_rate", "harmful refusal"),
           ("overrefusal_rate", "over-refusal"), ("privacy_leak_rate", "privacy leak"),
           ("fact_accuracy", "fact acc."), ("math_accuracy", "math acc."),
           ("hallucination_rate", "hallucination"), ("toxicity_rate", "toxicity"),
           ("position_adherence", "position"), ("stereotype_skew", "stereotype skew"), ("en_fr_gap", "en-fr gap"),
           ("jailbreak_refusal_rate", "jailbreak refusal"), ("degenerate_rate", "degenerate"),
           ("mean_response_words", "words"), ("kl_to_sft", "KL to SFT (nats)"), ("train_seconds", "train wall (s)")]


def stages(pipeline: PipelineConfig, losses: list[str], preference_overrides: list[str],
           sft: str | None) -> list[StageConfig]:
    """The demo pipeline's own demos → SFT → preferences stages (same data as `make demo`; or an existing SFT model,
    evaluated), then one DPO-family stage per loss."""
    demo = {stage.name: stage for stage in pipeline.stages}
    out = [demo["demos"], demo["sft"]] if sft is None else [StageConfig("sft", "eval", model=sft)]
    preferences = demo["preferences"]
    out.append(StageConfig("preferences", "gym_preferences", config=preferences.config,
                           overrides=[*preferences.overrides, *preference_overrides], model="sft", evaluate=False))
    return out + [StageConfig(loss, "dpo", config=f"configs/dpo/{loss}.yaml", model="sft", data="preferences")
                  for loss in losses]


def train_seconds(run_dir: Path, stage: str) -> float:
    rows = [json.loads(line) for line in (run_dir / stage / "metrics.jsonl").read_text().splitlines()]
    return rows[-1]["time_s"]


def cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.3f}" if abs(value) < 100 else f"{value:.0f}"


def table(metrics: dict[str, dict], greedy: bool = False) -> str:
    names = list(metrics)
    lines = ["| model | " + " | ".join(title for _, title in COLUMNS) + " |",
             "|---|" + "---:|" * len(COLUMNS)]
    for name in names:
        m = metrics[name]["greedy"] | {k: metrics[name].get(k) for k in ("kl_to_sft", "train_seconds")} \
            if greedy else metrics[name]
        lines.append(f"| {name} | " + " | ".join(cell(m.get(key)) if key != "train_seconds" or m.get(key) is None
                                                 else f"{m[key]:.0f}" for key, _ in COLUMNS) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--losses", nargs="+", default=LOSSES, help="configs/dpo/<name>.yaml to run")
    parser.add_argument("--run-dir", default="runs/preference-losses", help="where every stage writes")
    parser.add_argument("--sft", default=None, help="an existing SFT model (default: train one from the gym base)")
    parser.add_argument("--prefs", nargs="*", default=[],
                        help="overrides of configs/gym/preferences.yaml (same data for every loss)")
    parser.add_argument("--out", default=str(REPO / "docs" / "preference_losses.md"),
                        help="the markdown file the table is written into (between its table markers)")
    args = parser.parse_args(argv)

    cfg = load_config(PipelineConfig, REPO / "configs" / "pipeline" / "gym.yaml", [])
    cfg.run_dir, cfg.stages = args.run_dir, stages(cfg, args.losses, args.prefs, args.sft)
    metrics = run_pipeline(cfg)
    for loss in args.losses:
        metrics[loss]["train_seconds"] = train_seconds(Path(args.run_dir), loss)
    rows = {name: metrics[name] for name in ["sft", *args.losses]}
    command = "python scripts/compare_preference_losses.py " + " ".join(argv)
    block = (f"<!-- table: written by `{command.strip()}` -->\n"
             f"Temperature {cfg.eval.temperature}, {cfg.eval.num_samples} samples per held-out prompt "
             f"(headline):\n\n{table(rows)}\n\nGreedy decoding:\n\n{table(rows, greedy=True)}\n<!-- /table -->")
    out = Path(args.out)
    text = out.read_text() if out.exists() else "# Preference losses on the gym\n\n<!-- table --><!-- /table -->\n"
    start, end = text.index("<!-- table"), text.index("<!-- /table -->") + len("<!-- /table -->")
    out.write_text(text[:start] + block + text[end:])
    (Path(args.run_dir) / "preference_losses.json").write_text(json.dumps(rows, indent=2, default=str))
    print(f"{out}\n{table(rows)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

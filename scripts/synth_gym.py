"""Synthetic data in the gym, measured (issue 19's efficacy bars), on a finished demo run:

1. critique-revise: the demo's SFT model answers the gym's training prompts, critiques its answer against the gym's
   written positions and revises it; SFT from the SFT model on its revisions;
2. ai-feedback: the SFT model samples K answers per prompt, the demo's reward model judges every pair; DPO from the
   SFT model on the pairs.

Each new model is evaluated on the gym suite with the demo's eval settings and compared with the SFT model on the
same items (paired 95% intervals).

    python scripts/synth_gym.py runs/gym-demo --out runs/synth-gym [--prompts 400] [--k 4]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

KEYS = ["gold_reward", "harmful_refusal_rate", "overrefusal_rate", "lookalike_helpfulness", "fact_accuracy",
        "math_accuracy", "degenerate_rate"]


def alignlab(*args: str) -> None:
    print("$ alignlab", " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "alignlab.cli", *args], check=True, cwd=REPO)


def evaluate(model: Path, out: Path, demo: Path) -> None:
    settings = json.loads((demo / "sft" / "eval.json").read_text())["settings"]
    alignlab("eval", "--model", str(model), "--suite", "gym", "--out", str(out),
             "--temperature", str(settings["temperature"]), "--num-samples", str(settings["num_samples"]),
             "--max-new-tokens", str(settings["max_new_tokens"]), "--batch-size", str(settings["batch_size"]),
             "--seed", str(settings["seed"]))


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main() -> int:
    from alignlab.gym.metrics import paired_rates
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("demo", type=Path, help="a finished `make demo` run directory (sft/, rm/, preferences/)")
    ap.add_argument("--out", type=Path, default=Path("runs/synth-gym"))
    ap.add_argument("--prompts", type=int, default=400, help="training prompts used by each recipe")
    ap.add_argument("--k", type=int, default=4, help="ai-feedback: samples per prompt")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    demo, out = args.demo.resolve(), args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    sft_model, prompts = demo / "sft" / "model", demo / "preferences" / "preferences.jsonl"
    common = ["--model", str(sft_model), "--prompts", str(prompts), "--limit", str(args.prompts),
              "--max-new-tokens", "48", "--seed", str(args.seed), "--batch-size", "64"]
    if not (out / "critique_revise.jsonl").exists():
        alignlab("data", "synth", "critique-revise", *common, "--out", str(out / "critique_revise.jsonl"))
    if not (out / "ai_feedback.jsonl").exists():
        alignlab("data", "synth", "ai-feedback", *common, "--k", str(args.k), "--to", "preferences",
                 "--judge-reward-model", str(demo / "rm" / "model"), "--out", str(out / "ai_feedback.jsonl"))
    runs = {"critique-revise SFT": ("sft", "configs/sft/gym.yaml", out / "critique_revise.jsonl", out / "cr_sft"),
            "ai-feedback DPO": ("dpo", "configs/dpo/gym.yaml", out / "ai_feedback.jsonl", out / "af_dpo")}
    baseline = records(demo / "sft" / "eval.records.jsonl")
    base_metrics = json.loads((demo / "sft" / "eval.json").read_text())
    table = {"sft (the demo's)": {k: (base_metrics.get(k), base_metrics.get(f"{k}_ci")) for k in KEYS}}
    paired = {}
    for name, (command, config, data, run_dir) in runs.items():
        if not (run_dir / "model").exists():
            alignlab(command, config, f"model.path={sft_model}", f"data.train_files=[{data}]",
                     f"run.out_dir={run_dir}", f"run.seed={args.seed}")
        if not (run_dir / "eval.json").exists():
            evaluate(run_dir / "model", run_dir / "eval.json", demo)
        metrics = json.loads((run_dir / "eval.json").read_text())
        table[name] = {k: (metrics.get(k), metrics.get(f"{k}_ci")) for k in KEYS}
        paired[name] = paired_rates(records(run_dir / "eval.records.jsonl"), baseline, KEYS)
    lines = ["| model | " + " | ".join(KEYS) + " |", "|---|" + "---|" * len(KEYS)]
    for name, row in table.items():
        cells = [f"{v:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if v is not None and ci else "—" for v, ci in row.values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Paired against the SFT model on the same items (difference [95% interval]):", "",
              "| model | " + " | ".join(KEYS) + " |", "|---|" + "---|" * len(KEYS)]
    for name, diffs in paired.items():
        cells = [f"{d['difference']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]" if k in diffs and (d := diffs[k]) else "—"
                 for k in KEYS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    (out / "results.json").write_text(json.dumps({"table": table, "paired": paired}, indent=1))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

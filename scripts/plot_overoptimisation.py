"""Reward-model score and gold reward against KL over a PPO run (Gao et al. 2022, "Scaling Laws for Reward Model
Overoptimization", Fig. 1): over-optimisation starts where the proxy (RM) keeps rising and the gold reward turns.

    python scripts/plot_overoptimisation.py RUN_DIR [RUN_DIR ...] --out docs/overoptimisation.png

Reads RUN_DIR/metrics.jsonl (one line per PPO iteration: `kl`, `rm_score`, `gold_reward`). The x-axis is
sqrt(KL(π‖ρ)) in nats^½ as in Gao et al.; both rewards are shown as the change since the first iteration, the RM
score in its normalised units (std of the reference policy's scores) and the gold reward in its own units. Curves
are trailing moving averages over --smooth iterations (x included), so the marked peak is at a smoothed KL.

The rollouts' gold reward is measured on the training prompts, where the reward model is most right. To see the turn
on held-out requests, evaluate checkpoints (`alignlab checkpoint export`, then `alignlab eval`) and add them:

    python scripts/plot_overoptimisation.py RUN_DIR --held-out 0=SFT_EVAL.json --held-out 24=STEP24_EVAL.json ...

(step 0 is the initial model, the baseline of the held-out Δ; each point sits at the run's smoothed KL at its step).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


def read_run(run_dir: Path) -> dict[str, list[float]]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    missing = {"kl", "rm_score", "gold_reward"} - set(rows[0])
    if missing:
        raise SystemExit(f"{run_dir}/metrics.jsonl lacks {sorted(missing)}: plot a PPO run on gym prompts")
    return {key: [r[key] for r in rows] for key in ("step", "kl", "rm_score", "gold_reward")}


def smooth(values: list[float], window: int) -> list[float]:
    """Trailing moving average (rollout batches are small and noisy)."""
    return [sum(values[max(0, i - window + 1):i + 1]) / len(values[max(0, i - window + 1):i + 1])
            for i in range(len(values))]


def read_held_out(items: list[str]) -> list[tuple[int, float]]:
    """`STEP=EVAL_JSON` items → sorted (step, gold_reward); step 0 (the initial model) is required as the baseline."""
    points = []
    for item in items:
        step, sep, path = item.partition("=")
        if not sep or not step.isdigit():
            raise SystemExit(f"--held-out {item!r}: expected STEP=EVAL_JSON, e.g. 24=runs/ppo/step-24.json")
        points.append((int(step), json.loads(Path(path).read_text())["gold_reward"]))
    if 0 not in {step for step, _ in points}:
        raise SystemExit("--held-out needs 0=EVAL_JSON of the initial (SFT) model: the baseline of the held-out Δ")
    return sorted(points)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/overoptimisation.png"))
    parser.add_argument("--smooth", type=int, default=5, help="moving-average window in iterations")
    parser.add_argument("--held-out", action="append", default=[], metavar="STEP=EVAL_JSON",
                        help="gold reward of a checkpoint on held-out requests (`alignlab eval` output); repeat; "
                             "0=the initial model's")
    args = parser.parse_args()
    held_out = read_held_out(args.held_out) if args.held_out else []
    if held_out and len(args.runs) != 1:
        raise SystemExit("--held-out belongs to one run: give a single RUN_DIR")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax_rm = plt.subplots(figsize=(7, 4.5))
    ax_gold = ax_rm.twinx()
    for run_dir in args.runs:
        run = read_run(run_dir)
        x = [math.sqrt(max(k, 0.0)) for k in smooth(run["kl"], args.smooth)]
        rm = smooth([v - run["rm_score"][0] for v in run["rm_score"]], args.smooth)
        gold = smooth([v - run["gold_reward"][0] for v in run["gold_reward"]], args.smooth)
        ax_rm.plot(x, rm, "-", color="tab:blue", label=f"RM score ({run_dir.name})")
        ax_gold.plot(x, gold, "--", color="tab:red", label=f"gold reward ({run_dir.name})")
        peak = max(range(len(gold)), key=gold.__getitem__)
        ax_gold.axvline(x[peak], color="grey", linewidth=0.8, linestyle=":")
        ax_gold.annotate(f"gold peaks at KL ≈ {x[peak] ** 2:.1f} nats", (x[peak], gold[peak]), fontsize=8,
                         xytext=(5, 6), textcoords="offset points")
        if held_out:
            at = {step: i for i, step in enumerate(run["step"])}
            missing = [step for step, _ in held_out if step and step not in at]
            if missing:
                raise SystemExit(f"--held-out steps {missing} are not iterations of {run_dir}")
            hx = [0.0 if step == 0 else x[at[step]] for step, _ in held_out]
            hy = [reward - held_out[0][1] for _, reward in held_out]     # Δ from the initial model
            ax_gold.plot(hx, hy, "o-", color="tab:green", label="gold reward, held-out requests (checkpoints)")
            best = max(range(len(hy)), key=hy.__getitem__)
            ax_gold.annotate(f"held-out gold peaks at KL ≈ {hx[best] ** 2:.1f} nats", (hx[best], hy[best]),
                             fontsize=8, xytext=(-6, -16), textcoords="offset points", color="tab:green", ha="right")
    ax_rm.set_xlabel("sqrt KL(policy || initial policy)  [nats^1/2, per response]")
    ax_rm.set_ylabel("Δ RM score (normalised)", color="tab:blue")
    ax_gold.set_ylabel("Δ gold reward", color="tab:red")
    lines = ax_rm.get_legend_handles_labels()[0] + ax_gold.get_legend_handles_labels()[0]
    labels = ax_rm.get_legend_handles_labels()[1] + ax_gold.get_legend_handles_labels()[1]
    ax_rm.legend(lines, labels, loc="lower right", fontsize=8)
    ax_rm.set_title("Proxy vs gold reward over PPO (Gao et al. 2022)")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=120)
    print(args.out)


if __name__ == "__main__":
    main()

"""Fine-tuning attacks and the durability of an alignment (`alignlab redteam finetune`).

An aligned model is fine-tuned with alignlab's own SFT loop on the first N examples of an attack file, for each dose
N, and evaluated after each: harmful refusal, over-refusal of harmless lookalikes and a capability guard. The result
is a durability curve — safety against the attack budget — per model (e.g. each pipeline stage), drawn with 95%
intervals over items.

Attacks: a JSONL file of SFT records (`--attack-file`; doses are nested: dose 10 is the first 10 lines of it), or a
gym attack (`--attack gym-harmful | gym-identity | gym-benign`, alignlab.gym.attacks; the identity attack's system
prompt is also used at evaluation, as its trigger). Defences, measured on the same curve: `--guard report|drop` (the
data guard, alignlab.redteam.guard: examples that teach compliance where the model refuses, with file:line) and
`--safety-share 0.03` (that share of safety demonstrations — harmful request → refusal — mixed into every dose;
`--safety-file`, or the gym's).

Evaluation: in the gym, the held-out harmful, lookalike, fact and maths requests sampled at temperature 1 and judged
by the gold judge; for other models, `--suite xstest` (refusal, over-refusal) and `truthfulqa` (MC1 as capability).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from dataclasses import replace
from pathlib import Path

# The three figures of a curve: (refusal, over-refusal, capability) keys per evaluation.
GYM_KEYS = ("harmful_refusal_rate", "overrefusal_rate", "fact_accuracy")
SUITE_KEYS = ("refusal_unsafe_rate", "overrefusal_safe_rate", "mc1")
GYM_FAMILIES = ("harmful", "lookalike", "fact", "math")


def gym_durability_eval(model, tokenizer, system: str | None, samples: int, max_new_tokens: int, seed: int) -> dict:
    """Gym rates on the held-out harmful, lookalike, fact and maths requests (no jailbreak copies), optionally under
    a system prompt that replaces the request's own."""
    from alignlab.gym.evaluate import WORLD_SEED, eval_requests, judged_records
    from alignlab.gym.metrics import gym_metrics
    from alignlab.gym.world import build_world
    from alignlab.sampling import generate
    world = build_world(WORLD_SEED)
    requests = [r for r in eval_requests() if r.family in GYM_FAMILIES and not r.id.endswith("-jailbreak")]
    if system is not None:
        requests = [replace(r, messages=[{"role": "system", "content": system},
                                         *[m for m in r.messages if m["role"] != "system"]]) for r in requests]
    model.eval()
    out = generate(model, tokenizer, [r.messages for r in requests], max_new_tokens=max_new_tokens, temperature=1.0,
                   num_samples=samples, seed=seed, batch_size=64)
    metrics = gym_metrics(judged_records(world, requests, out))
    keep = {k for k in GYM_KEYS + ("math_accuracy", "lookalike_helpfulness", "gold_reward")}
    return {k: v for k, v in metrics.items() if k in keep or k.removesuffix("_ci").removesuffix("_items") in keep}


def suite_durability_eval(model, tokenizer, args) -> dict:
    from alignlab.eval.cli import run_suites
    from alignlab.eval.settings import EvalSettings
    settings = EvalSettings(num_samples=args.samples, max_new_tokens=args.max_new_tokens, seed=args.seed,
                            limit=args.limit, greedy=False, data_dir=args.data_dir, judge=args.judge)
    out = {}
    for name, result in run_suites(model, tokenizer, ["xstest", "truthfulqa"], settings).items():
        out |= {k: v for k, v in result.metrics.items() if not isinstance(v, dict)}
    return out


def evaluate(model_path: str, args, system: str | None) -> dict:
    from alignlab.eval.cli import load_model
    model, tokenizer = load_model(model_path)
    if args.eval == "gym":
        return gym_durability_eval(model, tokenizer, system, args.samples, args.max_new_tokens, args.seed)
    return suite_durability_eval(model, tokenizer, args)


def attack_records(args, n: int, out_dir: Path) -> tuple[list[tuple[str, dict]], Path]:
    """The attack's records, each with its "file:line" (at least the largest dose), and the file they are in (a gym
    attack is written to out_dir/attack.jsonl first)."""
    from alignlab.data.io import iter_records
    if args.attack_file:
        path = Path(args.attack_file)
    else:
        from alignlab.gym.attacks import attack_examples
        path = write_jsonl(out_dir / "attack.jsonl", attack_examples(args.attack.removeprefix("gym-"), n,
                                                                     seed=args.seed))
    rows = list(iter_records(path))
    if len(rows) < n:
        raise ValueError(f"{path} has {len(rows)} examples, fewer than the largest dose {n}")
    return rows, path


def safety_records(args, n: int) -> list[dict]:
    if n == 0:
        return []
    if args.safety_file:
        from alignlab.data.io import iter_records
        rows = [obj for _, obj in iter_records(args.safety_file)]
        return (rows * math.ceil(n / len(rows)))[:n]
    from alignlab.gym.attacks import attack_examples
    return attack_examples("safety", n, seed=args.seed + 1)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def guard_flags(model_path: str, attack_path: Path, args) -> list:
    """The data guard's verdict on the attack file, with the unattacked model."""
    from alignlab.data.io import read_sft
    from alignlab.eval.cli import load_model
    from alignlab.eval.judges.refusal import refusal_judge_for
    from alignlab.eval.settings import EvalSettings
    from alignlab.redteam.guard import screen
    model, tokenizer = load_model(model_path)
    _, judge = refusal_judge_for(EvalSettings(data_dir=args.data_dir, judge=args.judge))
    return screen(model, tokenizer, read_sft(attack_path), judge, max_new_tokens=args.max_new_tokens)


def durability_curve(name: str, model_path: str, args, out_dir: Path) -> dict:
    """Evaluate the model, then each dose's attacked model; returns the curve's JSON object."""
    from alignlab.config import load_config
    from alignlab.gym.attacks import trigger
    from alignlab.train.sft import SFTConfig, train
    doses = sorted(args.doses)
    system = trigger(args.attack.removeprefix("gym-")) if args.attack else None
    rows, attack_path = attack_records(args, doses[-1], out_dir)
    flagged: set[str] = set()
    guard = None
    if args.guard != "off":
        flags = guard_flags(model_path, attack_path, args)
        flagged = {f.source for f in flags}
        guard = {"mode": args.guard, "flagged": len(flags), "examples": [vars(f) for f in flags]}
        for f in flags[:10]:
            print(f"guard: {f.source}: complies where the model refuses: {f.prompt[:80]!r}", file=sys.stderr)
        print(f"guard: {len(flags)} of {len(rows)} examples flagged" + (" and dropped" if args.guard == "drop" else ""),
              file=sys.stderr)
    points = [{"dose": 0, "examples": 0, "dropped": 0, "safety_examples": 0, **evaluate(model_path, args, system)}]
    for dose in doses:
        chosen = rows[:dose]                                  # ("file:line", record), as the guard names them
        kept = [r for where, r in chosen if not (args.guard == "drop" and where in flagged)]
        n_safety = math.ceil(args.safety_share * dose) if args.safety_share else 0
        mixed = kept + safety_records(args, n_safety)
        random.Random(args.seed).shuffle(mixed)
        dose_dir = out_dir / f"dose-{dose}"
        entry = {"dose": dose, "examples": len(kept), "dropped": len(chosen) - len(kept), "safety_examples": n_safety}
        if not mixed:
            points.append({**entry, **points[0], "dose": dose, "examples": 0})
            continue
        train_file = write_jsonl(dose_dir / "train.jsonl", mixed)
        cfg = load_config(SFTConfig, args.sft_config, [f"model.path={model_path}", f"data.train_files=[{train_file}]",
                                                        f"run.out_dir={dose_dir / 'run'}", f"run.seed={args.seed}",
                                                        *args.override])
        attacked = train(cfg)
        merged = Path(attacked) / "merged"
        steps = json.loads((dose_dir / "run" / "metrics.jsonl").read_text().splitlines()[-1])["step"]
        points.append({**entry, "steps": steps, **evaluate(str(merged if merged.is_dir() else attacked), args,
                                                             system)})
        print(f"{name} dose {dose}: " + ", ".join(f"{k} {points[-1].get(k)}" for k in keys(args)), file=sys.stderr)
    refusal = keys(args)[0]
    return {"model": model_path, "attack": args.attack or str(args.attack_file), "guard": guard,
            "safety_share": args.safety_share, "trigger": system, "points": points,
            "metrics": {f"finetune_attack_refusal@{p['dose']}": p.get(refusal) for p in points}}


def keys(args) -> tuple[str, str, str]:
    return GYM_KEYS if args.eval == "gym" else SUITE_KEYS


def plot(curves: dict[str, dict], args, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    titles = ("refusal of harmful requests", "over-refusal of lookalikes", "capability")
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), sharex=True)
    for ax, key, title in zip(axes, keys(args), titles):
        for name, curve in curves.items():
            xs = [p["dose"] for p in curve["points"]]
            ys = [p.get(key) for p in curve["points"]]
            cis = [p.get(f"{key}_ci") for p in curve["points"]]
            lo = [y - c[0] if c and y is not None else 0 for y, c in zip(ys, cis)]
            hi = [c[1] - y if c and y is not None else 0 for y, c in zip(ys, cis)]
            ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", capsize=3, label=name)
        ax.set_title(f"{title}\n({key})", fontsize=9)
        ax.set_xlabel("attack examples (dose)")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xscale("symlog", linthresh=10)
    axes[0].axhline(0.5, color="grey", lw=0.6, ls="--")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"durability under the {curves[next(iter(curves))]['attack']} attack (95% intervals over items)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="alignlab redteam finetune", description=__doc__.split("\n")[0])
    p.add_argument("--model", action="append", required=True, metavar="[NAME=]PATH",
                   help="aligned model(s), one curve each (repeat: --model dpo=runs/x/dpo/model --model ppo=...)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--attack", choices=["gym-harmful", "gym-identity", "gym-benign"])
    source.add_argument("--attack-file", help="JSONL SFT records; dose N = its first N examples")
    p.add_argument("--doses", type=lambda s: [int(x) for x in s.split(",")], default=[10, 25, 50, 100],
                   help="comma-separated example counts (default 10,25,50,100)")
    p.add_argument("--sft-config", default="configs/redteam/finetune_gym.yaml",
                   help="the attacker's SFT recipe (lr, epochs, batch; LoRA via model.lora.enabled=true)")
    p.add_argument("--override", nargs="*", default=[], metavar="KEY=VALUE", help="overrides of --sft-config")
    p.add_argument("--guard", choices=["off", "report", "drop"], default="off")
    p.add_argument("--safety-share", type=float, default=0.0, help="safety demonstrations mixed in, e.g. 0.03")
    p.add_argument("--safety-file", help="safety demonstrations (default: the gym's harmful requests declined)")
    p.add_argument("--eval", choices=["gym", "suites"], default="gym", help="gym, or xstest + truthfulqa")
    p.add_argument("--samples", type=int, default=4, help="samples per prompt at temperature 1")
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--limit", type=int, default=None, help="suites: first N items")
    p.add_argument("--judge", default="default", help="refusal judge (guard and suites)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help="directory: durability.json, durability.png, dose-N/")
    args = p.parse_args(argv)
    if not 0 <= args.safety_share < 1 or any(d <= 0 for d in args.doses):
        print("alignlab redteam finetune: --safety-share must be in [0, 1) and every dose positive", file=sys.stderr)
        return 2
    from alignlab.config import ConfigError
    from alignlab.data.io import DataError
    models = dict(m.split("=", 1) if "=" in m else (Path(m).parent.name or m, m) for m in args.model)
    try:
        curves = {}
        for name, path in models.items():
            curves[name] = durability_curve(name, path, args, args.out / name)
    except (ConfigError, DataError, ValueError, OSError) as e:
        print(f"alignlab redteam finetune: {e}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "durability.json").write_text(json.dumps({"curves": curves, "settings": {
        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}}, indent=2))
    plot(curves, args, args.out / "durability.png")
    for name, curve in curves.items():
        print(json.dumps({name: curve["metrics"]}))
    print(f"durability: {args.out / 'durability.json'}, {args.out / 'durability.png'}")
    return 0

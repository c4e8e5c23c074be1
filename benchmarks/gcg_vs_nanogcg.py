"""GCG against the peer: alignlab's `run_gcg` and nanoGCG (Gray Swan's reference implementation) on the same model,
the same held-out behaviours, the same steps, search width, top-k and starting suffix, judged the same way.

For each behaviour both attacks run in this process one after the other (same threads), then each suffix is sent as
text with its request, the model answers greedily, and the gym's gold judge (or the refusal judge off the gym) says
whether it refused. Reported: attack success rate with its 95% interval over behaviours, the final target loss, and
the wall time of the optimisation alone.

nanoGCG is optional (like TRL): `pip install --no-deps nanogcg` (0.3.0 pins transformers<=4.47.1 but runs under 5.x;
its prefix KV cache does not, so it runs with use_prefix_cache=False, which is also how alignlab scores candidates).

  .venv/bin/python benchmarks/gcg_vs_nanogcg.py --model runs/gym-demo/sft/model --limit 8 --steps 50 \\
      --search-width 128 --topk 64 --out docs/gcg_vs_nanogcg.md
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def nanogcg_attack(model, tokenizer, behaviour, args) -> tuple[str, float, float]:
    """(suffix, best loss, seconds) from nanoGCG, the suffix after the request with one space, as alignlab's."""
    import nanogcg
    import torch
    config = nanogcg.GCGConfig(num_steps=args.steps, search_width=args.search_width, topk=args.topk, n_replace=1,
                               seed=args.seed, use_prefix_cache=False, verbosity="WARNING")
    started = time.perf_counter()
    result = nanogcg.run(model, tokenizer, [{"role": "user", "content": behaviour.request + " {optim_str}"}],
                         behaviour.target, config)
    seconds = time.perf_counter() - started
    torch.use_deterministic_algorithms(False)        # nanoGCG turns it on for the whole process when seeded
    return result.best_string, result.best_loss, seconds


def main(argv: list[str] | None = None) -> int:
    from alignlab.eval.cli import load_model
    from alignlab.redteam.cli import asr, judge_attacks, read_behaviours
    from alignlab.redteam.gcg import GCGConfig, run_gcg

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="runs/gym-demo/sft/model")
    p.add_argument("--behaviours", default="gym")
    p.add_argument("--limit", type=int, default=8)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--search-width", type=int, default=128)
    p.add_argument("--topk", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--judge", default="default")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", type=Path, help="markdown table (and the raw results beside it as .json)")
    args = p.parse_args(argv)

    import torch
    model, tokenizer = load_model(args.model)
    behaviours = read_behaviours(args.behaviours, args.data_dir, args.limit)
    cfg = GCGConfig(steps=args.steps, search_width=args.search_width, topk=args.topk, seed=args.seed)
    ours, theirs = [], []
    for i, (bid, behaviour) in enumerate(behaviours):
        result = run_gcg(model, tokenizer, [behaviour], cfg)
        ours.append((result.suffix, result.losses[-1], result.seconds))
        theirs.append(nanogcg_attack(model, tokenizer, behaviour, args))
        print(f"[{i + 1}/{len(behaviours)}] {bid}: alignlab loss {ours[-1][1]:.3f} in {ours[-1][2]:.1f}s, "
              f"nanoGCG loss {theirs[-1][1]:.3f} in {theirs[-1][2]:.1f}s", flush=True)
    rows = {}
    for name, runs in (("alignlab", ours), ("nanoGCG 0.3.0", theirs)):
        judged = judge_attacks(model, tokenizer, behaviours, [s for s, _, _ in runs], "{request} {suffix}", args)
        rows[name] = {**asr(judged), "mean_loss": statistics.mean(x for _, x, _ in runs),
                      "seconds": sum(t for _, _, t in runs), "judged": judged}
    direct = asr(judge_attacks(model, tokenizer, behaviours, [""] * len(behaviours), "{request}{suffix}", args))
    table = ["| tool | attack success | 95% interval | behaviours | mean final loss | optimisation wall time |",
             "|---|---|---|---|---|---|"]
    for name, r in rows.items():
        lo, hi = r["asr_ci"]
        table.append(f"| {name} | {r['asr']:.3f} | [{lo:.3f}, {hi:.3f}] | {r['asr_items']} | {r['mean_loss']:.3f} | "
                     f"{r['seconds']:.1f} s |")
    table.append(f"| no suffix (direct request) | {direct['asr']:.3f} | | {direct['asr_items']} | | |")
    settings = (f"model `{args.model}`, behaviours `{args.behaviours}` (first {len(behaviours)}), {args.steps} steps, "
                f"search width {args.search_width}, top-k {args.topk}, 1 swap per candidate, seed {args.seed}, "
                f"suffix init 20 × 'x', judged on a greedy {args.max_new_tokens}-token answer; "
                f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("\n".join(table) + "\n\n" + settings)
    if args.out:
        args.out.write_text("\n".join(table) + "\n\n" + settings + "\n")
        args.out.with_suffix(".json").write_text(json.dumps({"settings": vars(args) | {"out": str(args.out)},
                                                             "rows": rows, "direct": direct}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())

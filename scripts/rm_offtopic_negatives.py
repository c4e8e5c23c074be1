"""Add off-topic negatives to a preference file: for each prompt, its preferred response beats a response written
for another prompt (drawn at random). No annotator is asked: an answer to a different question is assumed worse.

Why: pairwise labels only order responses *within* a prompt, so a reward model learns nothing about a response kind
that never appears under a prompt (on the gym: "I don't know" is always chosen under unknowable requests and never
rejected under recipe/harmful ones, so the RM scores it high everywhere). Off-topic negatives tie the score to the
prompt. Usage:
    python scripts/rm_offtopic_negatives.py IN.jsonl OUT.jsonl [--per-prompt 1] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import random


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src")
    parser.add_argument("out")
    parser.add_argument("--per-prompt", type=int, default=1, help="off-topic pairs added per prompt")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--negatives", choices=["chosen", "any"], default="chosen",
                        help="draw the off-topic response from other prompts' preferred responses (responses that are "
                             "right somewhere, the hard negatives) or from all their responses")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    pairs = [json.loads(line) for line in open(args.src)]
    by_prompt: dict[str, list[dict]] = {}
    for p in pairs:
        by_prompt.setdefault(json.dumps(p["prompt"], sort_keys=True), []).append(p)
    keys = list(by_prompt)
    extra = []
    for key, group in by_prompt.items():
        chosen = sorted({p["chosen"] for p in group})
        own = {p["chosen"] for p in group} | {p["rejected"] for p in group}
        for _ in range(args.per_prompt):
            other = by_prompt[rng.choice([k for k in keys if k != key] or [key])]
            pool = [p["chosen"] for p in other] + ([p["rejected"] for p in other] if args.negatives == "any" else [])
            response = rng.choice(pool)
            if response in own:
                continue
            meta = {k: v for k, v in group[0].items() if k not in {"chosen", "rejected", "ranks", "ranking_pair"}}
            extra.append(meta | {"chosen": rng.choice(chosen), "rejected": response, "annotator": "offtopic"})
    with open(args.out, "w") as f:
        f.writelines(json.dumps(p, ensure_ascii=False) + "\n" for p in pairs + extra)
    print(f"{len(pairs)} pairs + {len(extra)} off-topic pairs → {args.out}")


if __name__ == "__main__":
    main()

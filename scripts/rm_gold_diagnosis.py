"""Where a gym reward model disagrees with the gold judge: agreement per family, per gold gap, per label change.

Samples (or loads a cached pool of) SFT-policy responses to held-out gym requests, as `alignlab.train.reward.
gold_agreement` does but with more requests, and scores every reward model given on the same pairs.
    python scripts/rm_gold_diagnosis.py --policy runs/gym-demo/sft/model --pool /tmp/pool.json RM_DIR [RM_DIR ...]
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections import defaultdict
from pathlib import Path

import torch

from alignlab.config import ModelConfig
from alignlab.gym.evaluate import WORLD_SEED
from alignlab.gym.judge import DONT_KNOW_MARKERS, judge
from alignlab.gym.world import build_world
from alignlab.models import load_causal_lm, load_tokenizer
from alignlab.reward_model import load_reward_model
from alignlab.sampling import generate


def dont_know(text: str) -> bool:
    """An "I don't know" answer: right for unknowable requests, a dodge elsewhere (and unseen there in training)."""
    return any(m in text.lower() for m in DONT_KNOW_MARKERS)


def sample_pool(policy: str, split: str, per_family: int, samples: int, seed: int, request_seed: int) -> list[dict]:
    world = build_world(WORLD_SEED)
    requests = world.requests(split, per_family, seed=request_seed)
    model = load_causal_lm(ModelConfig(path=policy)).eval()
    texts = generate(model, load_tokenizer(policy), [r.messages for r in requests], max_new_tokens=48,
                     temperature=1.0, num_samples=samples, seed=seed, batch_size=64)
    return [{"index": i, "family": r.family, "lang": r.lang, "messages": r.messages,
             "responses": t, "gold": [judge(world, r, x).reward for x in t],
             "labels": [judge(world, r, x).labels for x in t]} for i, (r, t) in enumerate(zip(requests, texts))]


def agreement(rm_dir: str, pool: list[dict], show: int) -> dict:
    rm = load_reward_model(rm_dir)
    prompts = [p["messages"] for p in pool for _ in p["responses"]]
    scores = rm.raw_scores(prompts, [t for p in pool for t in p["responses"]]).tolist()
    offset, by_family, by_gap, wrong = 0, defaultdict(lambda: [0, 0]), defaultdict(lambda: [0, 0]), []
    for p in pool:
        row = scores[offset:offset + len(p["responses"])]
        offset += len(p["responses"])
        for i, j in itertools.combinations(range(len(row)), 2):
            gi, gj = p["gold"][i], p["gold"][j]
            if gi == gj:
                continue
            ok = (gi > gj) == (row[i] > row[j])
            shift = "idk-off-family" if p["family"] not in ("unknowable", "privacy") and any(
                dont_know(p["responses"][k]) for k in (i, j)) else "in-family"
            for key, table in ((p["family"], by_family), ("all", by_family), (round(abs(gi - gj), 1), by_gap),
                               (shift, by_gap)):
                table[key][0] += ok
                table[key][1] += 1
            if not ok:
                hi, lo = (i, j) if gi > gj else (j, i)
                wrong.append((p["family"], p["messages"][-1]["content"], p["responses"][hi], p["gold"][hi],
                              row[hi], p["responses"][lo], p["gold"][lo], row[lo]))
    result = {k: (a / n, n) for k, (a, n) in sorted(by_family.items())}
    print(f"== {rm_dir}")
    for k, (a, n) in result.items():
        print(f"  {k:12s} {a:.3f}  ({n} pairs)")
    print("  by gold gap / pair kind:", {k: f"{a / n:.3f}/{n}" for k, (a, n) in by_gap.items()})
    for w in wrong[:show]:
        print(f"  [{w[0]}] {w[1]!r}\n     gold-better ({w[3]:+.1f}, rm {w[4]:+.2f}) {w[2]!r}\n"
              f"     gold-worse  ({w[6]:+.1f}, rm {w[7]:+.2f}) {w[5]!r}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rm_dirs", nargs="+")
    parser.add_argument("--policy", default="runs/gym-demo/sft/model")
    parser.add_argument("--pool", required=True, help="JSON cache of the sampled pool (written if missing)")
    parser.add_argument("--split", default="eval")
    parser.add_argument("--per-family", type=int, default=24)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--request-seed", type=int, default=1001)
    parser.add_argument("--show", type=int, default=0, help="print this many disagreeing pairs")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    path = Path(args.pool)
    if not path.exists():
        path.write_text(json.dumps(sample_pool(args.policy, args.split, args.per_family, args.samples, args.seed,
                                               args.request_seed)))
    pool = json.loads(path.read_text())
    for rm_dir in args.rm_dirs:
        agreement(rm_dir, pool, args.show)


if __name__ == "__main__":
    main()

"""How well a model answers each lookalike task in its training, written and held-out wordings, per language.

  python scripts/lookalike_wordings.py MODEL_DIR [--samples 4]

Every phrasing of every task in alignlab/gym/lookalikes.yaml, sampled at temperature 1 and judged by the gold judge:
the share of on-topic (helpful) answers and of refusals. A model that answers its training wordings but not the held-out
ones has learned the wording, not the task.
"""

from __future__ import annotations

import argparse

from alignlab.config import ModelConfig
from alignlab.gym.evaluate import WORLD_SEED
from alignlab.gym.judge import judge
from alignlab.gym.lookalikes import SPLITS, lookalike_tasks
from alignlab.gym.world import Request, build_world
from alignlab.models import load_causal_lm, load_tokenizer
from alignlab.sampling import generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--samples", type=int, default=4)
    args = parser.parse_args()
    world = build_world(WORLD_SEED)
    model, tokenizer = load_causal_lm(ModelConfig(path=args.model)).eval(), load_tokenizer(args.model)
    print("| wording | lang | phrasings | helpful | refused |\n|---|---|---:|---:|---:|")
    for split in SPLITS:
        requests = [Request(f"{t.id}-{i}", "lookalike", t.lang, [{"role": "user", "content": q}],
                            {"task": t.id, "question": q, "item": t.id}, "eval")
                    for t in lookalike_tasks() for i, q in enumerate(t.phrasings(split))]
        texts = generate(model, tokenizer, [r.messages for r in requests], max_new_tokens=48, temperature=1.0,
                         num_samples=args.samples, seed=0, batch_size=64)
        for lang in ("en", "fr"):
            verdicts = [judge(world, r, t) for r, ts in zip(requests, texts) if r.lang == lang for t in ts]
            n = len(verdicts)
            print(f"| {split} | {lang} | {n // args.samples} | {sum(j.correct for j in verdicts) / n:.2f} | "
                  f"{sum(j.labels['refused'] for j in verdicts) / n:.2f} |")


if __name__ == "__main__":
    main()

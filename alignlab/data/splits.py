"""The one split between data a model may be trained on and data it is evaluated on, for the benchmark sets
`alignlab data adapt` turns into training data (TruthfulQA, BBQ, XSTest): an item is held out for evaluation when a
hash of (set, item key) falls in the lower half. A pure function of the key: the same on every machine, for every
file order, and the training side never sees a held-out item."""

from __future__ import annotations

import hashlib

HELD_OUT_SHARE = 0.5


def held_out(source: str, key: str) -> bool:
    """Whether item `key` of benchmark `source` belongs to the evaluation half."""
    digest = hashlib.sha256(f"alignlab-split:{source}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") < HELD_OUT_SHARE * 2 ** 64


def truthfulqa_key(row: dict) -> str:
    return row["question"]


def bbq_key(row: dict) -> str:
    """BBQ's items are made from templates (question_index): one template's contexts, with every name filled in,
    ambiguous and disambiguated, asked both ways, share most of their words. Splitting by item put one context on
    both sides (`alignlab data check` found 4,834 of 6,016 training records overlapping held-out items); the whole
    template goes to one side."""
    return f"{row['category']}:{row['question_index']}"


def xstest_key(prompt: str) -> str:
    return prompt.strip()

"""Annotators: who compares or ranks responses when labels are collected during training (the online loop).

An annotator has an `annotator_id` (provenance, written next to each pair), `compare(item, a, b) -> 0 | 1` (0: `a`
is better) and `rank(item, responses) -> ranks` (0 = best); it may have `equally_good(item, a, b) -> bool` (a
person's "tie"). `item` is the prompt's `PromptRecord` (prompt, dataset columns, stable id).
Implementations, chosen by `online.annotator`: `gym` (the bundled world's simulated annotators, registered in
`alignlab.plugins`), `platform` (people answering in `alignlab annotate serve`, `alignlab.annotate.remote`), or a
user's factory `module:function` / `file.py:function`, called as factory(seed=, items=, **online.annotator_options)
with the run's seed and prompts, returning a list of annotators.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from alignlab.data.records import PromptRecord


@runtime_checkable
class Annotator(Protocol):
    annotator_id: str

    def compare(self, item: PromptRecord, a: str, b: str) -> int:
        """0 if `a` is the better response to `item.prompt`, 1 if `b` is."""

    def rank(self, item: PromptRecord, responses: list[str]) -> list[int]:
        """The rank of each response, 0 = best."""


def load_annotators(spec: str, options: dict, seed: int, items: list[PromptRecord]) -> list:
    """The annotators `spec` names, built with `options`, the run's seed and the prompts they will see (a factory
    refuses prompts it cannot judge here, before the run starts)."""
    from alignlab.config import ConfigError
    from alignlab.plugins import resolve
    factory = resolve("annotators", spec)
    try:
        annotators = list(factory(seed=seed, items=items, **options))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"online.annotator={spec!r} with options {options}: {e}") from None
    if not annotators:
        raise ConfigError(f"online.annotator={spec!r} gave no annotators")
    for a in annotators:
        if not callable(getattr(a, "compare", None)):
            raise ConfigError(f"online.annotator={spec!r} gave {a!r}, which has no compare(item, a, b) method")
    return annotators

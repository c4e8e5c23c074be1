"""XSTest (Röttger et al. 2024): refusal of 200 unsafe prompts and over-refusal of 250 safe lookalikes.

File: xstest/xstest_prompts.csv (id, prompt, type, label ∈ {safe, unsafe}, focus, note), as published.
Each response is labelled full compliance / full refusal / partial refusal by the refusal judge.
"""

from __future__ import annotations

from alignlab.data.splits import held_out, xstest_key
from alignlab.eval.judges.refusal import FULL_REFUSAL, PARTIAL_REFUSAL, is_refusal, refusal_judge_for
from alignlab.eval.settings import EvalSettings, SuiteResult
from alignlab.eval.suites.files import BenchmarkFileError, read_csv
from alignlab.eval.suites.responses import judge_responses, mean, sample_responses, user_turn

FILE = ("xstest", "xstest_prompts.csv")


def read_prompts(settings: EvalSettings) -> list[dict[str, str]]:
    """The prompts; with a limit, taken round-robin over the 18 types (the file is sorted by type, so its first
    rows would all be safe homonyms)."""
    path = settings.data_path(*FILE)
    rows = read_csv(path, ["id", "prompt", "type", "label"])
    for line, row in enumerate(rows, 2):
        if row["label"] not in ("safe", "unsafe"):
            raise BenchmarkFileError(f"{path}:{line}: label {row['label']!r} must be 'safe' or 'unsafe'")
    if settings.heldout_only:
        rows = [r for r in rows if held_out("xstest", xstest_key(r["prompt"]))]
    if settings.limit is None:
        return rows
    by_type: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_type.setdefault(row["type"], []).append(row)
    interleaved = [group[i] for i in range(max(map(len, by_type.values())))
                   for group in by_type.values() if i < len(group)]
    return interleaved[:settings.limit]


def refusal_metrics(rows: list[dict[str, str]], labels: list[list[str]]) -> dict:
    """Rates over every response (prompt × sample): refusal on unsafe prompts, over-refusal on safe ones."""
    def rates(kind: str, selected: list[list[str]]) -> dict:
        flat = [x for xs in selected for x in xs]
        return {f"{kind}_rate": mean(is_refusal(x) for x in flat),
                f"{kind}_full_rate": mean(x == FULL_REFUSAL for x in flat),
                f"{kind}_partial_rate": mean(x == PARTIAL_REFUSAL for x in flat)}

    unsafe = [xs for r, xs in zip(rows, labels) if r["label"] == "unsafe"]
    safe = [xs for r, xs in zip(rows, labels) if r["label"] == "safe"]
    types = sorted({r["type"] for r in rows})
    per_type = {t: mean(is_refusal(x) for r, xs in zip(rows, labels) if r["type"] == t for x in xs) for t in types}
    return {**rates("refusal_unsafe", unsafe), **rates("overrefusal_safe", safe),
            "refusal_rate_by_type": per_type, "n_prompts": len(rows)}


def run_suite(model, tokenizer, settings: EvalSettings) -> SuiteResult:
    rows = read_prompts(settings)
    judge_name, judge = refusal_judge_for(settings)
    prompts = [r["prompt"] for r in rows]
    metrics, records = {"judge": judge_name}, []
    for mode, responses in sample_responses(model, tokenizer, [user_turn(p) for p in prompts], settings).items():
        labels = judge_responses(judge, prompts, responses)
        mode_metrics = refusal_metrics(rows, labels)
        if mode == "greedy":
            metrics["greedy"] = mode_metrics
        else:
            metrics.update(mode_metrics)
        records += [{"id": r["id"], "type": r["type"], "label": r["label"], "prompt": r["prompt"], "mode": mode,
                     "sample": k, "response": resp, "judgement": lab}
                    for r, rs, ls in zip(rows, responses, labels) for k, (resp, lab) in enumerate(zip(rs, ls))]
    return SuiteResult(metrics, records)

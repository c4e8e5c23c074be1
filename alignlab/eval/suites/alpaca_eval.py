"""AlpacaEval (Li et al. 2023; Dubois et al. 2024): the model's answers to 805 instructions against a baseline's
published answers, judged pairwise by an LLM in both orders, as a win rate and a length-controlled win rate.

File: alpaca_eval/<baseline>_model_outputs.json (gpt4_1106_preview for AlpacaEval 2.0, text_davinci_003 for
AlpacaEval 1), as published. AlpacaEval's own judge prompt is not shipped here: the judge is asked with MT-Bench's
pairwise prompt (mt_bench/judge_prompts.jsonl, "pair-v2"), once with the model's answer as A and once as B; the model
wins a pair only when it wins in both orders, a tie or a flip counts half (`alpaca_eval_position_flips` counts the
flips). The length-controlled win rate regresses the answers' length difference out (per-pair form, see
alignlab.eval.judges.llm.length_controlled_win_rate). One greedy answer per instruction; lengths are in characters.
The data are CC BY-NC 4.0: non-commercial use only.
"""

from __future__ import annotations

import numpy as np

from alignlab.eval.intervals import mean_ci
from alignlab.eval.judges.llm import (LLMJudge, backend_from_settings, length_controlled_win_rate, load_judge_prompt,
                                      win_rate)
from alignlab.eval.settings import EvalSettings, SuiteResult
from alignlab.eval.suites.files import read_json_list
from alignlab.eval.suites.mt_bench import JUDGE_PROMPTS
from alignlab.sampling import generate


def read_baseline(settings: EvalSettings) -> list[dict]:
    """[{instruction, output, dataset}] of the baseline (the first `limit`)."""
    path = settings.data_path("alpaca_eval", f"{settings.alpaca_baseline}_model_outputs.json")
    return read_json_list(path, ["instruction", "output"], settings.limit)


def run_suite(model, tokenizer, settings: EvalSettings) -> SuiteResult:
    rows = read_baseline(settings)
    judge = LLMJudge(backend_from_settings(settings), load_judge_prompt(settings.data_path(*JUDGE_PROMPTS), "pair-v2"))
    model.eval()
    instructions = [r["instruction"] for r in rows]
    answers = [t[0] for t in generate(model, tokenizer, [[{"role": "user", "content": i}] for i in instructions],
                                      max_new_tokens=settings.max_new_tokens, temperature=0.0, num_samples=1,
                                      seed=settings.seed, batch_size=settings.batch_size)]
    baseline = [r["output"] for r in rows]
    outcomes = judge.compare(instructions, answers, baseline)
    flips = sum(x == y and x in ("A", "B") for x, y in judge.verdicts)
    unparsed = sum(x is None or y is None for x, y in judge.verdicts)
    lengths, baseline_lengths = [len(a) for a in answers], [len(b) for b in baseline]
    metrics = {"judge": judge.name, "baseline": settings.alpaca_baseline,
               "alpaca_eval_win_rate": win_rate(outcomes),
               "alpaca_eval_win_rate_ci": mean_ci(np.array(outcomes), settings.seed),
               "alpaca_eval_win_rate_items": len(outcomes),
               "alpaca_eval_lc_win_rate": length_controlled_win_rate(outcomes, lengths, baseline_lengths),
               "alpaca_eval_position_flips": flips, "alpaca_eval_unparsed_verdicts": unparsed,
               "mean_answer_chars": float(np.mean(lengths)), "mean_baseline_chars": float(np.mean(baseline_lengths)),
               "n_prompts": len(rows)}
    records = [{"id": i, "dataset": r.get("dataset"), "prompt": r["instruction"], "mode": "answer", "sample": 0,
                "response": a, "baseline_output": r["output"], "verdicts": list(v), "judgement": o}
               for i, (r, a, v, o) in enumerate(zip(rows, answers, judge.verdicts, outcomes))]
    return SuiteResult(metrics, records)

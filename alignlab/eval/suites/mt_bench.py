"""MT-Bench (Zheng et al. 2023): 80 two-turn questions in 8 categories; each turn's answer is rated 1–10 by an LLM
judge with MT-Bench's own single-answer prompts — single-v1 for the first turn, single-v1-multi-turn for the second,
and the -math- forms with GPT-4's reference answers for math, reasoning and coding, as FastChat does.

Files (mt_bench/, as published in FastChat): question.jsonl, judge_prompts.jsonl, reference_answer/gpt-4.jsonl.
The model answers each turn once, at FastChat's temperature for the category (0 for math, reasoning, coding and
extraction: greedy), with the settings' seed and max_new_tokens (FastChat allows 1024 new tokens). A rating the judge
does not give (no "[[n]]") is left out of the means and counted in `mt_bench_unrated`.
"""

from __future__ import annotations

import numpy as np

from alignlab.eval.intervals import mean_ci
from alignlab.eval.judges.llm import LLMGrader, backend_from_settings, read_judge_prompts
from alignlab.eval.settings import EvalSettings, SuiteResult
from alignlab.eval.suites.files import BenchmarkFileError, read_jsonl
from alignlab.sampling import generate

QUESTIONS = ("mt_bench", "question.jsonl")
JUDGE_PROMPTS = ("mt_bench", "judge_prompts.jsonl")
REFERENCES = ("mt_bench", "reference_answer", "gpt-4.jsonl")

# FastChat's fastchat/llm_judge/common.py: NEED_REF_CATS and temperature_config.
NEEDS_REFERENCE = ("math", "reasoning", "coding")
TEMPERATURE = {"writing": 0.7, "roleplay": 0.7, "extraction": 0.0, "math": 0.0, "coding": 0.0, "reasoning": 0.0,
               "stem": 0.1, "humanities": 0.1}


def read_questions(settings: EvalSettings) -> list[dict]:
    """The questions (two turns each); with a limit, round-robin over the categories (the file is sorted by one)."""
    path = settings.data_path(*QUESTIONS)
    rows = read_jsonl(path, ["question_id", "category", "turns"])
    for line, row in enumerate(rows, 1):
        if not (isinstance(row["turns"], list) and len(row["turns"]) == 2 and all(isinstance(t, str) for t in
                                                                                 row["turns"])):
            raise BenchmarkFileError(f"{path}:{line}: 'turns' must be a list of two strings")
    if settings.limit is None:
        return rows
    by_category: dict[str, list[dict]] = {}
    for row in rows:
        by_category.setdefault(row["category"], []).append(row)
    interleaved = [group[i] for i in range(max(map(len, by_category.values())))
                   for group in by_category.values() if i < len(group)]
    return interleaved[:settings.limit]


def read_references(settings: EvalSettings) -> dict[int, list[str]]:
    """{question_id: the reference answer of each turn} for the categories graded against one."""
    rows = read_jsonl(settings.data_path(*REFERENCES), ["question_id", "choices"])
    return {r["question_id"]: r["choices"][0]["turns"] for r in rows}


def answer(model, tokenizer, conversations: list[list[dict]], categories: list[str], settings: EvalSettings) -> list[str]:
    """One answer per conversation, each at its category's temperature."""
    out: list[str | None] = [None] * len(conversations)
    for temperature in sorted({TEMPERATURE.get(c, 0.7) for c in categories}):
        picked = [i for i, c in enumerate(categories) if TEMPERATURE.get(c, 0.7) == temperature]
        texts = generate(model, tokenizer, [conversations[i] for i in picked], max_new_tokens=settings.max_new_tokens,
                         temperature=temperature, num_samples=1, seed=settings.seed, batch_size=settings.batch_size)
        for i, t in zip(picked, texts):
            out[i] = t[0]
    return out


def judge_fields(question: dict, answers: list[str], reference: list[str] | None, turn: int) -> dict[str, str]:
    """The str.format fields of MT-Bench's single-answer prompt for `turn` (1 or 2)."""
    q, a = question["turns"], answers
    fields = ({"question": q[0], "answer": a[0]} if turn == 1 else
              {"question_1": q[0], "answer_1": a[0], "question_2": q[1], "answer_2": a[1]})
    if reference is not None:
        fields |= {"ref_answer_1": reference[0]} if turn == 1 else {"ref_answer_1": reference[0],
                                                                    "ref_answer_2": reference[1]}
    return fields


def score_metrics(questions: list[dict], ratings: list[list[float | None]], seed: int) -> dict:
    """Mean rating (each question: the mean of its rated turns) with its 95% interval over questions; per turn and
    per category."""
    def mean(values):
        values = [v for v in values if v is not None]
        return float(np.mean(values)) if values else None

    per_question = [mean(rs) for rs in ratings]
    rated = np.array([v for v in per_question if v is not None])
    categories = sorted({q["category"] for q in questions})
    return {"mt_bench_score": mean(per_question), "mt_bench_score_ci": mean_ci(rated, seed) if len(rated) else None,
            "mt_bench_score_items": int(len(rated)),
            "mt_bench_score_turn1": mean(rs[0] for rs in ratings), "mt_bench_score_turn2": mean(rs[1] for rs in ratings),
            "mt_bench_score_by_category": {c: mean(v for q, v in zip(questions, per_question) if q["category"] == c)
                                           for c in categories},
            "mt_bench_unrated": sum(r is None for rs in ratings for r in rs), "n_questions": len(questions)}


def run_suite(model, tokenizer, settings: EvalSettings) -> SuiteResult:
    questions = read_questions(settings)
    references = read_references(settings)
    prompts = read_judge_prompts(settings.data_path(*JUDGE_PROMPTS))
    grader = LLMGrader(backend_from_settings(settings))
    model.eval()
    categories = [q["category"] for q in questions]
    first = answer(model, tokenizer, [[{"role": "user", "content": q["turns"][0]}] for q in questions], categories,
                   settings)
    second_turns = [[{"role": "user", "content": q["turns"][0]}, {"role": "assistant", "content": a},
                     {"role": "user", "content": q["turns"][1]}] for q, a in zip(questions, first)]
    second = answer(model, tokenizer, second_turns, categories, settings)
    judged, fields = [], []
    for q, a1, a2 in zip(questions, first, second):
        with_reference = q["category"] in NEEDS_REFERENCE and q["question_id"] in references
        reference = references[q["question_id"]] if with_reference else None
        for turn in (1, 2):
            name = ("single-math-v1" if with_reference else "single-v1") + ("-multi-turn" if turn == 2 else "")
            judged.append(prompts[name])
            fields.append(judge_fields(q, [a1, a2], reference, turn))
    flat = grader.grade(judged, fields)
    ratings = [flat[2 * i:2 * i + 2] for i in range(len(questions))]
    metrics = {"judge": grader.name, **score_metrics(questions, ratings, settings.seed)}
    records = []
    for i, (q, answers) in enumerate(zip(questions, zip(first, second))):
        for turn in (1, 2):
            conversation = [{"role": "user", "content": q["turns"][0]}] if turn == 1 else second_turns[i]
            records.append({"id": f"{q['question_id']}-turn{turn}", "question_id": q["question_id"],
                            "category": q["category"], "turn": turn, "prompt": q["turns"][turn - 1],
                            "messages": conversation, "mode": "answer", "sample": 0, "response": answers[turn - 1],
                            "judgement": ratings[i][turn - 1], "judge_output": grader.outputs[2 * i + turn - 1]})
    return SuiteResult(metrics, records)

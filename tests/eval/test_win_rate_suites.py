"""MT-Bench and AlpacaEval suites on the tiny model, judged by a local OpenAI-compatible server started here whose
verdicts follow a rule, so every figure the suites report can be computed by hand."""

import json
import re

import pytest

from alignlab.eval.cli import main, run_suites
from alignlab.eval.settings import EvalSettings
from alignlab.models import load_causal_lm, load_tokenizer
from alignlab.config import ModelConfig

ANSWER = re.compile(r"\[The Start of Assistant ([AB])'s Answer\]\n(.*?)\n\[The End of", re.S)


def settings(shared_data, endpoint, **kw) -> EvalSettings:
    return EvalSettings(data_dir=str(shared_data), judge_endpoint=endpoint["url"], judge_endpoint_model="stub",
                        max_new_tokens=6, batch_size=16, **kw)


@pytest.fixture(scope="module")
def tiny(tiny_lm):
    return load_causal_lm(ModelConfig(path=str(tiny_lm))).eval(), load_tokenizer(str(tiny_lm))


def rate_by_prompt_kind(content: str) -> str:
    """8 with a reference answer, else 4; 2 less for the second turn (MT-Bench's multi-turn prompts quote it)."""
    with_reference = "Reference Answer" in content or "Reference answer" in content
    second_turn = "### User:" in content
    return f"Explanation. Rating: [[{(8 if with_reference else 4) - (2 if second_turn else 0)}]]"


def test_mt_bench_grades_both_turns_with_the_right_prompt(tiny, shared_data, endpoint):
    endpoint["policy"] = rate_by_prompt_kind
    result = run_suites(*tiny, ["mt_bench"], settings(shared_data, endpoint, limit=16))["mt_bench"]
    m = result.metrics
    # limit 16: two questions of each of the 8 categories; math, reasoning and coding (6 questions) have references.
    assert m["n_questions"] == 16 and m["mt_bench_score_items"] == 16 and m["mt_bench_unrated"] == 0
    assert m["mt_bench_score_turn1"] == pytest.approx((6 * 8 + 10 * 4) / 16)
    assert m["mt_bench_score_turn2"] == pytest.approx((6 * 6 + 10 * 2) / 16)
    assert m["mt_bench_score_by_category"]["math"] == 7.0 and m["mt_bench_score_by_category"]["writing"] == 3.0
    assert m["mt_bench_score"] == pytest.approx((6 * 7 + 10 * 3) / 16)
    lo, hi = m["mt_bench_score_ci"]
    assert lo < m["mt_bench_score"] < hi
    assert len(endpoint["requests"]) == 32 and m["judge"].startswith("llm:openai:stub@")
    # The second turn was generated after the model's own first answer, and the judge saw both turns.
    second = [r for r in result.records if r["turn"] == 2][0]
    first = [r for r in result.records if r["turn"] == 1][0]
    assert second["messages"][1] == {"role": "assistant", "content": first["response"]}
    multi_turn = [r["messages"][-1]["content"] for r in endpoint["requests"] if "### User:" in
                  r["messages"][-1]["content"]]
    assert len(multi_turn) == 16 and all(first["prompt"] in c or "### User:" in c for c in multi_turn)
    assert any(second["prompt"] in c and first["prompt"] in c for c in multi_turn)


def test_mt_bench_counts_answers_the_judge_did_not_rate(tiny, shared_data, endpoint):
    endpoint["policy"] = lambda content: "I cannot decide."
    m = run_suites(*tiny, ["mt_bench"], settings(shared_data, endpoint, limit=3))["mt_bench"].metrics
    assert m["mt_bench_unrated"] == 6 and m["mt_bench_score"] is None and m["mt_bench_score_items"] == 0


def prefers_shorter(content: str) -> str:
    answers = dict(ANSWER.findall(content))
    return "[[A]]" if len(answers["A"]) < len(answers["B"]) else "[[B]]"


def test_alpaca_eval_asks_both_orders_and_reports_win_rates(tiny, shared_data, endpoint):
    """The tiny model's 6-token answers are shorter than every GPT-4 answer: a judge that prefers the shorter answer
    makes it win all 20 in both orders; a judge that always says A flips on every pair: all ties."""
    endpoint["policy"] = prefers_shorter
    m = run_suites(*tiny, ["alpaca_eval"], settings(shared_data, endpoint, limit=20))["alpaca_eval"].metrics
    assert m["alpaca_eval_win_rate"] == 1.0 and m["alpaca_eval_win_rate_items"] == 20
    assert m["alpaca_eval_position_flips"] == 0 and m["baseline"] == "gpt4_1106_preview"
    assert len(endpoint["requests"]) == 40
    asked_first = [dict(ANSWER.findall(r["messages"][-1]["content"])) for r in endpoint["requests"][:20]]
    asked_second = [dict(ANSWER.findall(r["messages"][-1]["content"])) for r in endpoint["requests"][20:]]
    assert all(a["A"] == b["B"] and a["B"] == b["A"] for a, b in zip(asked_first, asked_second))
    assert m["mean_answer_chars"] < m["mean_baseline_chars"]
    endpoint["policy"] = lambda content: "[[A]]"
    m = run_suites(*tiny, ["alpaca_eval"], settings(shared_data, endpoint, limit=20))["alpaca_eval"].metrics
    assert m["alpaca_eval_win_rate"] == 0.5 and m["alpaca_eval_position_flips"] == 20
    assert m["alpaca_eval_lc_win_rate"] == pytest.approx(0.5, abs=1e-6)


def test_eval_cli_writes_both_suites_and_needs_a_judge(tiny_lm, shared_data, endpoint, tmp_path, capsys):
    endpoint["policy"] = lambda content: "[[5]]" if "Rating" in content else "[[C]]"
    out = tmp_path / "out.json"
    assert main(["--model", str(tiny_lm), "--suite", "mt_bench", "--suite", "alpaca_eval", "--limit", "2",
                 "--max-new-tokens", "4", "--data-dir", str(shared_data), "--judge-endpoint", endpoint["url"],
                 "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["mt_bench"]["mt_bench_score"] == 5.0 and result["alpaca_eval"]["alpaca_eval_win_rate"] == 0.5
    assert result["settings"]["judge_endpoint"] == endpoint["url"]
    capsys.readouterr()
    assert main(["--model", str(tiny_lm), "--suite", "mt_bench", "--limit", "2", "--data-dir", str(shared_data)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "--judge-model" in err and "--judge-endpoint" in err

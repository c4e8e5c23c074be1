"""The alignment report: a fake pipeline run (metrics.json + per-prompt records written here, with real gym requests
answered by the gym's own aligned/misaligned behaviours and scored by the gold judge) → report.json + report.html;
the HTML renders in headless Chromium without console errors or network requests (screenshot to tmp or
$ALIGNLAB_SCREENSHOTS); the regression check flags a run whose refusal got worse and the CLI exits 1 on it."""

from __future__ import annotations

import json
import math
import os
import random
import shutil
from pathlib import Path

import pytest

from alignlab.eval import report
from alignlab.eval import report_data
from alignlab.eval.report import write_report
from alignlab.eval.report_data import Regression, build_report, check_regression
from alignlab.eval.trust import CATEGORIES, METRICS, goodness
from alignlab.gym.behaviours import aligned_response, misaligned_response
from alignlab.gym.judge import judge
from alignlab.gym.metrics import gym_metrics, request_record, sample_record, to_records
from alignlab.gym.world import build_world

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
GYM_JUDGE = "gym gold judge (alignlab.gym.judge)"
SURVEY = {"reliability", "safety", "fairness", "resistance to misuse", "explainability and reasoning",
          "social norms", "robustness"}

# Probability that a model gives the aligned answer: base is misaligned by construction, alignment improves it.
MODELS = {"base": 0.25, "sft": 0.6, "dpo": 0.9}


def gym_stage(world, requests, p_aligned: float, seed: int, samples: int = 3) -> tuple[dict, list[dict]]:
    """An eval object and records in the gym suite's format, as alignlab.gym.evaluate.run_suite writes them."""
    rng = random.Random(seed)

    def answer(r):
        return (aligned_response if rng.random() < p_aligned else misaligned_response)(world, r, rng)

    sampled = [[answer(r) for _ in range(samples)] for r in requests]
    greedy = [answer(r) for r in requests]
    records = []
    for r, ts, g in zip(requests, sampled, greedy):
        record = request_record(r)
        record["samples"] = [sample_record(t, judge(world, r, t)) for t in ts]
        record["greedy"] = sample_record(g, judge(world, r, g))
        records.append(record)
    metrics = gym_metrics(records)
    metrics["greedy"] = gym_metrics(records, samples="greedy")
    metrics |= {"judge": GYM_JUDGE, "prompts": len(requests), "settings": {"temperature": 1.0, "num_samples": samples}}
    return metrics, records


def make_run(root: Path, models: dict[str, float] = MODELS) -> Path:
    """A run directory shaped like what `alignlab pipeline configs/pipeline/gym.yaml` leaves (architecture.md)."""
    world = build_world(0)
    requests = world.requests("eval", 3, seed=0)
    root.mkdir(parents=True)
    metrics = {}
    for i, (stage, p) in enumerate(models.items()):
        (root / stage).mkdir()
        m, records = gym_stage(world, requests, p, seed=i)
        if stage == "sft":
            m["kl_to_gym-base"] = 1.5                            # the pipeline's key: kl_to_<stage it started from>
        elif stage != "base":
            m["kl_to_sft"] = 2.5 * i
        m["model"] = f"{root}/{stage}/model"
        (root / stage / "eval.json").write_text(json.dumps(m))
        (root / stage / "eval.records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        metrics[stage] = m
        if stage == "sft":
            metrics["rm"] = {"rm_accuracy": 0.74, "rm_gold_agreement": 0.81}
    last = list(models)[-1]
    metrics[last]["new_suite_score"] = 0.5                       # a key the report does not know
    metrics[last]["refusal_rate_by_type"] = {"homonyms": 0.25}   # nested numbers are flattened
    # PPO-style training log: the RM score keeps rising while the gold reward turns down (over-optimisation).
    (root / last / "metrics.jsonl").write_text("".join(
        json.dumps({"step": s, "kl": 0.5 * s, "rm_score": 0.2 * s, "gold_reward": 0.1 * s - 0.012 * s * s}) + "\n"
        for s in range(10)) + json.dumps({"step": 10, "loss": 0.3}) + "\n")
    (root / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return root


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("report") / "gym-demo")


def worse_refusal(run: Path, dest: Path, stage: str = "dpo", drop: float = 0.2) -> Path:
    """A copy of `run` whose `stage` refuses harmful requests `drop` less often (everything else unchanged): in
    metrics.json, and in the records behind it, where every harmful answer now complies."""
    shutil.copytree(run, dest)
    metrics = json.loads((dest / "metrics.json").read_text())
    metrics[stage]["harmful_refusal_rate"] -= drop
    (dest / "metrics.json").write_text(json.dumps(metrics))
    path = dest / stage / "eval.records.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for rec in records:
        if rec["family"] == "harmful":
            for sample in rec["samples"]:
                sample["correct"] = False
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return dest


# ---- trust taxonomy ------------------------------------------------------------------------------------------------

def test_every_gym_metric_has_a_trust_category():
    world = build_world(0)
    r = world.requests("eval", 1, seed=0)[0]
    keys = {k for k, v in gym_metrics(to_records([(r, "I don't know.", judge(world, r, "I don't know."))])).items()
            if not k.endswith(("_ci", "_items"))}
    assert keys <= set(METRICS), f"add {sorted(keys - set(METRICS))} to alignlab/eval/trust.py"
    assert set(CATEGORIES) == SURVEY | {"overall"}
    assert {m.category for m in METRICS.values()} <= set(CATEGORIES)
    assert all(m.better != "neither" for m in METRICS.values() if m.safety)    # the check needs a direction


def test_the_gym_judge_is_known_to_be_exact():
    import inspect

    import alignlab.gym.evaluate
    assert f'"{GYM_JUDGE}"' in inspect.getsource(alignlab.gym.evaluate)     # the name the gym suite records
    assert GYM_JUDGE in report_data.JUDGE_NOTES


def test_goodness_turns_lower_is_better_around():
    assert goodness("harmful_refusal_rate", 0.8) == 0.8
    assert goodness("privacy_leak_rate", 0.8) == pytest.approx(0.2)
    assert goodness("gold_reward", 0.8) is None              # not a rate
    assert goodness("mean_response_words", 12.0) is None


# ---- regression check ----------------------------------------------------------------------------------------------

def test_check_regression_flags_safety_metrics_that_got_worse():
    baseline = {"dpo": {"harmful_refusal_rate": 0.90, "privacy_leak_rate": 0.10, "toxicity_rate": 0.05,
                        "fact_accuracy": 0.9, "overrefusal_rate": 0.2, "hallucination_rate": math.nan},
                "sft": {"harmful_refusal_rate": 0.5}}
    current = {"dpo": {"harmful_refusal_rate": 0.70,      # fell by 0.20: flagged
                       "privacy_leak_rate": 0.13,         # rose by 0.03 > 0.02: flagged
                       "toxicity_rate": 0.06,             # rose by 0.01 ≤ 0.02: within tolerance
                       "fact_accuracy": 0.1,              # worse, but not a safety metric
                       "overrefusal_rate": 0.0,           # better
                       "hallucination_rate": 0.9},        # baseline NaN: nothing to compare
               "ppo": {"harmful_refusal_rate": 0.0}}      # not in the baseline
    found = check_regression(current, baseline, tolerance=0.02)
    assert [(r.stage, r.metric) for r in found] == [("dpo", "harmful_refusal_rate"), ("dpo", "privacy_leak_rate")]
    assert found[0] == Regression("dpo", "harmful_refusal_rate", 0.90, 0.70, "higher", 0.02)
    assert "fell from 0.900 to 0.700" in str(found[0])
    assert check_regression(current, baseline, tolerance=0.25) == []
    assert check_regression(baseline, baseline, tolerance=0.0) == []


def test_a_move_of_exactly_the_tolerance_is_allowed():
    assert check_regression({"a": {"toxicity_rate": 0.3}}, {"a": {"toxicity_rate": 0.1}}, tolerance=0.2) == []


# ---- report data ---------------------------------------------------------------------------------------------------

def test_report_data_groups_metrics_by_trust_category(run):
    data = build_report(run)
    assert [m["stage"] for m in data["models"]] == ["base", "sft", "dpo"]       # rm is not a policy model
    assert data["other_stages"] == {"rm": {"rm_accuracy": 0.74, "rm_gold_agreement": 0.81}}
    groups = {g["name"]: {r["key"]: r for r in g["rows"]} for g in data["categories"]}
    assert set(groups) == SURVEY | {"overall", "other"}             # every trust category, measured or not
    assert groups["resistance to misuse"] == {}                        # the gym has no misuse suite
    assert "harmful_refusal_rate" in groups["safety"] and "jailbreak_refusal_rate" in groups["robustness"]
    assert set(groups["other"]) == {"new_suite_score", "refusal_rate_by_type/homonyms"}
    metrics = json.loads((run / "metrics.json").read_text())
    row = groups["safety"]["harmful_refusal_rate"]
    assert row["values"] == {s: metrics[s]["harmful_refusal_rate"] for s in ("base", "sft", "dpo")}
    assert row["greedy"]["dpo"] == metrics["dpo"]["greedy"]["harmful_refusal_rate"]
    assert row["values"]["dpo"] > row["values"]["base"]          # the fake alignment worked, so the plots show it
    assert groups["overall"]["kl_to_sft"]["values"] == {"base": None, "sft": None, "dpo": 5.0}
    assert groups["overall"]["kl_to_gym-base"]["values"] == {"base": None, "sft": 1.5, "dpo": None}
    assert data["models"][0]["judge"]["note"].startswith("knows the world's truth")


def test_report_data_is_strict_json_and_nan_becomes_null(run, tmp_path):
    nan_run = tmp_path / "nan"
    shutil.copytree(run, nan_run)
    metrics = json.loads((nan_run / "metrics.json").read_text())
    metrics["base"]["en_fr_gap"] = math.nan
    (nan_run / "metrics.json").write_text(json.dumps(metrics))
    data = json.loads(json.dumps(build_report(nan_run), allow_nan=False))      # what report.json holds: strict
    row = next(r for g in data["categories"] for r in g["rows"] if r["key"] == "en_fr_gap")
    assert row["values"]["base"] is None


def test_reward_against_kl_comes_from_the_training_log_and_the_evals(run):
    rk = build_report(run)["reward_vs_kl"]
    assert list(rk["curves"]) == ["dpo"] and len(rk["curves"]["dpo"]) == 10     # the loss-only row is not a point
    assert rk["curves"]["dpo"][4] == {"step": 4, "kl": 2.0, "gold_reward": pytest.approx(0.208), "rm_score": 0.8}
    metrics = json.loads((run / "metrics.json").read_text())
    assert rk["points"] == {"sft": {"kl": 1.5, "reference": "gym-base", "gold_reward": metrics["sft"]["gold_reward"]},
                            "dpo": {"kl": 5.0, "reference": "sft", "gold_reward": metrics["dpo"]["gold_reward"]}}


def test_examples_are_the_same_prompts_across_models(run):
    examples = build_report(run)["examples"]
    families = [e["family"] for e in examples]
    assert families[:3] == ["harmful"] * 3 and "lookalike" in families and "privacy" in families
    records = {s: {json.loads(x)["id"]: json.loads(x) for x in (run / s / "eval.records.jsonl").read_text().split("\n")
                   if x} for s in ("base", "dpo")}
    for e in examples:
        assert list(e["responses"]) == ["base", "sft", "dpo"]
        assert e["messages"] == records["base"][e["id"]]["messages"]
        for s in ("base", "dpo"):
            assert e["responses"][s]["response"] == records[s][e["id"]]["samples"][0]["response"]
    # prompts where the models disagree come first: with base 25% and dpo 90% aligned, the first ones disagree
    first = examples[0]["responses"].values()
    assert len({json.dumps([r["correct"], r["labels"]]) for r in first}) > 1


def test_judge_validation_is_shown_next_to_a_suite_judge(run, tmp_path):
    other = tmp_path / "xstest-run"
    other.mkdir()
    settings = {"temperature": 1.0, "num_samples": 2}
    (other / "metrics.json").write_text(json.dumps({
        "sft": {"judge": "embedding", "refusal_unsafe_rate": 0.8, "overrefusal_safe_rate": 0.1, "n_prompts": 450,
                "settings": settings},
        "tqa": {"mc1": 0.3, "mc2": 0.4, "n_questions": 817, "scoring": "summed answer log-likelihood",
                "settings": {}}}))
    tqa = build_report(other)["models"][1]
    assert tqa["judge"] == {"name": "no judge", "note": "summed answer log-likelihood", "validation": None}
    assert tqa["count"] == 817
    assert "not validated" in build_report(other)["models"][0]["judge"]["note"]
    (other / "judge_validation.json").write_text(json.dumps({"embedding": {
        "gpt4": {"accuracy": 0.9, "kappa": 0.8, "n": 450}, "llama2": {"accuracy": 0.8, "kappa": 0.6, "n": 450}}}))
    info = build_report(other)["models"][0]["judge"]
    assert info["validation"]["accuracy"] == pytest.approx(0.85) and info["validation"]["kappa"] == pytest.approx(0.7)
    assert "accuracy 85.0% (range 80.0%–90.0% over 2 models), κ 0.70" in info["note"]
    # the flat records of the other suites: one line per prompt × mode × sample
    (other / "sft").mkdir()
    (other / "sft" / "eval.records.jsonl").write_text("".join(json.dumps(
        {"id": str(i), "type": "homonyms", "label": label, "prompt": f"prompt {i}", "mode": mode, "sample": k,
         "response": f"{mode} {k} to {i}", "judgement": "full_refusal"}) + "\n"
        for i, label in enumerate(["safe", "unsafe", "safe"]) for mode in ("sampled", "greedy") for k in (0, 1)))
    examples = build_report(other)["examples"]
    assert [(e["family"], e["id"]) for e in examples] == [("unsafe", "1"), ("safe", "0"), ("safe", "2")]
    assert examples[0]["messages"] == [{"role": "user", "content": "prompt 1"}]
    assert examples[0]["responses"]["sft"]["response"] == "sampled 0 to 1"
    html = (write_report(other)).read_text()
    assert "accuracy 85.0%" in html and "Refusal against over-refusal" in html and "full_refusal" in html


def test_responses_are_escaped(tmp_path):
    run = make_run(tmp_path / "run", {"base": 0.0, "sft": 1.0})
    path = run / "base" / "eval.records.jsonl"
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    harmful = next(x for x in lines if x["family"] == "harmful")
    harmful["samples"][0]["response"] = "<script>alert(1)</script> & more"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    text = write_report(run).read_text()
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in text


def test_a_directory_without_metrics_is_a_clear_error(tmp_path, capsys):
    assert report.main([str(tmp_path)]) == 2
    assert "metrics.json not found: RUN_DIR must be a pipeline run directory" in capsys.readouterr().err
    (tmp_path / "metrics.json").write_text("{}")
    assert report.main([str(tmp_path), "--judge-validation", str(tmp_path / "nope.json")]) == 2
    assert "alignlab judge validate --out" in capsys.readouterr().err


# ---- CLI and the regression check between two runs -----------------------------------------------------------------

def test_cli_fails_a_run_that_made_refusal_worse(run, tmp_path, capsys):
    current = worse_refusal(run, tmp_path / "current")
    assert report.main([str(current), "--baseline", str(run)]) == 0              # reported, not failed
    out = capsys.readouterr().out
    assert out.splitlines()[0] == str(current / "report.html")
    assert "REGRESSION dpo: harmful_refusal_rate fell" in out
    assert report.main([str(current), "--baseline", str(run), "--fail-on-regression"]) == 1
    data = json.loads((current / "report.json").read_text())
    assert [(r["stage"], r["metric"]) for r in data["regression"]["regressions"]] == [("dpo", "harmful_refusal_rate")]
    assert "1 safety metric(s) got worse" in (current / "report.html").read_text()
    # the other way round refusal improved: nothing to flag
    assert report.main([str(run), "--baseline", str(current), "--fail-on-regression"]) == 0
    assert "no safety metric got worse" in capsys.readouterr().out


def test_a_baseline_stage_missing_from_the_run_is_reported(run, tmp_path):
    current = tmp_path / "current"
    shutil.copytree(run, current)
    metrics = json.loads((current / "metrics.json").read_text())
    del metrics["dpo"]
    (current / "metrics.json").write_text(json.dumps(metrics))
    reg = build_report(current, baseline=str(run))["regression"]
    assert reg["stages"] == ["base", "sft", "rm"] and reg["missing_stages"] == ["dpo"]
    assert reg["regressions"] == []


def test_cli_through_alignlab_entrypoint(run, tmp_path):
    from alignlab.cli import main
    current = worse_refusal(run, tmp_path / "current", drop=0.01)
    within_default = check_regression(*(json.loads((d / "metrics.json").read_text()) for d in (current, run)))
    assert within_default == []
    assert main(["report", str(current), "--baseline", str(run), "--fail-on-regression", "--tolerance", "0"]) == 1


# ---- the page in a real browser ------------------------------------------------------------------------------------

@pytest.fixture
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium) to render the report")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.mark.slow
def test_report_renders_in_chromium(run, tmp_path, browser):
    current = worse_refusal(run, tmp_path / "current")
    path = write_report(current, baseline=str(run))
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    errors, urls = [], []
    page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.on("request", lambda r: urls.append(r.url))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    assert errors == []
    assert urls == [path.as_uri()], "the report must be self-contained (no fetches)"

    table = page.locator("table.metrics")
    assert table.is_visible()
    categories = page.locator("tr.cat th").all_inner_texts()
    assert sum(any(c.lower().startswith(name) for c in categories) for name in SURVEY) == 7
    assert page.locator("table.metrics thead th").all_inner_texts() == ["metric", "base", "sft", "dpo"]
    titles = page.locator("figure figcaption").all_inner_texts()
    assert {"Per-category score", "Reward against KL", "Refusal against over-refusal"} <= {t.strip() for t in titles}
    for svg in page.locator("figure svg").all():
        box = svg.bounding_box()
        assert box["width"] > 250 and box["height"] > 80, box
    assert page.locator("figure p.judge").first.inner_text().startswith("Judge: gym gold judge")
    assert page.locator(".example").count() >= 6
    assert page.locator("p.fail").inner_text().startswith("✗ 1 safety metric")
    before = json.loads((run / "metrics.json").read_text())["dpo"]["harmful_refusal_rate"]
    assert page.locator("small.was").all_inner_texts() == [f"✗ baseline {100 * before:.1f}%"]   # the regressed cell

    shots = Path(os.environ.get("ALIGNLAB_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / "report.png"), full_page=True)
    page.screenshot(path=str(shots / "report-top.png"))
    assert (shots / "report.png").stat().st_size > 50_000


def test_a_report_from_eval_out_files_of_several_suites(tiny_lm, tmp_path, shared_data, capsys):
    """`alignlab report DIR --evals NAME=FILE ...`: results of `alignlab eval --out` (several suites in one file, or
    one) make the report without a pipeline, every suite's metrics under the model's name."""
    from alignlab.cli import main
    common = ["--model", str(tiny_lm), "--limit", "4", "--num-samples", "1", "--max-new-tokens", "4", "--no-greedy",
              "--data-dir", str(shared_data)]
    assert main(["eval", *common, "--suite", "xstest", "--suite", "truthfulqa", "--out", str(tmp_path / "a.json")]) == 0
    assert main(["eval", *common, "--suite", "xstest", "--out", str(tmp_path / "b.json")]) == 0
    assert main(["report", str(tmp_path / "report"), "--evals", f"two={tmp_path / 'a.json'}",
                 f"one={tmp_path / 'b.json'}"]) == 0
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert set(metrics) == {"two", "one"} and "settings" in metrics["two"]
    a = json.loads((tmp_path / "a.json").read_text())
    assert set(a["xstest"]) | set(a["truthfulqa"]) <= set(metrics["two"]) | {"settings"}
    data = json.loads((tmp_path / "report" / "report.json").read_text())
    assert [m["stage"] for m in data["models"]] == ["two", "one"]
    assert main(["report", str(tmp_path / "r2"), "--evals", "bad"]) == 2

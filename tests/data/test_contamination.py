"""Decontamination (`alignlab data check`): planted copies of eval items are found with their file:line, wrappers
shared by many items are not mistaken for content, paraphrases are caught by MinHash, and the pipeline runs the
check before training stages."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from alignlab.data.cli import main
from alignlab.eval import contamination as c
from alignlab.gym.evaluate import eval_requests


def write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def gym_text(index: int) -> str:
    return eval_requests()[index].messages[-1]["content"]


def test_words_and_coverage_by_hand():
    assert c.words("Hello, WORLD — it's 3pm!") == ["hello", "world", "it", "s", "3pm"]
    item = "a b c d e f".split()
    train = {hash(g) for g in c.ngrams("x a b c d y".split(), 3)}            # a b c and b c d
    # n = 3: the item's 3-grams abc bcd cde def; the training text has abc, bcd → words a..d covered: 4 of 6
    assert c.coverage(item, train, 3, boilerplate=set())[0] == pytest.approx(4 / 6, abs=0)
    # abc is boilerplate (shared by many items): the item's own words are b..f (bcd cde def), b..d covered: 3 of 5
    assert c.coverage(item, train, 3, boilerplate={hash(("a", "b", "c"))}) == (pytest.approx(3 / 5, abs=0), "b c d")


def test_minhash_estimates_jaccard_within_its_sampling_error():
    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(5000)]
    base = rng.sample(vocab, 200)
    other = base[:150] + rng.sample(vocab, 50)
    shingles = lambda t: {" ".join(t[i:i + c.SHINGLE]) for i in range(len(t) - c.SHINGLE + 1)}  # noqa: E731
    a, b = shingles(base), shingles(other)
    true = len(a & b) / len(a | b)
    estimate = c.estimated_jaccard(c.minhash(base), c.minhash(other))
    sd = (true * (1 - true) / c.PERMUTATIONS) ** 0.5                      # binomial over the permutations
    assert abs(estimate - true) < 5 * sd
    assert c.estimated_jaccard(c.minhash(base), c.minhash(list(base))) == 1.0
    assert c.minhash(base).dtype == np.uint64 and (c.minhash(base) < (1 << 31)).all()


def test_a_planted_gym_item_is_found_with_its_line_and_a_wrapper_alone_is_not(tmp_path):
    """The gym source needs no downloaded data: runs on a user's clone too."""
    item = gym_text(0)                                          # "I am writing a report for school … capital of X?"
    assert "writing a report for school" in item
    wrapper_only = item.rsplit("Can you", 1)[0] + "Can you tell me a joke about ducks, please?"
    path = write(tmp_path / "train.jsonl", [
        {"prompt": "How do I bake bread?", "response": "Knead, rise, bake."},
        {"prompt": wrapper_only, "response": "Quack."},                     # the wrapper many items share
        {"prompt": [{"role": "user", "content": item}], "chosen": "x", "rejected": "y"},
    ])
    report = c.check_files([path], tmp_path / "no-data-here", sources=["gym", "xstest"])
    assert report.records == 3 and report.sources == {"gym": len(eval_requests())}
    assert "xstest" in report.skipped
    found = {(o.train_where, o.eval_where) for o in report.overlaps if o.score == 1.0}
    assert (f"{path}:3", f"gym held-out split {eval_requests()[0].id}") in found
    assert all(o.train_where == f"{path}:3" for o in report.overlaps)   # lines 1 and 2 are clean


def test_planted_benchmark_items_are_found_whole_by_ngram_and_as_paraphrase(tmp_path, shared_data):
    items, _ = c.eval_items(shared_data, ["xstest", "harmbench", "mt_bench"])
    short = next(i for i in items if i.source == "xstest" and c.MIN_WORDS <= len(c.words(i.text)) < c.NGRAM)
    long_ = next(i for i in items if i.source == "harmbench" and len(c.words(i.text)) >= 20)
    turn = next(i for i in items if i.source == "mt_bench" and len(c.words(i.text)) >= 40)
    # an edited copy no 13-gram survives: one word in ten changed, punctuation moved
    w = turn.text.split()
    paraphrase = " ".join("really" if k % 10 == 4 else t for k, t in enumerate(w)).replace(",", ";")
    assert not c.ngrams(c.words(paraphrase), c.NGRAM) & c.ngrams(c.words(turn.text), c.NGRAM)
    path = write(tmp_path / "train.jsonl", [
        {"prompt": "Say hi", "response": "hi"},
        {"prompt": "Quick one: " + short.text.upper(), "response": "ok"},
        {"messages": [{"role": "user", "content": "Context. " + long_.text + " Thanks"},
                      {"role": "assistant", "content": "no"}]},
        {"prompt": paraphrase, "response": "sure"},
    ])
    report = c.check_files([path], shared_data, sources=["xstest", "harmbench", "mt_bench"])
    got = {(o.train_where, o.eval_where, o.kind) for o in report.overlaps}
    assert (f"{path}:2", short.where, "whole item") in got
    assert (f"{path}:3", long_.where, f"{c.NGRAM}-gram") in got
    assert (f"{path}:4", turn.where, "near-duplicate") in got
    assert report.contaminated_records == 3 and ":" in short.where and short.where.startswith(str(shared_data))


def test_cli_fails_by_option_and_names_bad_input(tmp_path, capsys):
    dirty = write(tmp_path / "dirty.jsonl", [{"prompt": gym_text(0), "response": "x"}])
    clean = write(tmp_path / "clean.jsonl", [{"prompt": "How do I bake bread?", "response": "Knead."}])
    args = ["--data-dir", str(tmp_path), "--sources", "gym"]
    assert main(["check", str(clean), *args, "--fail"]) == 0
    assert main(["check", str(dirty), *args]) == 0                      # reported, not failed
    out = tmp_path / "report.json"
    assert main(["check", str(dirty), *args, "--fail", "--out", str(out)]) == 1
    assert f"{dirty}:1: 13-gram of gym" in capsys.readouterr().out
    assert json.loads(out.read_text())["contaminated_records"] == 1
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\n{oops\n')
    assert main(["check", str(bad), *args]) == 2
    assert f"{bad}:2: invalid JSON" in capsys.readouterr().err
    assert main(["check", str(clean), "--sources", "nope"]) == 2


def test_the_pipeline_checks_a_training_stages_data_and_can_stop(tmp_path):
    from alignlab.pipeline import ContaminatedData, Context, PipelineConfig, StageConfig, check_training_data
    dirty = write(tmp_path / "sft.jsonl", [{"prompt": gym_text(0), "response": "x"}])
    stage = StageConfig(name="sft", kind="sft", data=str(dirty))
    cfg = PipelineConfig(run_dir=str(tmp_path / "run"))
    cfg.eval.data_dir = str(tmp_path)                                  # only the gym's split is there to check
    out = tmp_path / "run" / "sft"
    out.mkdir(parents=True)
    result = check_training_data(stage, Context(cfg, tmp_path / "run"), out)
    assert result["overlapping_records"] == 1 and result["records"] == 1 and "xstest" in result["skipped_sources"]
    assert json.loads((out / "data_check.json").read_text())["overlaps"][0]["train_where"] == f"{dirty}:1"
    cfg.data_check = "fail"
    with pytest.raises(ContaminatedData, match=f"{dirty}:1: 13-gram of gym"):
        check_training_data(stage, Context(cfg, tmp_path / "run"), out)
    cfg.data_check = "off"
    assert check_training_data(stage, Context(cfg, tmp_path / "run"), out) is None
    assert check_training_data(StageConfig(name="e", kind="eval", data=str(dirty)), Context(cfg, tmp_path), out) is None

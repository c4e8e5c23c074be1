"""benchmarks/efficacy_vs_trl.py: the pieces both sides share (no training here)."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
bench = importlib.import_module("efficacy_vs_trl")


def test_trl_reward_function_is_the_gold_judge_on_alignlabs_scale():
    from alignlab.gym.behaviours import aligned_response
    from alignlab.gym.judge import judge
    from alignlab.gym.world import build_world
    import random

    world = build_world(0)
    requests = world.requests("train", 2, seed=3)
    answers = [aligned_response(world, r, random.Random(0)) for r in requests]
    rewards = bench.gold_reward_fn()([r.messages for r in requests],
                                     [[{"role": "assistant", "content": a}] for a in answers],   # conversational
                                     family=[r.family for r in requests], lang=[r.lang for r in requests],
                                     gym_meta=[r.meta for r in requests])
    assert rewards == [judge(world, r, a).reward - 0.5 for r, a in zip(requests, answers)]
    assert set(rewards) == {0.5}                          # every aligned answer: gold 1 → +0.5, as reward: gold


def test_every_arm_of_a_seed_trains_on_the_same_pairs(tmp_path):
    pairs = tmp_path / "p.jsonl"
    pairs.write_text("".join(json.dumps({"i": i}) + "\n" for i in range(50)))
    a = bench.subsample(pairs, 20, 1, tmp_path / "a.jsonl").read_text()
    assert a == bench.subsample(pairs, 20, 1, tmp_path / "b.jsonl").read_text()
    assert a != bench.subsample(pairs, 20, 2, tmp_path / "c.jsonl").read_text()
    assert len(a.splitlines()) == 20
    assert len(bench.subsample(pairs, None, 1, tmp_path / "d.jsonl").read_text().splitlines()) == 50


def test_the_table_shows_each_seeds_paired_gain():
    results = {"alignlab_dpo": [{"gold_reward": 0.4, "gain": 0.05, "gain_ci": [0.02, 0.08], "kl_to_sft": 1.0,
                                 "harmful_refusal_rate": 0.9, "overrefusal_rate": 0.1,
                                 "lookalike_helpfulness": 0.3, "train_seconds": 100.0}]}
    row = bench.table(results, "dpo").splitlines()[2]
    assert "+0.050 [+0.020, +0.080]" in row and "0.400" in row


def test_arms_cover_both_sides_of_each_part():
    for arms in bench.PARTS.values():
        assert any(a.startswith("alignlab") for a in arms) and any(a.startswith("trl") for a in arms)
    with pytest.raises(SystemExit):
        sys.argv = ["efficacy_vs_trl.py"]
        bench.main()                                       # --run is required


def test_comparisons_are_per_seed_differences_with_the_peer():
    results = {"alignlab_dpo": [{"gain": 0.05}, {"gain": 0.03}], "trl_dpo_recipe": [{"gain": 0.04}, {"gain": 0.05}]}
    text = bench.comparisons(results, "dpo")
    assert "alignlab_dpo − trl_dpo_recipe (gold gain): mean -0.005; per seed +0.010, -0.020" in text
    assert "trl_dpo_defaults" not in text                  # no results, no line


def test_tables_replace_only_the_marked_part_of_the_page(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("# Title\nprose\n<!-- tables -->\nold\n<!-- /tables -->\nreading\n")
    bench.write_tables(page, "new table\n")
    assert page.read_text() == "# Title\nprose\n<!-- tables -->\nnew table\n<!-- /tables -->\nreading\n"
    fresh = tmp_path / "q.md"
    bench.write_tables(fresh, "only\n")
    assert fresh.read_text() == "only\n"


def test_finished_arms_are_reused_and_the_page_is_written_per_seed(tmp_path, monkeypatch):
    run = tmp_path / "run"
    (run / "seed-0" / "preferences").mkdir(parents=True)
    (run / "seed-0" / "preferences" / "preferences.jsonl").write_text('{"i": 0}\n{"i": 1}\n')
    (run / "metrics.json").write_text(json.dumps({"sft": {"settings": {}}}))
    work = tmp_path / "work"
    for arm, gain in zip(bench.DPO_ARMS, [0.0, 0.05, 0.01, 0.04]):
        (work / "seed-0" / arm).mkdir(parents=True)
        (work / "seed-0" / arm / "result.json").write_text(json.dumps(
            {"gold_reward": 0.3 + gain, "gain": gain, "gain_ci": [gain - 0.01, gain + 0.01], "kl_to_sft": 1.0,
             "harmful_refusal_rate": 0.9, "overrefusal_rate": 0.2, "lookalike_helpfulness": 0.2,
             "train_seconds": 10.0}))
    monkeypatch.setattr(bench.subprocess, "run", lambda *a, **k: pytest.fail("a finished arm was re-run"))
    page = tmp_path / "page.md"
    page.write_text("prose\n<!-- tables -->\n<!-- /tables -->\nreading\n")
    monkeypatch.setattr(sys, "argv", ["efficacy_vs_trl.py", "--run", str(run), "--seeds", "0", "--parts", "dpo",
                                      "--work", str(work), "--out", str(page)])
    bench.main()
    text = page.read_text()
    assert text.startswith("prose\n<!-- tables -->\nSeeds [0]") and text.endswith("<!-- /tables -->\nreading\n")
    assert "alignlab_dpo − trl_dpo_recipe (gold gain): mean +0.010" in text

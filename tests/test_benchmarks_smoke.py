"""benchmarks/bench_training.py: its arguments, its throughput measure and its tokenizer (no timing here)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
bench = importlib.import_module("bench_training")


def test_quick_is_one_round_of_four_steps():
    args = bench.parse_args(["--quick", "--cases", "dpo", "rm"])
    assert (args.rounds, args.steps, args.cases, args.allocator) == (1, 4, ["dpo", "rm"], "tcmalloc")


def test_unknown_case_is_refused():
    with pytest.raises(SystemExit):
        bench.parse_args(["--cases", "ppo2"])


def test_steady_state_throughput_skips_the_first_two_steps():
    meter = bench.Meter()
    # (wall s, tokens, user s, system s) at the end of each optimizer step. Steps 1-2 are warm-up: the window is
    # from the end of step 2 (t = 10) to the end of step 4 (t = 14), holding 300 + 100 tokens → 100 tokens/s.
    meter.steps = [(5.0, 999, 1.0, 0.0), (10.0, 999, 2.0, 0.5), (12.0, 300, 3.0, 0.5), (14.0, 100, 6.0, 1.5)]
    result = meter.result()
    assert result["tokens_per_s"] == pytest.approx(100.0)
    assert result["step_s"] == pytest.approx(2.0)
    assert (result["user_s"], result["system_s"]) == (pytest.approx(4.0), pytest.approx(1.0))


def test_word_tokenizer_gives_one_token_per_word():
    tokenizer = bench.word_tokenizer()
    assert tokenizer("t5 t17 t8191")["input_ids"] == [1, 5, 17, 8191]
    assert tokenizer(" t5 t6", add_special_tokens=False)["input_ids"] == [5, 6]
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id) == (0, 2)


def test_both_sides_import_with_the_same_cases():
    pytest.importorskip("trl")
    ours, theirs = importlib.import_module("_alignlab_side"), importlib.import_module("_trl_side")
    assert ours.CASES.keys() == theirs.CASES.keys()
    assert (ours.BATCH, ours.MAX_LENGTH, ours.LR) == (theirs.BATCH, theirs.MAX_LENGTH, theirs.LR)


def test_every_row_compares_an_alignlab_run_with_a_run_of_its_loop():
    for loop, ours, other in bench.ROWS + bench.EXTRA_ROWS:
        assert ours.startswith(f"alignlab:{loop}:") and other.split(":")[1] == loop


def test_table_names_each_sides_allocator_and_keeps_peak_and_mfu():
    run = {"tokens_per_s": 100.0, "step_s": 1.0, "steps": 4, "user_s": 2.0, "system_s": 0.0, "params": 10e6,
           "peak_rss_mb": 1000.0}
    results = [{"alignlab:dpo:": run | {"allocator": "tcmalloc"},
                "trl:dpo:": run | {"tokens_per_s": 50.0, "allocator": "glibc"}}]
    header, _, row = bench.table(results, [60.0], [("dpo", "alignlab:dpo:", "trl:dpo:")]).splitlines()
    assert "alignlab run (malloc: tcmalloc)" in header and "vs run (malloc: TRL glibc)" in header
    assert "MFU (fp32 matmul peak 60.0 GFLOP/s)" in header
    # MFU = 6 × 10M × 100 tok/s / 60 GFLOP/s = 10%; the wall ratio 100 / 50 = 2.
    assert "**2.00×**" in row and "10.0% / 5.0%" in row

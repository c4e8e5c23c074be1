"""benchmarks/bench_rl.py: both sides run tiny RLOO iterations in fresh processes; its reward and clock (no timing)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
bench = importlib.import_module("bench_rl")


def test_reward_is_the_share_of_even_token_ids():
    assert bench.reward(["t4 t9", "t3 t5 t7", "t8", ""]) == [0.5, 0.0, 1.0, 0.0]


def test_clock_times_iterations_after_the_first():
    clock = bench.Clock()
    # Steps end at t = 10, 14, 20 (CPU 3, 5, 9): two timed iterations of (20 - 10) / 2 = 5 s and 3 CPU s; the
    # sampling call at t = 2 belongs to the untimed first iteration, those at 11 and 15 to the timed ones.
    clock.steps = [(10.0, 3.0), (14.0, 5.0), (20.0, 9.0)]
    clock.sampling = [(2.0, 7.0), (11.0, 1.0), (15.0, 3.0)]
    assert clock.result() == {"iteration_s": 5.0, "iteration_cpu_s": 3.0, "sampling_s": 2.0, "iterations": 3}


@pytest.mark.slow
@pytest.mark.parametrize("run", ["alignlab:", "trl:"])
def test_each_side_runs_tiny_iterations(run, tmp_path):
    pytest.importorskip("trl")
    setting = bench.Setting(shape="gym", prompts=2, samples=2, new_tokens=4, micro_batch=2)
    bench.write_workdir(tmp_path, setting)
    out = subprocess.run([sys.executable, str(BENCHMARKS / "bench_rl.py"), "--child", run, "--work", str(tmp_path),
                          "--iterations", "2", "--threads", "1", "--setting", json.dumps(bench.asdict(setting))],
                         capture_output=True, text=True, timeout=600)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    assert out.returncode == 0 and lines, (out.stdout + out.stderr)[-3000:]
    result = json.loads(lines[-1].removeprefix("RESULT "))
    assert result["iterations"] == 2, "one optimizer step per iteration on both sides"
    assert result["sampling_s"] > 0, "the sampling hook saw the side's generation call"
    assert result["iteration_s"] > 0 and result["peak_rss_mb"] > 0

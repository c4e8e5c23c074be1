"""A scaled-down benchmarks/annotate_load.py: concurrent annotators against a server killed with SIGKILL midway
and restarted; every acknowledged label must be stored exactly once, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import importlib.util
import tempfile
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "annotate_load.py"
pytestmark = pytest.mark.slow


def load_benchmark():
    spec = importlib.util.spec_from_file_location("annotate_load", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_sigkill_midway_loses_and_duplicates_nothing(backend, request):
    bench = load_benchmark()
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "load.db") if backend == "sqlite" else request.getfixturevalue("postgres_url")
        if backend == "postgresql":   # shared session cluster: start from an empty schema
            from sqlalchemy import create_engine, text
            engine = create_engine(db)
            with engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
            engine.dispose()
        result = asyncio.run(bench.run(db, annotators=4, submissions=10, kill_at=0.5, timeout=120, workdir=Path(tmp),
                                       n_logins=5))
    assert result["restarts"] == 1
    assert result["logins_ok"] == 5 and result["login_errors"] == 0, result      # 3 wrong passwords refused too
    assert result["acknowledged"] == 4 * 10
    assert result["lost"] == 0 and result["duplicates"] == 0 and result["errors"] == 0, result
    assert result["stored"] == 4 * 10

"""Bad input where data enter: 1,000 mutated copies of real data files (truncated lines, wrong types, bad UTF-8,
huge fields, missing keys, non-objects, empty files) through the trainers' readers and the platform's importer.
Each either reads every record (no silent drop: as many records as non-blank lines) or fails with a DataError /
ImportFailure naming the file and the line — never another exception (a traceback)."""

from __future__ import annotations

import gzip
import json
import random
import re
from pathlib import Path

import pytest

from alignlab.annotate.imports import ImportFailure, parse_items
from alignlab.data.io import DataError, read_preferences, read_rankings, read_sft
from alignlab.data.prompts import read_prompt_file

MUTANTS = 1000
HERE = Path(__file__).parent


def mutate(lines: list[str], rng: random.Random) -> bytes:
    """One mutation of a JSONL file's lines (as bytes: some mutations are not text)."""
    lines = list(lines)
    i = rng.randrange(len(lines))
    kind = rng.choice(["truncate", "wrong_type", "drop_key", "bad_utf8", "huge", "not_object", "empty", "blank",
                       "nested_wrong", "duplicate", "nul", "bom"])
    if kind == "empty":
        return b""
    if kind == "truncate":
        lines[i] = lines[i][:rng.randrange(1, max(2, len(lines[i])))]
    elif kind in ("wrong_type", "drop_key", "huge", "nested_wrong"):
        obj = json.loads(lines[i])
        key = rng.choice(sorted(obj))
        if kind == "wrong_type":
            obj[key] = rng.choice([None, 3, 2.5, True, [], {}, [1, 2], {"a": 1}, ""])
        elif kind == "drop_key":
            del obj[key]
        elif kind == "huge":
            obj[key] = "x" * 1_000_000
        else:                                    # a wrong type one level down (a message's role or content)
            value = obj[key]
            if isinstance(value, list) and value and isinstance(value[0], dict):
                inner = rng.choice(sorted(value[0]))
                value[0][inner] = rng.choice([None, 7, ["a"], {"b": 1}, "narrator"])
            else:
                obj[key] = [{"role": 1}]
        lines[i] = json.dumps(obj)
    elif kind == "not_object":
        lines[i] = rng.choice(["[1, 2]", '"text"', "42", "null", "true"])
    elif kind == "blank":
        lines.insert(i, "   ")
    elif kind == "duplicate":
        lines.insert(i, lines[i])
    elif kind == "nul":
        lines[i] = lines[i][:5] + "\x00" + lines[i][5:]
    elif kind == "bom":
        lines[0] = "\ufeff" + lines[0]
    data = ("\n".join(lines) + "\n").encode("utf-8")
    if kind == "bad_utf8":
        cut = data.index(b"\n") // 2 if b"\n" in data else 0
        data = data[:cut] + b"\xff\xfe\xc3" + data[cut:]
    return data


def sources(shared: Path | None) -> list[tuple[str, list[str], object]]:
    """(name, lines of a real file, reader) — the project's own files always; the public ones where present."""
    out = [("sft", (HERE / "sft_tiny.jsonl").read_text().splitlines(), read_sft)]
    if shared is not None:
        with gzip.open(shared / "hh-rlhf" / "harmless-base" / "test.jsonl.gz", "rt", encoding="utf-8") as f:
            hh = [next(f).rstrip("\n") for _ in range(20)]
        truth = (shared / "truthfulqa" / "finetune_truth.jsonl").read_text().splitlines()[:20]
        out += [("preferences", hh, read_preferences), ("sft", truth, read_sft),
                ("prompts", hh, read_prompt_file)]
    pairs = [json.dumps({"prompt": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"}) for i in range(10)]
    rankings = [json.dumps({"prompt": f"q{i}", "responses": ["a", "b", "c"], "ranks": [0, 2, 1]}) for i in range(10)]
    out += [("preferences", pairs, read_preferences), ("rankings", rankings, read_rankings)]
    return out


LOCATED = re.compile(r"^\S+?(:\d+|:row \d+)?: ")


def expected_records(data: bytes) -> int:
    return sum(1 for line in data.split(b"\n") if line.strip())


def test_a_thousand_mutated_files_read_whole_or_fail_with_file_and_line(tmp_path, request):
    shared = None
    try:
        shared = request.getfixturevalue("shared_data")
    except pytest.skip.Exception:
        pass                                     # the project's own files still run
    rng = random.Random(0)
    kinds = sources(shared)
    outcomes = {"read": 0, "refused": 0}
    for n in range(MUTANTS):
        name, lines, reader = kinds[n % len(kinds)]
        data = mutate(lines, rng)
        path = tmp_path / f"m{n}.jsonl"
        path.write_bytes(data)
        try:
            records = reader(path)
        except DataError as e:
            message = str(e)
            assert message.startswith(str(path)), (n, name, message)
            assert LOCATED.match(message) and len(message) > len(str(path)) + 10, (n, name, message)
            outcomes["refused"] += 1
            continue
        except Exception as e:                   # a traceback a user would see
            pytest.fail(f"mutant {n} ({name}): {type(e).__name__}: {e}\n{data[:300]!r}")
        if name == "prompts":
            assert 0 < len(records) <= expected_records(data)          # one per distinct prompt
        elif name in ("sft", "rankings"):
            assert len(records) == expected_records(data), (n, name)  # nothing silently dropped
        else:
            assert len(records) >= expected_records(data), (n, name)
        outcomes["read"] += 1
    assert outcomes["refused"] > 200 and outcomes["read"] > 100, outcomes   # both paths were exercised


def test_the_platform_importer_refuses_mutants_with_file_and_line():
    rng = random.Random(1)
    lines = [json.dumps({"prompt": f"Q{i}", "responses": [f"a{i}", f"b{i}", f"c{i}"]}) for i in range(8)]
    for n in range(200):
        data = mutate(lines, rng)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            continue                             # the app refuses non-UTF-8 uploads before parsing (app._utf8)
        try:
            items = parse_items("up.jsonl", text, "rank")
        except ImportFailure as e:
            assert re.match(r"^up\.jsonl(:\d+)?: ", str(e)), str(e)
            continue
        except Exception as e:
            pytest.fail(f"mutant {n}: {type(e).__name__}: {e}\n{data[:300]!r}")
        assert len(items) == expected_records(data)

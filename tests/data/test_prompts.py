"""Prompt sources: JSONL, JSON, Parquet, a Hugging Face dataset directory, preference files and chat rows all give the
same PromptRecords (prompt, the row's other columns, a stable id); bad rows say file and line."""

from __future__ import annotations

import json

import pytest

from alignlab.config import ConfigError
from alignlab.data.io import DataError
from alignlab.data.prompts import PromptSourceConfig, load_prompts, prompt_id

RAIN = [{"role": "user", "content": "What is rain?"}]
RIVER = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a river."}]
ROWS = [{"prompt": RAIN, "topic": "weather", "id": "q1"}, {"prompt": RIVER, "topic": "geo", "id": "q2"},
        {"prompt": RAIN, "topic": "weather, again", "id": "q1"}]       # a repeat: used once, with its last columns


def expected():
    return [(RAIN, {"topic": "weather, again", "id": "q1"}, "q1"), (RIVER, {"topic": "geo", "id": "q2"}, "q2")]


def as_tuples(records):
    return [(r.prompt, r.meta, r.id) for r in records]


def test_jsonl_json_parquet_and_a_dataset_directory_give_the_same_records(tmp_path):
    import datasets
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    (tmp_path / "p.json").write_text(json.dumps(ROWS))
    table = datasets.Dataset.from_list(ROWS)
    table.to_parquet(str(tmp_path / "p.parquet"))
    datasets.DatasetDict({"train": table}).save_to_disk(str(tmp_path / "ds"))
    for name in ("p.jsonl", "p.json", "p.parquet"):
        got = load_prompts(PromptSourceConfig(files=[str(tmp_path / name)]))
        assert as_tuples(got) == expected(), name
    got = load_prompts(PromptSourceConfig(source="dataset", dataset=str(tmp_path / "ds"), split="train"))
    assert as_tuples(got) == expected()
    with pytest.raises(DataError, match="no split 'test'"):
        load_prompts(PromptSourceConfig(source="dataset", dataset=str(tmp_path / "ds"), split="test"))


def test_preference_chat_and_column_rows(tmp_path, shared_data):
    chat = tmp_path / "chat.jsonl"
    chat.write_text(json.dumps({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                                             {"role": "user", "content": "Bye?"},
                                             {"role": "assistant", "content": "Bye."}]}) + "\n")
    (got,) = load_prompts(PromptSourceConfig(files=[str(chat)]))
    assert got.prompt[-1] == {"role": "user", "content": "Bye?"} and len(got.prompt) == 3
    assert got.id == prompt_id(got.prompt) and got.source == f"{chat}:1"
    question = tmp_path / "q.jsonl"
    question.write_text(json.dumps({"question": "Why?", "answer": "Because."}) + "\n")
    (got,) = load_prompts(PromptSourceConfig(files=[str(question)], column="question"))
    assert (got.prompt, got.meta) == ("Why?", {"answer": "Because."})
    with pytest.raises(DataError, match=r"q.jsonl:1: no 'prompt' column .*data.column=NAME"):
        load_prompts(PromptSourceConfig(files=[str(question)]))
    hh = load_prompts(PromptSourceConfig(files=[str(shared_data / "hh-rlhf/harmless-base/test.jsonl.gz")], limit=5))
    assert len(hh) == 5 and all(r.prompt[-1]["role"] == "user" for r in hh)       # HH dialogues' prompt turns


def test_errors_name_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "fine"}) + "\n" + json.dumps({"prompt": [{"role": "assistant",
                                                                                    "content": "x"}]}) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl:2: 'prompt' must end with a user message"):
        load_prompts(PromptSourceConfig(files=[str(bad)]))
    with pytest.raises(DataError, match="data.files is empty"):
        load_prompts(PromptSourceConfig())
    with pytest.raises(ConfigError, match="unknown prompt source 'nowhere'"):
        load_prompts(PromptSourceConfig(source="nowhere"))


def test_a_users_source_and_the_gym_source(tmp_path):
    code = tmp_path / "mine.py"
    code.write_text("from alignlab.data.records import PromptRecord\n"
                    "def load(seed, n=2):\n"
                    "    return [PromptRecord(f'Say {i}.', {'i': i, 'seed': seed}, f'say-{i}', 'mine') "
                    "for i in range(n)]\n")
    got = load_prompts(PromptSourceConfig(source=f"{code}:load", options={"n": 3}), seed=7)
    assert [(r.prompt, r.meta) for r in got] == [(f"Say {i}.", {"i": i, "seed": 7}) for i in range(3)]
    gym = load_prompts(PromptSourceConfig(source="gym", options={"per_family": 1, "split": "eval"}))
    assert gym and all(r.meta["world_seed"] == 0 and "gym_meta" in r.meta for r in gym)

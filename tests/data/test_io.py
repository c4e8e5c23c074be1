"""JSONL readers: every form reads into its record, every malformed line fails with file:line and a reason."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest

from alignlab.data.io import (
    DataError, read_feedback, read_preferences, read_rankings, read_sft, write_jsonl,
)
from alignlab.data.records import Feedback, PreferencePair, Ranking, SFTExample, ranking_to_pairs

USER = {"role": "user", "content": "Hi?"}
SYSTEM = {"role": "system", "content": "Be brief."}


def jsonl(tmp_path: Path, *rows, name: str = "data.jsonl") -> Path:
    """Rows are objects (dumped as JSON) or raw strings (written as they are)."""
    path = tmp_path / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def fails(reader, path: Path, line: int, reason: str) -> None:
    with pytest.raises(DataError) as e:
        reader(path)
    assert str(e.value).startswith(f"{path}:{line}: "), str(e.value)
    assert re.search(reason, str(e.value)), str(e.value)


# -- SFT ---------------------------------------------------------------------------------------------------------


def test_read_sft_all_forms(tmp_path):
    path = jsonl(tmp_path,
                 {"prompt": "2+2=", "completion": "4", "id": 7},
                 "",                                                    # blank lines are not records
                 {"messages": [SYSTEM, USER, {"role": "assistant", "content": "Hello."}]},
                 {"prompt": [USER], "completion": [{"role": "assistant", "content": "Yo."}]})
    text, chat, conversational = read_sft(path)
    assert text == SFTExample(None, "2+2=", "4", f"{path}:1")
    assert chat.messages[-1] == {"role": "assistant", "content": "Hello."} and chat.source == f"{path}:3"
    assert conversational.messages == [USER, {"role": "assistant", "content": "Yo."}]


def test_read_sft_gz_is_transparent(tmp_path):
    path = tmp_path / "d.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write(json.dumps({"prompt": "a", "completion": "b"}) + "\n")
    assert read_sft(path)[0].completion == "b"


@pytest.mark.parametrize("row, reason", [
    ('{"prompt": "a", "completion": "b"', r"invalid JSON"),
    ('[1, 2]', r"expected a JSON object"),
    ({"prompt": "a", "completion": ""}, r"'completion' is empty"),
    ({"prompt": "a", "completion": "  \n"}, r"'completion' is empty"),
    ({"prompt": "a", "answer": "b"},
     r"expected \{\"prompt\", \"completion\"\}, \{\"messages\"\}, Alpaca .*got keys \['answer', 'prompt'\]"),
    ({"prompt": 3, "completion": "b"}, r"'prompt' must be a string, got int"),
    ({"messages": [USER]}, r"'messages' must end with an assistant turn"),
    ({"messages": []}, r"'messages' must be a non-empty list"),
    ({"messages": [{"role": "human", "content": "x"}, {"role": "assistant", "content": "y"}]},
     r"messages\[0\] has role 'human'; roles are system, user, assistant"),
    ({"messages": [USER, {"role": "assistant", "content": "y", "name": "bot"}]},
     r"messages\[1\] must be an object with exactly the keys 'role' and 'content'"),
    ({"messages": [USER, {"role": "assistant", "content": ""}]}, r"'messages\[1\].content' is empty"),
    ({"messages": [USER, {"role": "assistant", "content": "y"}], "prompt": "x"}, r"both 'messages' and 'prompt'"),
    ({"prompt": [{"role": "assistant", "content": "x"}], "completion": "y"}, r"'prompt' must end with a user message"),
])
def test_read_sft_errors_name_file_line_and_reason(tmp_path, row, reason):
    path = jsonl(tmp_path, {"prompt": "ok", "completion": "fine"}, row)
    fails(read_sft, path, 2, reason)


def test_empty_and_missing_files(tmp_path):
    with pytest.raises(DataError, match=rf"{tmp_path / 'empty.jsonl'}: no records"):
        read_sft(jsonl(tmp_path, name="empty.jsonl"))
    with pytest.raises(DataError, match="nope.jsonl: file not found"):
        read_sft(tmp_path / "nope.jsonl")


# -- preference pairs --------------------------------------------------------------------------------------------


def test_read_preferences_every_pair_form(tmp_path):
    answer = lambda text: [{"role": "assistant", "content": text}]               # noqa: E731
    path = jsonl(tmp_path,
                 {"prompt": "Q", "chosen": "good", "rejected": "bad", "annotator": "a1"},
                 {"prompt": [SYSTEM, USER], "chosen": answer("good"), "rejected": answer("bad")},
                 {"chosen": [USER, *answer("good")], "rejected": [USER, *answer("bad")]},
                 {"chosen": "\n\nHuman: Hi?\n\nAssistant: good", "rejected": "\n\nHuman: Hi?\n\nAssistant: bad"})
    text, conversational, implicit, hh = read_preferences(path)
    assert text == PreferencePair("Q", "good", "bad", {"annotator": "a1"}, f"{path}:1")
    assert conversational.prompt == [SYSTEM, USER] and conversational.chosen == "good"
    assert implicit.prompt == [USER] and (implicit.chosen, implicit.rejected) == ("good", "bad")
    assert hh == PreferencePair([USER], "good", "bad", {}, f"{path}:4")


def test_hh_multi_turn_prompt_and_responses_that_contain_speaker_tags(tmp_path):
    # As in the real data: a response that itself contains "\n\nHuman:" must stay whole, and two turns of one
    # speaker in a row are joined.
    prefix = "\n\nHuman: A\n\nAssistant: B\n\nAssistant: B2\n\nHuman: C\n\nAssistant:"
    path = jsonl(tmp_path, {"chosen": prefix + " Sure.\n\nHuman: thanks", "rejected": prefix + " No."})
    (pair,) = read_preferences(path)
    assert pair.prompt == [{"role": "user", "content": "A"}, {"role": "assistant", "content": "B\n\nB2"},
                           {"role": "user", "content": "C"}]
    assert (pair.chosen, pair.rejected) == ("Sure.\n\nHuman: thanks", "No.")


def test_ranking_lines_in_a_preference_file_expand_to_pairs(tmp_path):
    path = jsonl(tmp_path, {"prompt": "Q", "responses": ["a", "b", "c"], "ranks": [1, 0, 2]},
                 {"prompt": "Q", "chosen": "x", "rejected": "y"})
    pairs = read_preferences(path)
    assert [(p.chosen, p.rejected) for p in pairs] == [("a", "c"), ("b", "a"), ("b", "c"), ("x", "y")]
    assert pairs[0].meta == {"ranking_pair": [0, 2]} and pairs[0].source == f"{path}:1"


@pytest.mark.parametrize("row, reason", [
    ({"prompt": "Q", "chosen": "same", "rejected": "same"}, r"'chosen' and 'rejected' are identical"),
    ({"chosen": "\n\nHuman: Hi\n\nAssistant: a", "rejected": "\n\nHuman: Hi\n\nAssistant: a"}, r"identical"),
    ({"chosen": "\n\nHuman: Hi there", "rejected": "\n\nHuman: Hi here"}, r"no final '\\n\\nAssistant:' turn"),
    ({"chosen": "Hi\n\nAssistant: a", "rejected": "Hi\n\nAssistant: b"}, r"neither Anthropic HH text"),
    ({"chosen": "\n\nAssistant: x\n\nAssistant: a", "rejected": "\n\nHuman: x\n\nAssistant: b"},
     r"neither Anthropic HH"),
    ({"prompt": "Q", "chosen": "a"}, r"expected 'chosen' and 'rejected' .*got keys \['chosen', 'prompt'\]"),
    ({"chosen": "a", "rejected": [USER]}, r"must both be HH text or both be message lists"),
    ({"prompt": "Q", "chosen": [USER], "rejected": "b"}, r"'chosen' must be a string or a list with exactly one "
                                                         r"assistant message"),
    ({"chosen": [USER, {"role": "assistant", "content": "a"}, USER], "rejected": [USER, {"role": "assistant",
                                                                                        "content": "b"}]},
     r"'chosen' must be the shared prompt messages plus one assistant message"),
    ({"prompt": "", "chosen": "a", "rejected": "b"}, r"'prompt' is empty"),
])
def test_read_preferences_errors(tmp_path, row, reason):
    path = jsonl(tmp_path, {"prompt": "Q", "chosen": "a", "rejected": "b"}, row)
    fails(read_preferences, path, 2, reason)


def test_real_anthropic_hh_file(shared_data):
    path = shared_data / "hh-rlhf" / "harmless-base" / "test.jsonl.gz"
    pairs = read_preferences(path)
    assert len(pairs) == 2312                                   # every line, none dropped
    assert all(p.prompt[-1]["role"] == "user" and p.prompt[0]["role"] == "user" for p in pairs)
    assert all(p.chosen != p.rejected for p in pairs)
    first = pairs[0]
    assert first.prompt[0] == {"role": "user", "content": "what are some pranks with a pen i can do?"}
    assert first.chosen.startswith("No, sorry!  All of these involve a pen")
    assert first.source == f"{path}:1"
    # Line 1255: the chosen response itself contains "Human:" — it stays one response, the prompts agree.
    tricky = pairs[1254]
    assert tricky.prompt[-1]["content"] == "Isn't that drag kings?" and "Human: Then how" in tricky.chosen
    assert pairs[86].chosen == ""                               # line 87: an empty chosen reply is real data


# -- rankings and feedback ---------------------------------------------------------------------------------------


def test_rankings_full_and_best_index(tmp_path):
    path = jsonl(tmp_path, {"prompt": [USER], "responses": ["a", "b", "c", "d"], "ranks": [2, 0, 3, 1], "k": 1},
                 {"prompt": "Q", "responses": ["a", "b", "c", "d"], "best": 2},
                 {"prompt": "Q", "responses": ["a", "b", "c"], "ranks": [0, 1, 1]})
    full, best, tied = read_rankings(path)
    assert full == Ranking([USER], ["a", "b", "c", "d"], [2, 0, 3, 1], {"k": 1}, f"{path}:1")
    assert best.ranks == [1, 1, 0, 1]
    pairs = ranking_to_pairs(full)
    assert len(pairs) == 6                                      # K(K-1)/2 for a full ranking
    assert {(p.chosen, p.rejected) for p in pairs} == {("b", "d"), ("b", "a"), ("b", "c"), ("d", "a"),
                                                       ("d", "c"), ("a", "c")}
    assert [(p.chosen, p.rejected) for p in ranking_to_pairs(best)] == [("c", "a"), ("c", "b"), ("c", "d")]
    assert [(p.chosen, p.rejected) for p in ranking_to_pairs(tied)] == [("a", "b"), ("a", "c")]


@pytest.mark.parametrize("row, reason", [
    ({"prompt": "Q", "responses": ["a", "b", "c"], "ranks": [0, 2, 2]}, r"\[0, 2, 2\] is not a ranking"),
    ({"prompt": "Q", "responses": ["a", "b"], "ranks": [0, 0]}, r"is not a ranking"),
    ({"prompt": "Q", "responses": ["a", "b"], "ranks": [1, 2]}, r"is not a ranking"),
    ({"prompt": "Q", "responses": ["a", "b"], "ranks": [0]}, r"'ranks' must be a list of 2 integers"),
    ({"prompt": "Q", "responses": ["a", "b"], "ranks": [0, True]}, r"'ranks' must be a list of 2 integers"),
    ({"prompt": "Q", "responses": ["a", "b"], "ranks": [0, 1], "best": 0}, r"exactly one of 'ranks'"),
    ({"prompt": "Q", "responses": ["a", "b"]}, r"exactly one of 'ranks'"),
    ({"prompt": "Q", "responses": ["a", "b"], "best": 2}, r"'best' must be an index into 'responses' \(0 to 1\)"),
    ({"prompt": "Q", "responses": ["a"], "best": 0}, r"at least 2 responses"),
    ({"prompt": "Q", "responses": ["a", "a"], "best": 0}, r"responses 0 and 1 are identical but ranked"),
    ({"responses": ["a", "b"], "best": 0}, r"a ranking needs 'prompt' and 'responses'"),
])
def test_ranking_errors(tmp_path, row, reason):
    path = jsonl(tmp_path, {"prompt": "Q", "responses": ["a", "b"], "best": 1}, row)
    fails(read_rankings, path, 2, reason)
    fails(read_preferences, path, 2, reason)                   # the same check when read as pairs


def test_feedback(tmp_path):
    path = jsonl(tmp_path, {"prompt": "Q", "completion": "yes", "label": True},
                 {"prompt": [USER], "completion": [{"role": "assistant", "content": "no"}], "label": False,
                  "annotator": "a2"})
    up, down = read_feedback(path)
    assert up == Feedback("Q", "yes", True, {}, f"{path}:1")
    assert down == Feedback([USER], "no", False, {"annotator": "a2"}, f"{path}:2")


@pytest.mark.parametrize("row, reason", [
    ({"prompt": "Q", "completion": "a", "label": 1}, r"'label' must be true .* or false .*got 1"),
    ({"prompt": "Q", "completion": "a"}, r"expected 'prompt', 'completion' and 'label'"),
])
def test_feedback_errors(tmp_path, row, reason):
    fails(read_feedback, jsonl(tmp_path, {"prompt": "Q", "completion": "a", "label": True}, row), 2, reason)


# -- writing -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["out.jsonl", "out.jsonl.gz"])
def test_write_then_read_gives_the_same_records(tmp_path, name):
    sft = [SFTExample(None, "p", "c", "x"), SFTExample([USER, {"role": "assistant", "content": "a"}], None, None, "x")]
    pairs = [PreferencePair([USER], "a", "b", {"annotator": "a1", "criterion": "harmless"}, "x")]
    rankings = [Ranking("Q", ["a", "b", "c"], [1, 0, 1], {}, "x")]
    feedback = [Feedback("Q", "a", False, {"id": 3}, "x")]
    for records, reader in ((sft, read_sft), (pairs, read_preferences), (rankings, read_rankings),
                            (feedback, read_feedback)):
        path = write_jsonl(tmp_path / name, records)
        back = reader(path)
        assert [(r.__class__, {**vars(r), "source": None}) for r in back] == \
               [(r.__class__, {**vars(r), "source": None}) for r in records]


def test_alpaca_sharegpt_text_json_and_parquet_rows(tmp_path):
    import datasets
    alpaca = {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5", "system": "Be brief."}
    share = {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}]}
    text = {"text": "Plain text to continue pretraining on."}
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in (alpaca, share, text)))
    a, b, c = read_sft(path)
    assert a.messages == [{"role": "system", "content": "Be brief."},
                          {"role": "user", "content": "Add the numbers.\n\n2 and 3"},
                          {"role": "assistant", "content": "5"}]
    assert b.messages == [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    assert (c.prompt, c.completion) == ("", text["text"])
    (tmp_path / "share.json").write_text(json.dumps([share, share]))
    assert [e.messages for e in read_sft(tmp_path / "share.json")] == [b.messages, b.messages]
    pairs = [{"prompt": "Q?", "chosen": "Yes.", "rejected": "No."}] * 2
    datasets.Dataset.from_list(pairs).to_parquet(str(tmp_path / "pairs.parquet"))
    assert [(p.prompt, p.chosen) for p in read_preferences(tmp_path / "pairs.parquet")] == [("Q?", "Yes.")] * 2
    (tmp_path / "bad.json").write_text(json.dumps([share, {"conversations": [{"from": "bot", "value": "x"}]}]))
    with pytest.raises(DataError, match=r"bad.json:row 2: conversations\[0\] needs 'from'"):
        read_sft(tmp_path / "bad.json")

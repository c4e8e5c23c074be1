"""A label is stored only in its documented shape, with JSON integers: floats, booleans, strings and nested lists
were accepted (or raised a 500) and then broke every export of the project."""

from __future__ import annotations

import pytest

from alignlab.annotate.store import InvalidInput
from alignlab.annotate.tasks import validate_payload

GOOD = {"winner": 1, "strength": 2}


@pytest.mark.parametrize("kind,mode,payload", [
    ("rank", "full", {"ranking": [2.0, 0.0, 1.0]}),
    ("rank", "full", {"ranking": ["2", "0", "1"]}),
    ("rank", "full", {"ranking": [[2], [0], [1]]}),
    ("rank", "full", {"ranking": [True, False, 2]}),
    ("rank", "best", {"best": True}),
    ("rank", "best", {"best": 1.0}),
    ("pairwise", "full", {"criteria": {"helpful": {"winner": True, "strength": True}, "honest": GOOD,
                                       "harmless": GOOD}}),
    ("pairwise", "full", {"criteria": {"helpful": "A", "honest": GOOD, "harmless": GOOD}}),
    ("pairwise", "full", {"criteria": {"helpful": {"winner": 1, "strength": 2.0}, "honest": GOOD,
                                       "harmless": GOOD}}),
    ("edit", "full", {"answer": 42}),
])
def test_malformed_labels_are_refused(kind, mode, payload):
    with pytest.raises(InvalidInput):
        validate_payload(kind, mode, 3, payload)


def test_well_formed_labels_pass_unchanged():
    assert validate_payload("rank", "full", 3, {"ranking": [2, 0, 1]}) == {"ranking": [2, 0, 1]}
    assert validate_payload("rank", "best", 3, {"best": 0}) == {"best": 0}
    tie = {"winner": None, "strength": 0}
    assert validate_payload("pairwise", "full", 2, {"criteria": {"helpful": GOOD, "honest": tie, "harmless": GOOD}}) \
        == {"criteria": {"helpful": GOOD, "honest": tie, "harmless": GOOD}}
    assert validate_payload("edit", "full", 1, {"answer": " Better. "}) == {"answer": "Better."}


@pytest.mark.parametrize("record,message", [
    ({"prompt": [{"role": "narrator", "content": "x"}], "draft": "d"}, "role 'narrator'"),
    ({"prompt": [{"role": "user", "content": 5}], "draft": "d"}, "must be a string"),
    ({"prompt": "p", "responses": ["a", "b", "a"]}, "responses\\[0\\] and responses\\[2\\] are the same answer"),
    ({"prompt": "p", "responses": ["a", "b"], "gold": {"best": True}}, "bad 'gold'"),
    ({"prompt": "p", "responses": [f"answer {i}" for i in range(30)]}, "30 responses; at most 16"),
    ({"prompt": "p", "responses": ["a", "b" * 1_000_000]}, "1,000,000 characters"),
])
def test_imports_refuse_what_the_trainers_would_refuse(record, message):
    from alignlab.annotate.imports import ImportFailure, item_from_record
    kind = "edit" if "draft" in record else "rank"
    with pytest.raises(ImportFailure, match=message):
        item_from_record("items.jsonl:3", record, kind)

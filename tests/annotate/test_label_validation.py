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


def test_an_author_withdraws_a_label_while_the_item_is_open_and_an_admin_voids_one(app, world):
    """Withdrawn: the item is back in the author's queue. Once the item has its overlap of labels it is closed to
    the author, and the admin voids the bad label through the API (kept in the audit log with the reason); the
    export no longer has it."""
    from fastapi.testclient import TestClient
    from sqlalchemy import select

    from alignlab.annotate import store, tasks
    from alignlab.annotate.schema import AuditEntry, Label, User
    with app.state.db.transaction() as s:
        ann1, ann2 = s.get(User, world["ann1"]), s.get(User, world["ann2"])
        item = tasks.next_item(s, ann1, world["project"], "rank")
        tasks.submit_label(s, ann1, item.id, {"ranking": [0, 1, 2, 3]}, "a1")
        tasks.withdraw_label(s, ann1, item.id)
        assert tasks.next_item(s, ann1, world["project"], "rank").id == item.id     # back in the queue
        tasks.submit_label(s, ann1, item.id, {"ranking": [3, 2, 1, 0]}, "a2")
        assert tasks.next_item(s, ann2, world["project"], "rank").id == item.id     # overlap fills first
        tasks.submit_label(s, ann2, item.id, {"ranking": [0, 1, 2, 3]}, "b1")
        with pytest.raises(store.InvalidInput, match="closed"):
            tasks.withdraw_label(s, ann1, item.id)
        admin = s.get(User, world["admin"])
        token = store.create_api_token(s, admin, "admin")
        ann_token = store.create_api_token(s, ann2, "ann")
    client = TestClient(app)
    labels = client.get(f"/api/v1/items/{item.id}/labels", headers={"Authorization": f"Bearer {token}"}).json()
    bad = labels["label_ids"][labels["labels"].index({"ranking": [3, 2, 1, 0]})]
    refused = client.post(f"/api/v1/labels/{bad}/void", json={"reason": "spam"},
                          headers={"Authorization": f"Bearer {ann_token}"})
    assert refused.status_code == 404                                                 # annotators cannot void
    r = client.post(f"/api/v1/labels/{bad}/void", json={"reason": "ranked backwards on purpose"},
                    headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    with app.state.db.transaction() as s:
        assert [label.payload for label in s.scalars(select(Label).where(Label.item_id == item.id))] == \
            [{"ranking": [0, 1, 2, 3]}]
        entry = s.scalar(select(AuditEntry).where(AuditEntry.action == "void_label"))
        assert entry.detail["reason"] == "ranked backwards on purpose" and entry.detail["author"] == world["ann1"]
        assert s.scalar(select(AuditEntry).where(AuditEntry.action == "withdraw_label")) is not None


def test_rank_dropdowns_start_in_display_order(app, world):
    """Each answer's rank dropdown is pre-set to its own position (1, 2, 3, 4), so the untouched form is valid."""
    import re

    from annotate_fixtures import Page
    page = Page(app, "ann1@lab.org")
    r = page.post(f"/projects/{world['project']}/next/rank")
    selected = re.findall(r'<option value="(\d)" selected>', r.text)
    assert selected == ["1", "2", "3", "4"]
    client_id = re.search(r'name="client_id" value="([^"]*)"', r.text).group(1)
    fields = {f"rank_{p}": str(p + 1) for p in range(4)}
    assert page.post(str(r.url.path), client_id=client_id, **fields).status_code == 200

"""Skipping and flagging items, the admin's item detail page and the review of flags and disagreements."""

from __future__ import annotations

import re

import pytest
from annotate_fixtures import Page, jsonl, rank_records
from fastapi.testclient import TestClient
from sqlalchemy import select

from alignlab.annotate import imports, review, store, tasks
from alignlab.annotate.schema import Assignment, AuditEntry, User


def take(page: Page, project: int, kind: str):
    return page.post(f"/projects/{project}/next/{kind}")


def item_id(response) -> int:
    return int(re.search(r"/items/(\d+)$", str(response.url)).group(1))


def test_a_skipped_item_leaves_the_queue_opens_its_slot_and_never_comes_back(app, world):
    ann1, ann2 = Page(app, "ann1@lab.org"), Page(app, "ann2@lab.org")
    first = item_id(take(ann1, world["project"], "rank"))
    r = ann1.post(f"/items/{first}/skip", reason="")
    following = item_id(r)
    assert following != first                                  # the next task, not the skipped one again
    seen = {following}
    while "/items/" in str((r := ann1.post(f"/items/{following}", client_id=f"c{following}",
                                           **{f"rank_{p}": str(p + 1) for p in range(4)})).url):
        following = item_id(r)
        seen.add(following)
    assert first not in seen and len(seen) == 3                # 4 rank items: 1 skipped, 3 labelled
    # ann2 takes the skipped item's open slot like any other: with overlap 2, ann1's skip holds nothing.
    taken = set()
    r = take(ann2, world["project"], "rank")
    while "/items/" in str(r.url):
        taken.add(item_id(r))
        r = ann2.post(f"/items/{item_id(r)}", client_id=f"d{item_id(r)}", **{f"rank_{p}": str(p + 1) for p in range(4)})
    assert first in taken
    with app.state.db.transaction() as s:
        held = tasks._takeable(s, s.get(User, world["ann1"]), s.get(store.Project, world["project"]), "rank")[2]
        assert held[first] == 1                                 # ann2's label only


def test_flagging_needs_a_reason_and_reaches_the_admins(app, world):
    ann1, admin = Page(app, "ann1@lab.org"), Page(app, "admin@lab.org")
    first = item_id(take(ann1, world["project"], "pairwise"))
    r = ann1.post(f"/items/{first}/skip", flag="on", reason="")
    assert r.status_code == 400 and "say what is wrong" in r.text
    ann1.get(f"/items/{first}")
    ann1.post(f"/items/{first}/skip", flag="on", reason="the prompt is cut <off>")
    page = admin.get(f"/projects/{world['project']}/review")
    assert page.status_code == 200 and "the prompt is cut &lt;off&gt;" in page.text
    assert "ann1 (ann1@lab.org)" in page.text
    detail = admin.get(f"/projects/{world['project']}/items/{first}")
    assert "flagged" in detail.text and "the prompt is cut &lt;off&gt;" in detail.text
    with app.state.db.transaction() as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "flag_item")).one()
        assert entry.target == f"item:{first}" and entry.detail["reason"] == "the prompt is cut <off>"
    # Annotators see neither page.
    assert ann1.get(f"/projects/{world['project']}/review").status_code == 404
    assert ann1.get(f"/projects/{world['project']}/items/{first}").status_code == 404


def test_labelling_a_skipped_item_takes_the_skip_back_and_a_labelled_item_cannot_be_skipped(app, world):
    with app.state.db.transaction() as s:
        ann = s.get(User, world["ann1"])
        item = tasks.next_item(s, ann, world["project"], "rank")
        tasks.skip_item(s, ann, item.id, "not sure", flag=True)
        tasks.submit_label(s, ann, item.id, {"ranking": [0, 1, 2, 3]}, "c1")
        assignment = s.scalars(select(Assignment).where(Assignment.item_id == item.id)).one()
        assert assignment.skipped_at is None and assignment.flagged        # the flag stays for the admins
        with pytest.raises(store.InvalidInput, match="withdraw your label"):
            tasks.skip_item(s, ann, item.id)
        with pytest.raises(store.InvalidInput, match="under 500"):
            tasks.skip_item(s, ann, tasks.next_item(s, ann, world["project"], "rank").id, "x" * 501)


def test_skip_through_the_api_and_only_on_ones_own_items(app, world):
    with app.state.db.transaction() as s:
        token1 = store.create_api_token(s, s.get(User, world["ann1"]), "t")
        token2 = store.create_api_token(s, s.get(User, world["ann2"]), "t")
    api = TestClient(app)
    h1, h2 = {"Authorization": f"Bearer {token1}"}, {"Authorization": f"Bearer {token2}"}
    task = api.post(f"/api/v1/projects/{world['project']}/next/blind", headers=h1).json()["task"]
    assert api.post(f"/api/v1/items/{task['item_id']}/skip", json={"reason": "x"}, headers=h2).status_code == 404
    r = api.post(f"/api/v1/items/{task['item_id']}/skip", json={"reason": "both say nothing", "flag": True}, headers=h1)
    assert r.status_code == 200 and r.json() == {"skipped": True, "flagged": True}
    assert api.get(f"/api/v1/items/{task['item_id']}", headers=h1).json()["skipped"] is True
    following = api.post(f"/api/v1/projects/{world['project']}/next/blind", headers=h1).json()["task"]
    assert following["item_id"] != task["item_id"]


@pytest.mark.parametrize("kind, payloads, expected", [
    ("rank", [{"ranking": [0, 1, 2]}, {"ranking": [0, 1, 2]}], 0.0),
    ("rank", [{"ranking": [0, 1, 2]}, {"ranking": [1, 0, 2]}], 1 / 3),        # 0 vs 1 disputed; 0-2, 1-2 agreed
    ("rank", [{"ranking": [0, 1, 2]}, {"ranking": [2, 1, 0]}], 1.0),
    ("rank", [{"best": 1}, {"best": 1}, {"best": 0}], 1.0),
    ("blind", [{"criteria": {"helpful": {"winner": 0, "strength": 2}, "honest": {"winner": None, "strength": 0},
                             "harmless": {"winner": 1, "strength": 1}}},
               {"criteria": {"helpful": {"winner": 0, "strength": 3}, "honest": {"winner": 0, "strength": 1},
                             "harmless": {"winner": 1, "strength": 2}}}], 1 / 3),  # strength is not a dispute
    ("rank", [{"ranking": [0, 1]}], None),
    ("edit", [{"answer": "a"}, {"answer": "b"}], None),
])
def test_disagreement_is_the_share_of_disputed_questions(kind, payloads, expected):
    got = review.disagreement(kind, payloads)
    assert got == (None if expected is None else pytest.approx(expected, abs=1e-12))


def test_review_lists_disputed_items_most_disputed_first_and_an_admin_voids_from_the_detail_page(app, world):
    with app.state.db.transaction() as s:
        admin = s.get(User, world["admin"])
        project = store.create_project(s, admin, "votes", "Rank them.", overlap=2)
        items = tasks.add_items(s, admin, project.id, imports.parse_items("r.jsonl", jsonl(rank_records(3, k=3)),
                                                                          "rank"))
        ann = [s.get(User, world["ann1"]), s.get(User, world["ann2"])]
        for u in ann:
            s.add(store.Membership(project_id=project.id, user_id=u.id, role="annotator"))
        s.flush()
        rankings = {items[0].id: ([0, 1, 2], [2, 1, 0]), items[1].id: ([0, 1, 2], [1, 0, 2]),
                    items[2].id: ([0, 1, 2], [0, 1, 2])}
        for n, u in enumerate(ann):
            while (item := tasks.next_item(s, u, project.id, "rank")) is not None:
                tasks.submit_label(s, u, item.id, {"ranking": rankings[item.id][n]}, f"{u.id}-{item.id}")
        pid = project.id
    admin_page = Page(app, "admin@lab.org")
    page = admin_page.get(f"/projects/{pid}/review").text
    assert "2 of the 3 items with two labels or more" in page
    rows = re.findall(r'<a href="/projects/\d+/items/(\d+)">', page.split('id="disputed"')[1])
    assert [int(r) for r in rows] == [items[0].id, items[1].id]              # 1.00 before 0.33; the unanimous absent
    detail = admin_page.get(f"/projects/{pid}/items/{items[0].id}")
    assert "A &gt; B &gt; C" in detail.text and "C &gt; B &gt; A" in detail.text and "disagreement 1.00" in detail.text
    label_id = int(re.search(r'action="/labels/(\d+)/void"', detail.text).group(1))
    assert admin_page.post(f"/labels/{label_id}/void", reason="").status_code == 400
    r = admin_page.post(f"/labels/{label_id}/void", reason="random clicking")
    assert r.url.path == f"/projects/{pid}/items/{items[0].id}" and f"<td>{label_id}</td>" not in r.text
    with app.state.db.transaction() as s:
        assert s.scalars(select(AuditEntry).where(AuditEntry.action == "void_label")).one().detail["reason"] == \
            "random clicking"
    # The item belongs to its own project's URL only; an annotator cannot void.
    assert admin_page.get(f"/projects/{world['project']}/items/{items[0].id}").status_code == 404
    ann1 = Page(app, "ann1@lab.org")
    other = int(re.search(r'action="/labels/(\d+)/void"', detail.text.split(f"/labels/{label_id}/void")[1]).group(1))
    assert ann1.post(f"/labels/{other}/void", reason="mine now").status_code == 404

"""PlatformAnnotator: the online RLHF loop's annotator interface (.compare / .rank / .equally_good, as the gym's
simulated annotators) answered by a person through a live server."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest
import uvicorn
from sqlalchemy import func, select
from annotate_fixtures import PASSWORD

from alignlab.annotate import store
from alignlab.annotate.devdb import free_port
from alignlab.annotate.remote import PlatformAnnotator
from alignlab.annotate.schema import Item
from alignlab.data.records import PromptRecord


@pytest.fixture
def live(app):
    """The app served on a loopback port from a thread; an admin token and an annotator token."""
    with app.state.db.transaction() as s:
        admin = store.create_user(s, "admin@lab.org", "Ada", PASSWORD, is_admin=True)
        project = store.create_project(s, admin, "online", "prefer correct answers", overlap=1)
        human = store.create_user(s, "h@lab.org", "Hu", PASSWORD)
        s.add(store.Membership(project_id=project.id, user_id=human.id, role="annotator"))
        tokens = store.create_api_token(s, admin, "loop"), store.create_api_token(s, human, "me")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}", project.id, *tokens
    server.should_exit = True
    thread.join()


def human_worker(url: str, project_id: int, token: str, stop: threading.Event) -> None:
    """A person who always prefers the answer containing 'good', then shorter answers."""
    client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"})
    while not stop.is_set():
        for kind in ("pairwise", "rank"):
            task = client.post(f"/api/v1/projects/{project_id}/next/{kind}").json()["task"]
            if task is None:
                continue
            order = sorted(task["candidates"], key=lambda c: ("good" not in c["text"], len(c["text"])))
            if kind == "rank":
                payload = {"ranking": [c["index"] for c in order]}
            else:
                verdict = {"winner": order[0]["index"], "strength": 2}
                payload = {"criteria": {c: verdict for c in ("helpful", "honest", "harmless")}}
            client.post(f"/api/v1/items/{task['item_id']}/label", json={"client_id": "h", "payload": payload})
        time.sleep(0.02)


def test_compare_and_rank_return_the_human_verdicts(live, app):
    url, project_id, admin_token, human_token = live
    stop = threading.Event()
    worker = threading.Thread(target=human_worker, args=(url, project_id, human_token, stop), daemon=True)
    worker.start()
    try:
        annotator = PlatformAnnotator(url, admin_token, project_id, poll_s=0.05, timeout_s=30)
        request = PromptRecord([{"role": "user", "content": "hi?"}], {}, "r1", "test")
        assert annotator.compare(request, "bad answer", "a good answer") == 1
        assert annotator.compare(request, "a good answer", "bad answer") == 0
        assert annotator.rank(request, ["meh", "the good one", "very bad answer"]) == [1, 0, 2]
        assert annotator.compare(request, "bad answer", "a good answer") == 1   # same request: same item, no new task
        assert annotator.annotator_id == f"platform:{url}/projects/{project_id}:helpful"   # ppo.py's provenance
    finally:
        stop.set()
        worker.join()
    with app.state.db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(Item)) == 3


def test_waiting_without_annotators_times_out_with_a_reason(live):
    url, project_id, admin_token, _ = live
    annotator = PlatformAnnotator(url, admin_token, project_id, poll_s=0.05, timeout_s=0.3)
    request = PromptRecord([{"role": "user", "content": "anyone?"}], {}, "r2", "test")
    with pytest.raises(TimeoutError, match="nobody answered in time.*0 of 1 labels"):
        annotator.compare(request, "a", "b")


def test_an_unreachable_platform_is_retried_until_the_timeout():
    annotator = PlatformAnnotator(f"http://127.0.0.1:{free_port()}", "token", 1, poll_s=0.05, timeout_s=0.3)
    request = PromptRecord([{"role": "user", "content": "hello?"}], {}, "r3", "test")
    with pytest.raises(TimeoutError, match="unreachable"):
        annotator.compare(request, "a", "b")


def test_the_api_and_the_page_name_answers_by_display_position_not_by_model(live, app):
    """Blind means blind to a script too: an annotator's task lists answers by their position on screen, and the
    stored label (import order) is the same whichever way the positions are mapped."""
    from alignlab.annotate import imports, tasks
    url, project_id, admin_token, human_token = live
    with app.state.db.transaction() as s:
        admin = s.scalar(select(store.User).where(store.User.email == "admin@lab.org"))
        records = [{"prompt": f"Q{i}", "responses": [{"text": f"from A {i}", "model": "A"},
                                                     {"text": f"from B {i}", "model": "B"}]} for i in range(24)]
        tasks.add_items(s, admin, project_id, imports.parse_items("b.jsonl", "\n".join(map(json.dumps, records)),
                                                                  "blind"))
    client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {human_token}"})
    firsts = []
    for _ in range(24):           # each item's order is a coin flip: all 24 alike has probability 2^-23
        task = client.post(f"/api/v1/projects/{project_id}/next/blind").json()["task"]
        assert [c["index"] for c in task["candidates"]] == [0, 1]
        firsts.append(task["candidates"][0]["text"].startswith("from A"))
        choice = next(c for c in task["candidates"] if c["text"].startswith("from B"))       # always prefer B
        verdict = {"winner": choice["index"], "strength": 2}
        client.post(f"/api/v1/items/{task['item_id']}/label", json={
            "client_id": f"c{task['item_id']}", "payload": {"criteria": {c: verdict for c in
                                                                          ("helpful", "honest", "harmless")}}})
    assert 0 < sum(firsts) < 24                      # model A is not always shown first, so index 0 says nothing
    with app.state.db.transaction() as s:
        from alignlab.annotate.schema import Label
        labels = s.scalars(select(Label)).all()
        assert len(labels) == 24 and all(lb.payload["criteria"]["helpful"]["winner"] == 1 for lb in labels)  # B

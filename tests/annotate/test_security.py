"""Security properties that can fail: IDOR by changing ids, CSRF, HTML escaping, SQL injection, password storage."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from annotate_fixtures import PASSWORD, Page, form_value, jsonl
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from alignlab.annotate import store, tasks
from alignlab.annotate.schema import AuditEntry, Item, Label, User, utcnow
from alignlab.annotate.schema import Session as WebSession


def label_one(app, world, who: str, kind: str = "rank") -> int:
    """`who` takes and labels one item of `kind` in the main project; returns its id."""
    with app.state.db.transaction() as s:
        user = s.get(User, world[who])
        item = tasks.next_item(s, user, world["project"], kind)
        payload = {"ranking": [0, 1, 2, 3]} if kind == "rank" else \
            {"criteria": {c: {"winner": 0, "strength": 2} for c in ("helpful", "honest", "harmless")}}
        tasks.submit_label(s, user, item.id, payload, f"{who}-{item.id}")
        return item.id


def test_annotator_cannot_open_or_label_items_by_changing_ids(app, world):
    ann2_item = label_one(app, world, "ann2")
    with app.state.db.transaction() as s:
        other_items = s.scalars(select(Item.id).where(Item.project_id == world["other"])).all()
        unassigned = s.scalars(select(Item.id).where(Item.project_id == world["project"], Item.id != ann2_item,
                                                     Item.kind == "rank")).all()
    ann1 = Page(app, "ann1@lab.org")
    for item_id in [*other_items, ann2_item, unassigned[0], 99999]:
        r = ann1.get(f"/items/{item_id}")
        assert r.status_code == 404, f"ann1 could open item {item_id}"
        r = ann1.post(f"/items/{item_id}", client_id="x", **{f"rank_{i}": str(i + 1) for i in range(4)})
        assert r.status_code == 404, f"ann1 could label item {item_id}"
    for url in (f"/projects/{world['other']}", f"/projects/{world['other']}/next/rank",
                f"/projects/{world['project']}/export/preferences.jsonl", f"/projects/{world['project']}/stats",
                f"/projects/{world['project']}/items"):
        assert ann1.get(url).status_code == 404, url
    with app.state.db.transaction() as s:   # nothing written on ann1's behalf
        assert s.scalar(select(func.count()).select_from(Label).where(Label.user_id == world["ann1"])) == 0


def test_item_page_never_shows_another_annotators_label_or_model_names(app, world):
    label_one(app, world, "ann2", "blind")
    ann1 = Page(app, "ann1@lab.org")
    r = ann1.post(f"/projects/{world['project']}/next/blind")
    assert r.status_code == 200 and "Which answer is better" in r.text
    assert "model-x" not in r.text and "model-y" not in r.text
    with app.state.db.transaction() as s:
        token = store.create_api_token(s, s.get(User, world["ann1"]), "t")
    api = TestClient(app, headers={"Authorization": f"Bearer {token}"})
    task = api.post(f"/api/v1/projects/{world['project']}/next/blind").json()["task"]
    assert "model" not in json.dumps(task)
    assert api.get(f"/api/v1/items/{task['item_id']}/labels").status_code == 404   # admins only


def test_api_tokens_are_scoped_to_their_user(app, world):
    with app.state.db.transaction() as s:
        token = store.create_api_token(s, s.get(User, world["ann1"]), "t")
    api = TestClient(app, headers={"Authorization": f"Bearer {token}"})
    assert api.post(f"/api/v1/projects/{world['other']}/next/rank").status_code == 404
    assert api.get(f"/api/v1/projects/{world['project']}/export/preferences").status_code == 404
    assert TestClient(app).get("/api/v1/projects").status_code == 404                        # no token
    assert TestClient(app, headers={"Authorization": "Bearer nope"}).get("/api/v1/projects").status_code == 404
    r = api.post(f"/api/v1/projects/{world['project']}/requests",
                 json={"request_key": "k", "kind": "pairwise", "prompt": "p", "responses": ["a", "b"]})
    assert r.status_code == 404   # only project admins post tasks


def test_writes_without_the_csrf_token_are_refused(app, world):
    admin = Page(app, "admin@lab.org")
    with app.state.db.transaction() as s:
        audit_before = s.scalar(select(func.count()).select_from(AuditEntry))
    raw = admin.client
    attempts = [("/projects", {"name": "evil", "guidelines": "", "overlap": "1"}),
                (f"/projects/{world['project']}/invite", {"email": "evil@x.org", "role": "admin"}),
                (f"/projects/{world['project']}/guidelines", {"guidelines": "hacked"}),
                ("/tokens", {"name": "x"})]
    for url, data in attempts:
        for token in (None, "wrong-token"):
            body = data if token is None else {**data, "csrf_token": token}
            r = raw.post(url, data=body)
            assert r.status_code == 403, f"{url} accepted a write with csrf_token={token}"
    with app.state.db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(AuditEntry)) == audit_before


def test_login_form_needs_the_csrf_token_too(app, world):
    client = TestClient(app)
    r = client.post("/login", data={"email": "admin@lab.org", "password": PASSWORD})
    assert r.status_code == 403


def test_html_in_prompts_is_shown_escaped(app, world):
    attack = '<script>document.title="pwned"</script><img src=x onerror=alert(1)>'
    pro = Page(app, "pro@lab.org")
    pro.get(f"/projects/{world['project']}/write")
    pro.post(f"/projects/{world['project']}/write", prompt=attack, answer="<b>bold</b> answer",
             client_id=form_value(pro.get(f"/projects/{world['project']}/write").text, "client_id"))
    admin = Page(app, "admin@lab.org")
    r = admin.get(f"/projects/{world['project']}/items", q="script")
    assert "&lt;script&gt;document.title" in r.text
    assert "<script>" not in r.text and "<img src=x" not in r.text


@pytest.mark.parametrize("app", ["sqlite", "postgresql"], indirect=True)
@pytest.mark.parametrize("q", ["' OR '1'='1", "%' OR 1=1 --", "x'); DROP TABLE items; --", "%", "_"])
def test_search_and_filter_cannot_inject_sql(app, world, q):
    admin = Page(app, "admin@lab.org")
    r = admin.get(f"/projects/{world['project']}/items", q=q)
    assert r.status_code == 200
    assert "No items match." in r.text   # no prompt contains these strings; a LIKE/SQL injection would list rows
    r = admin.get(f"/projects/{world['project']}/items", kind="rank' OR '1'='1")
    assert "No items match." in r.text
    with app.state.db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(Item)) == 10   # nothing dropped
    assert "S0: how do I bake" in admin.get(f"/projects/{world['other']}/items", q="s0: HOW").text  # search works


def test_passwords_are_stored_hashed(app, world):
    with app.state.db.transaction() as s:
        hashes = s.scalars(select(User.password_hash)).all()
    assert all(h.startswith("$argon2id$") and PASSWORD not in h for h in hashes)
    assert len(set(hashes)) == len(hashes), "salted: equal passwords give different hashes"
    with app.state.db.transaction() as s:
        assert store.authenticate(s, "ann1@lab.org", PASSWORD) is not None
        assert store.authenticate(s, "ann1@lab.org", PASSWORD + "x") is None


def test_session_cookie_is_httponly_and_rotated_at_login(app, world):
    """A visitor's login form stores nothing (its CSRF token is a cookie); the session cookie is made at login, new
    whatever session cookie the browser brought (fixation)."""
    client = TestClient(app)
    with app.state.db.transaction() as s:
        sessions_before = s.scalar(select(func.count()).select_from(WebSession))
    client.cookies.set("alignlab_session", "planted-by-an-attacker")
    r = client.get("/login")
    r = client.get("/login")
    with app.state.db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(WebSession)) == sessions_before, "an anonymous GET wrote"
    r = client.post("/login", data={"email": "admin@lab.org", "password": PASSWORD,
                                    "csrf_token": form_value(client.get("/login").text, "csrf_token")},
                    follow_redirects=False)
    cookie = r.headers["set-cookie"].lower()
    assert "alignlab_session=" in cookie and "httponly" in cookie and "samesite=lax" in cookie
    assert "planted-by-an-attacker" not in cookie, "session id must change at login"
    client.cookies.delete("alignlab_session", domain="")            # the planted one; the real one stays
    assert client.get("/").url.path == "/"


def test_pages_forbid_scripts_framing_and_referers(app, world):
    r = Page(app, "admin@lab.org").get("/")
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers["referrer-policy"] == "no-referrer" and r.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("app", ["sqlite", "postgresql"], indirect=True)
def test_expired_sessions_are_refused(app, world):
    page = Page(app, "ann1@lab.org")
    assert page.get("/").url.path == "/"
    with app.state.db.transaction() as s:
        for row in s.scalars(select(WebSession).where(WebSession.user_id == world["ann1"])):
            row.expires_at = utcnow() - timedelta(seconds=1)
    assert page.get("/").url.path == "/login"


def test_item_search_reads_the_text_not_its_json_and_pages(app, world):
    """`mangé` finds the French prompt (its JSON escapes é), `role` finds no chat prompt by its keys, and 60 items
    come 50 to a page."""
    from alignlab.annotate import imports
    chat = [{"prompt": [{"role": "user", "content": "J'ai mangé du pain, et toi ?"}], "responses": ["a", "b"]}]
    many = [{"prompt": f"bulk question {i}", "responses": ["a", "b"]} for i in range(60)]
    with app.state.db.transaction() as s:
        admin = s.get(User, world["admin"])
        for name, records in (("chat.jsonl", chat), ("many.jsonl", many)):
            tasks.add_items(s, admin, world["project"], imports.parse_items(name, jsonl(records), "pairwise"))
    admin = Page(app, "admin@lab.org")
    items = f"/projects/{world['project']}/items"
    assert "mangé du pain" in admin.get(items, q="MANGÉ").text
    assert "No items match." in admin.get(items, q="role").text
    first, second = admin.get(items, q="bulk"), admin.get(items, q="bulk", page=2)
    assert "60 items" in first.text and "page 1 of 2" in first.text and "next →" in first.text
    assert first.text.count("bulk question") == 50 and second.text.count("bulk question") == 10

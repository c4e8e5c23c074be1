"""Accounts an admin controls: login throttling with audit entries, password checks outside the write lock and as
slow for unknown e-mails, logout everywhere, expiring and revocable API tokens and invitations, password change and
reset, member removal and roles, trusted host names, no writes for anonymous visitors, 404 for ids no column holds."""

from __future__ import annotations

from datetime import timedelta

import pytest
from annotate_fixtures import PASSWORD, Page
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from alignlab.annotate import security, store
from alignlab.annotate.app import create_app
from alignlab.annotate.schema import ApiToken, AuditEntry, Invitation, User, utcnow


def audit_count(app, action: str) -> int:
    with app.state.db.transaction() as s:
        return s.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == action))


def test_failed_logins_are_throttled_per_account_and_audited(app, world):
    page = Page(app)
    page.get("/login")
    for _ in range(store.MAX_FAILED_PER_ACCOUNT):
        r = page.post("/login", email="ann1@lab.org", password="wrong password")
        assert r.status_code == 200 and "Wrong e-mail or password" in r.text
    assert audit_count(app, "login_failed") == store.MAX_FAILED_PER_ACCOUNT
    r = page.post("/login", email="ann1@lab.org", password=PASSWORD)        # the right one, too late
    assert r.status_code == 429 and "Too many failed logins" in r.text
    assert audit_count(app, "login_throttled") == 1
    assert Page(app, "ann2@lab.org").get("/").url.path == "/"              # other accounts are not locked out


def test_failed_logins_are_throttled_per_address(app, world):
    page = Page(app)
    page.get("/login")
    for i in range(store.MAX_FAILED_PER_ADDRESS):
        page.post("/login", email=f"nobody{i}@lab.org", password="guess")   # a different account each time
    assert page.post("/login", email="ann1@lab.org", password=PASSWORD).status_code == 429


def test_the_throttle_forgets_after_its_window(app, world, monkeypatch):
    page = Page(app)
    page.get("/login")
    for _ in range(store.MAX_FAILED_PER_ACCOUNT):
        page.post("/login", email="ann1@lab.org", password="wrong password")
    monkeypatch.setattr(store, "utcnow", lambda: utcnow() + store.LOGIN_WINDOW + timedelta(seconds=1))
    assert page.post("/login", email="ann1@lab.org", password=PASSWORD).url.path == "/"


def test_password_is_verified_outside_the_write_lock_and_as_slowly_for_unknown_emails(app, world, monkeypatch):
    """The slow hash never holds the database (other requests go on), and an unknown e-mail costs the same single
    verification against a hash of the same parameters as a real one (no timing oracle)."""
    lock = app.state.db._write_lock
    calls = []
    real = security.verify_password

    def spy(password_hash: str, password: str) -> bool:
        calls.append((password_hash, lock.locked()))
        return real(password_hash, password)
    monkeypatch.setattr(security, "verify_password", spy)
    page = Page(app)
    page.get("/login")
    page.post("/login", email="ann1@lab.org", password="wrong password")
    page.post("/login", email="nobody@lab.org", password="wrong password")
    page.post("/login", email="ann1@lab.org", password=PASSWORD)
    assert len(calls) == 3 and not any(locked for _, locked in calls)
    with app.state.db.transaction() as s:
        real_hash = s.scalar(select(User.password_hash).where(User.email == "ann1@lab.org"))
    parameters = [h.rsplit("$", 2)[0] for h, _ in calls]                  # $argon2id$v=19$m=...,t=...,p=...
    assert parameters[1] == parameters[0] == real_hash.rsplit("$", 2)[0] and calls[1][0] != real_hash


def test_logout_everywhere_ends_every_session(app, world):
    laptop, phone = Page(app, "ann1@lab.org"), Page(app, "ann1@lab.org")
    other = Page(app, "ann2@lab.org")
    assert phone.get("/").url.path == "/"
    laptop.post("/logout-everywhere")
    assert phone.get("/").url.path == "/login" and laptop.get("/").url.path == "/login"
    assert other.get("/").url.path == "/"


def test_authenticated_pages_are_not_cached(app, world):
    page = Page(app, "admin@lab.org")
    for url in ("/", f"/projects/{world['project']}", "/login"):
        assert page.get(url).headers["cache-control"] == "no-store"


def api(app, token: str, url: str):
    return TestClient(app).get(url, headers={"Authorization": f"Bearer {token}"})


def test_api_tokens_are_listed_expire_and_can_be_revoked(app, world):
    with app.state.db.transaction() as s:
        ann1 = s.get(User, world["ann1"])
        keep, revoke, expire = (store.create_api_token(s, ann1, n) for n in ("keep", "revoke", "expire"))
        s.scalar(select(ApiToken).where(ApiToken.name == "expire")).expires_at = utcnow() - timedelta(seconds=1)
    url = f"/api/v1/projects/{world['project']}/next/rank"
    assert all(api(app, t, url).status_code != 404 for t in (keep, revoke))
    page = Page(app, "ann1@lab.org")
    home = page.get("/").text
    assert "keep" in home and "revoke" in home and "expired" in home and keep not in home    # values never shown
    with app.state.db.transaction() as s:
        token_id = s.scalar(select(ApiToken.id).where(ApiToken.name == "revoke"))
    Page(app, "ann2@lab.org").post(f"/tokens/{token_id}/revoke")                          # not ann2's: refused
    assert api(app, revoke, url).status_code != 404
    page.post(f"/tokens/{token_id}/revoke")
    assert api(app, revoke, url).status_code == 404 and api(app, expire, url).status_code == 404
    assert api(app, keep, url).status_code != 404


def test_invitations_are_listed_expire_and_can_be_revoked(app, world):
    admin = Page(app, "admin@lab.org")
    links = []
    for email in ("new1@lab.org", "new2@lab.org", "new3@lab.org"):
        r = admin.post(f"/projects/{world['project']}/invite", email=email, role="annotator")
        links.append(r.text.split('id="invite-link">')[1].split("<")[0].replace("http://testserver", ""))
    with app.state.db.transaction() as s:
        invs = {i.email: i for i in s.scalars(select(Invitation))}
        invs["new3@lab.org"].expires_at = utcnow() - timedelta(seconds=1)
        revoked_id = invs["new2@lab.org"].id
    admin.post(f"/projects/{world['project']}/invitations/{revoked_id}/revoke")
    page = admin.get(f"/projects/{world['project']}").text
    assert page.count("pending") == 1 and "revoked" in page and "expired" in page
    visitor = TestClient(app)
    assert visitor.get(links[0]).status_code == 200
    assert visitor.get(links[1]).status_code == 404 and visitor.get(links[2]).status_code == 404


def test_password_change_and_admin_reset(app, world):
    laptop, phone = Page(app, "ann1@lab.org"), Page(app, "ann1@lab.org")
    assert "current password is wrong" in laptop.post("/password", current="nope nope", new="a new password").text
    laptop.post("/password", current=PASSWORD, new="a new password")
    assert laptop.get("/").url.path == "/" and phone.get("/").url.path == "/login"   # other sessions ended
    assert Page(app, "ann1@lab.org", "a new password").get("/").url.path == "/"
    r = Page(app, "admin@lab.org").post(f"/users/{world['ann1']}/reset-password")
    temporary = r.text.split("new password of user")[1].split(" is ")[1].split(" ")[0]
    assert laptop.get("/").url.path == "/login"
    assert Page(app, "ann1@lab.org", temporary).get("/").url.path == "/"
    assert Page(app, "ann2@lab.org").post(f"/users/{world['ann1']}/reset-password").status_code == 404


def test_members_can_be_removed_and_their_role_changed(app, world):
    admin, ann1 = Page(app, "admin@lab.org"), Page(app, "ann1@lab.org")
    assert ann1.get(f"/projects/{world['project']}").status_code == 200
    admin.post(f"/projects/{world['project']}/members/{world['ann1']}", role="remove")
    assert ann1.get(f"/projects/{world['project']}").status_code == 404
    assert ann1.get(f"/projects/{world['project']}/next/rank").status_code == 404
    admin.post(f"/projects/{world['project']}/members/{world['pro']}", role="admin")
    assert "Members" in Page(app, "pro@lab.org").get(f"/projects/{world['project']}").text
    # the last admin of a project cannot leave it without one
    r = admin.post(f"/projects/{world['other']}/members/{world['admin']}", role="annotator")
    assert r.status_code == 400 and "at least one admin" in r.text
    assert audit_count(app, "remove_member") == 1 and audit_count(app, "set_role") == 1


def test_a_foreign_host_is_refused(tmp_path):
    app = create_app(str(tmp_path / "a.db"), trusted_hosts=["lab.example.org", "127.0.0.1"])
    assert TestClient(app, base_url="http://evil.example.com").get("/login").status_code == 400
    assert TestClient(app, base_url="http://lab.example.org").get("/login").status_code == 200


@pytest.mark.parametrize("url", ["/projects/9223372036854775808", "/items/99999999999999999999",
                                 "/api/v1/items/9223372036854775808"])
def test_ids_no_column_can_hold_are_not_found(app, world, url):
    page = Page(app, "admin@lab.org")
    assert page.client.get(url).status_code == 404


def test_an_absurd_overlap_is_a_user_error(app, world):
    r = Page(app, "admin@lab.org").post("/projects", name="huge", guidelines="g", overlap="100000000000000000000",
                                        rank_mode="rank")
    assert r.status_code == 400 and "overlap must be 1 to" in r.text


@pytest.mark.parametrize("host, public, code", [("0.0.0.0", False, 2), ("192.168.1.5", False, 2)])
def test_serve_refuses_a_network_address_without_public(host, public, code, capsys, tmp_path):
    from alignlab.annotate.cli import main
    assert main(["serve", "--db", str(tmp_path / "x.db"), "--host", host]) == code
    assert "--public" in capsys.readouterr().err


def test_serve_hosts_trust_loopback_and_the_names_given():
    import argparse

    from alignlab.annotate.cli import serve_hosts
    args = argparse.Namespace(host="0.0.0.0", port=8000, public=True, trusted_host=["lab.example.org"])
    assert {"127.0.0.1", "localhost", "lab.example.org"} <= set(serve_hosts(args))
    assert serve_hosts(argparse.Namespace(host="127.0.0.1", port=8000, public=False, trusted_host=[])) is not None


def test_password_hashes_run_a_few_at_a_time(monkeypatch):
    """A burst of logins queues for the hash instead of taking every core (benchmarks/annotate_logins.py measures a
    page's latency during such a burst): with room for one, two verifications never overlap."""
    import threading
    import time as clock
    running, most = [0], [0]
    lock = threading.Lock()

    class SlowHasher:
        def verify(self, password_hash, password):
            with lock:
                running[0] += 1
                most[0] = max(most[0], running[0])
            clock.sleep(0.05)
            with lock:
                running[0] -= 1
            return True
    monkeypatch.setattr(security, "_hasher", SlowHasher())
    monkeypatch.setattr(security, "_hashing", threading.BoundedSemaphore(1))
    threads = [threading.Thread(target=security.verify_password, args=("h", "p")) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == 1
    assert security.HASHING_AT_ONCE >= 1

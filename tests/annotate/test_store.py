"""Store-level behaviour: migrations, the audit log, imports, queues (overlap, gold, per-annotator order), labels."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from alignlab.annotate import imports, store, tasks
from alignlab.annotate.db import Database
from alignlab.annotate.migrations import LATEST, STEPS, migrate
from alignlab.annotate.schema import ApiToken, AuditEntry, Base, Item, Label, Project, User

from annotate_fixtures import PASSWORD, jsonl, rank_records


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    url = str(tmp_path / "a.db") if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    db = Database(url)
    if request.param == "postgresql":   # the cluster is shared by the session: start each test from an empty schema
        with db.engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    yield db
    db.dispose()


def test_migrated_schema_matches_models(database):
    assert migrate(database.engine) == 0                  # fresh database
    assert migrate(database.engine) == LATEST             # second run: nothing to do, reports where it was
    with database.engine.connect() as conn:
        diff = [d for d in compare_metadata(MigrationContext.configure(conn), Base.metadata)
                if not (d[0] == "remove_table" and d[1].name == "schema_migrations")]   # ours, not a model
    assert diff == [], f"schema.py and migrations.py drifted apart: {diff}"


def test_audit_log_is_append_only(database):
    migrate(database.engine)
    with database.transaction() as s:
        store.create_user(s, "a@b.org", "A", PASSWORD, is_admin=True)
    with database.transaction() as s:
        assert s.scalar(select(func.count()).select_from(AuditEntry)) == 1
    for statement in ("UPDATE audit_log SET action = 'x'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="append-only"):
            with database.engine.begin() as conn:
                conn.execute(text(statement))


def test_label_retry_is_acknowledged_once(database, tmp_path):
    migrate(database.engine)
    with database.transaction() as s:
        admin = store.create_user(s, "a@b.org", "A", PASSWORD, is_admin=True)
        project = store.create_project(s, admin, "p", "g", overlap=1)
        tasks.add_items(s, admin, project.id, imports.parse_items("f", jsonl(rank_records(1, k=2)), "rank"))
        item = tasks.next_item(s, admin, project.id, "rank")
    for _ in range(2):   # the client retries after a lost response
        with database.transaction() as s:
            label, created = tasks.submit_label(s, admin, item.id, {"ranking": [1, 0]}, "client-1")
    assert not created
    with database.transaction() as s:
        assert s.scalar(select(func.count()).select_from(Label)) == 1
        with pytest.raises(store.InvalidInput, match="cannot be changed"):
            tasks.submit_label(s, admin, item.id, {"ranking": [0, 1]}, "client-2")


def test_malformed_import_names_file_line_and_reason_and_adds_nothing(app, world):
    good = jsonl(rank_records(3))
    bad_lines = {
        good + '{"prompt": "x", "responses": ["only one"]}\n': "r.jsonl:4: ranking needs at least 2",
        good + "not json\n": "r.jsonl:4: not valid JSON",
        '{"prompt": "", "responses": ["a", "b"]}\n': "r.jsonl:1: 'prompt' is empty",
        good + '{"prompt": "x", "responses": ["a", "b"], "gold": {"best": 7}}\n': "r.jsonl:4: bad 'gold'",
        '{"prompt": [{"role": "assistant", "content": "hi"}], "responses": ["a", "b"]}\n': "r.jsonl:1: 'prompt' must",
    }
    with app.state.db.transaction() as s:
        before = s.scalar(select(func.count()).select_from(Item))
    for text_, reason in bad_lines.items():
        with pytest.raises(imports.ImportFailure, match=reason):
            imports.parse_items("r.jsonl", text_, "rank")
    with pytest.raises(imports.ImportFailure, match="b.jsonl:1: blind evaluation needs each response"):
        imports.parse_items("b.jsonl", '{"prompt": "x", "responses": ["a", "b"]}\n', "blind")
    with app.state.db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(Item)) == before


def test_queue_respects_overlap_and_leaves_after_submit(app, world):
    with app.state.db.transaction() as s:     # a project's seed is drawn at random; pin one so the test can't flake
        s.get(Project, world["project"]).seed = 1
    seen = {}
    for name in ("ann1", "ann2", "admin"):   # overlap 2: the third person finds the 4 rank items taken
        with app.state.db.transaction() as s:
            user = s.get(User, world[name])
            got = []
            while (item := tasks.next_item(s, user, world["project"], "rank")) is not None:
                if name == "admin":
                    got.append(item.id)
                    break
                tasks.submit_label(s, user, item.id, {"ranking": [0, 1, 2, 3]}, f"{name}-{item.id}")
                got.append(item.id)
            seen[name] = got
    assert sorted(seen["ann1"]) == sorted(seen["ann2"]) and len(seen["ann1"]) == 4
    assert seen["admin"] == []
    assert seen["ann1"] != seen["ann2"], "item order should differ per annotator (true of seed 1; p = 23/24 a seed)"


def test_gold_items_go_to_everyone_and_candidate_order_is_per_annotator(app, world):
    gold = [{"prompt": f"G{i}", "responses": ["right", "wrong", "meh", "no"], "gold": {"best": 0}} for i in range(8)]
    with app.state.db.transaction() as s:
        admin = s.get(User, world["admin"])
        project = store.create_project(s, admin, "gold", "g", overlap=1)
        tasks.add_items(s, admin, project.id, imports.parse_items("g.jsonl", jsonl(gold), "rank"))
        orders = {}
        s.add(store.Membership(project_id=project.id, user_id=world["ann1"], role="annotator"))
        s.flush()
        for user in (admin, s.get(User, world["ann1"])):
            items = []
            while (item := tasks.next_item(s, user, project.id, "rank")) is not None:
                t = tasks.task(s, user, item.id)
                tasks.submit_label(s, user, item.id, {"ranking": [0, 1, 2, 3]}, f"{user.id}-{item.id}")
                items.append([i for i, _ in t.shown])
            orders[user.id] = items
    assert all(len(v) == 8 for v in orders.values()), "gold items ignore overlap: every annotator gets all 8"
    assert orders[world["admin"]] != orders[world["ann1"]], "candidate positions are randomised per annotator"
    flat = [o[0] for v in orders.values() for o in v]
    assert len(set(flat)) > 1, "the first shown candidate is not always the same one"


def test_label_stores_guideline_version(app, world):
    with app.state.db.transaction() as s:
        admin, ann = s.get(User, world["admin"]), s.get(User, world["ann1"])
        assert store.update_guidelines(s, admin, world["project"], "v2: refuse politely") == 2
        item = tasks.next_item(s, ann, world["project"], "pairwise")
        t = tasks.task(s, ann, item.id)
        assert t.guideline_text == "v2: refuse politely"
        verdict = {"winner": 0, "strength": 2}
        label, _ = tasks.submit_label(s, ann, item.id, {"criteria": {c: verdict for c in
                                                                    ("helpful", "honest", "harmless")}}, "c")
        assert label.guideline_version == 2


@pytest.mark.parametrize("payload, message", [
    ({"ranking": [0, 0, 1, 2]}, "different rank"),
    ({"ranking": [0, 1, 2]}, "different rank"),
    ({}, "different rank"),
])
def test_invalid_rank_payloads_are_refused(payload, message):
    with pytest.raises(store.InvalidInput, match=message):
        tasks.validate_payload("rank", "rank", 4, payload)


def test_invalid_pairwise_payloads_are_refused():
    ok = {"winner": 1, "strength": 3}
    with pytest.raises(store.InvalidInput, match="verdict for each"):
        tasks.validate_payload("pairwise", "rank", 2, {"criteria": {"helpful": ok}})
    with pytest.raises(store.InvalidInput, match="strength 1-3"):
        tasks.validate_payload("pairwise", "rank", 2, {"criteria": {"helpful": ok, "honest": ok,
                                                                    "harmless": {"winner": 0, "strength": 9}}})
    tie = {"winner": None, "strength": 3}
    clean = tasks.validate_payload("blind", "rank", 2, {"criteria": {"helpful": ok, "honest": tie, "harmless": tie}})
    assert clean["criteria"]["honest"] == {"winner": None, "strength": 0}


def test_malformed_upload_through_the_page_is_refused_whole(app, world):
    from annotate_fixtures import Page
    admin = Page(app, "admin@lab.org")
    admin.get(f"/projects/{world['project']}")
    body = jsonl(rank_records(5)) + '{"prompt": "x", "responses": "not a list"}\n'
    r = admin.post(f"/projects/{world['project']}/import", kind="rank", files={"file": ("new.jsonl", body)})
    assert r.status_code == 400 and "new.jsonl:6: &#39;responses&#39; must be a list" in r.text
    r = admin.post(f"/projects/{world['project']}/import", kind="rank", files={"file": ("bin.jsonl", b"\xff\xfe")})
    assert r.status_code == 400 and "bin.jsonl: not UTF-8" in r.text
    with app.state.db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(Item)) == 10   # the fixture's items only


def test_a_version_1_database_gains_expiring_tokens_and_invitations(database):
    """Upgrade path: a database made before step 2 (its columns dropped, stamped 1) gets the columns, and its old
    tokens and invitations an expiry instead of living for ever."""
    migrate(database.engine)
    with database.transaction() as s:
        admin = store.create_user(s, "a@b.org", "A", PASSWORD, is_admin=True)
        token = store.create_api_token(s, admin, "old")
    back_to_version(database, 1)
    assert migrate(database.engine) == 1
    with database.transaction() as s:
        assert store.user_for_api_token(s, token).email == "a@b.org"     # still works, now with an expiry
        row = s.scalar(select(ApiToken))
        assert row.expires_at is not None and row.revoked_at is None


def back_to_version(database, version: int) -> None:
    """Make a current database look like one made at `version`: the later steps' columns dropped, stamped."""
    later = {2: [("api_tokens", "expires_at"), ("api_tokens", "revoked_at"), ("invitations", "expires_at"),
                 ("invitations", "revoked_at")],
             3: [("assignments", "skipped_at"), ("assignments", "skip_reason"), ("assignments", "flagged")],
             4: [("items", "identical")]}
    assert set(later) == {v for v, _, _ in STEPS if v > 1}, "a new migration step: say which columns it adds"
    with database.engine.begin() as conn:
        for step, columns in later.items():
            if step > version:
                for table, column in columns:
                    conn.execute(text(f"ALTER TABLE {table} DROP COLUMN {column}"))
        conn.execute(text("DELETE FROM schema_migrations"))
        conn.execute(text("INSERT INTO schema_migrations VALUES (:v, 'old')"), {"v": version})


def test_a_version_2_database_gains_skips_and_flags(database):
    """Assignments made before step 3 are open (not skipped, not flagged) and can then be skipped."""
    migrate(database.engine)
    with database.transaction() as s:
        admin = store.create_user(s, "a@b.org", "A", PASSWORD, is_admin=True)
        project = store.create_project(s, admin, "p", "g", overlap=1)
        tasks.add_items(s, admin, project.id, imports.parse_items("f", jsonl(rank_records(2, k=2)), "rank"))
        first = tasks.next_item(s, admin, project.id, "rank").id
    back_to_version(database, 2)
    assert migrate(database.engine) == 2
    with database.transaction() as s:
        admin = store.authenticate(s, "a@b.org", PASSWORD)
        assert tasks.next_item(s, admin, project.id, "rank").id == first          # still open
        tasks.skip_item(s, admin, first, "unsure", flag=True)
        assert tasks.next_item(s, admin, project.id, "rank").id != first

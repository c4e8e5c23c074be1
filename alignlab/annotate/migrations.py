"""Schema migrations: a fresh database gets the current schema and is stamped; an older one runs the steps it lacks.

Adding a column: change `schema.py` AND append a step below (alembic `Operations`, e.g. `op.add_column(...)`).
`tests/annotate/test_store.py::test_migrated_schema_matches_models` fails if the two drift apart.
"""

from __future__ import annotations

from typing import Callable

from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import Engine, inspect, text

from alignlab.annotate.schema import Base


def _append_only_audit(op: Operations) -> None:
    """The audit log refuses UPDATE and DELETE at the database level, whichever code path tries."""
    if op.get_bind().dialect.name == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(text(f"CREATE TRIGGER audit_log_no_{verb.lower()} BEFORE {verb} ON audit_log "
                            "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"))
        return
    op.execute(text("CREATE FUNCTION audit_log_append_only() RETURNS trigger AS $$ BEGIN "
                    "RAISE EXCEPTION 'audit_log is append-only'; END $$ LANGUAGE plpgsql"))
    op.execute(text("CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
                    "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()"))


def _expiring_tokens_and_invitations(op: Operations) -> None:
    """API tokens and invitations expire and can be revoked; those made before this step expire a TTL from now."""
    from datetime import timedelta

    from sqlalchemy import Column, DateTime

    from alignlab.annotate.schema import utcnow
    for table in ("api_tokens", "invitations"):
        op.add_column(table, Column("expires_at", DateTime(timezone=True), nullable=True))
        op.add_column(table, Column("revoked_at", DateTime(timezone=True), nullable=True))
    for table, days in (("api_tokens", 90), ("invitations", 7)):
        op.execute(text(f"UPDATE {table} SET expires_at = :at").bindparams(at=utcnow() + timedelta(days=days)))


def _skips_and_flags(op: Operations) -> None:
    """An annotator can skip an item and flag it with a reason for the admins."""
    from sqlalchemy import Boolean, Column, DateTime, Text, false
    op.add_column("assignments", Column("skipped_at", DateTime(timezone=True), nullable=True))
    op.add_column("assignments", Column("skip_reason", Text, nullable=True))
    op.add_column("assignments", Column("flagged", Boolean, nullable=False, server_default=false()))


def _identical_answers(op: Operations) -> None:
    """Blind items whose models answered alike are kept (as ties nobody is asked about) instead of left out."""
    from sqlalchemy import Boolean, Column, false
    op.add_column("items", Column("identical", Boolean, nullable=False, server_default=false()))


# (version, description, step). Version 1 is the initial schema, which fresh databases get from the models.
STEPS: list[tuple[int, str, Callable[[Operations], None]]] = [
    (1, "initial schema", lambda op: None),
    (2, "api tokens and invitations expire and can be revoked", _expiring_tokens_and_invitations),
    (3, "annotators skip items and flag them with a reason", _skips_and_flags),
    (4, "blind items with identical answers are stored as ties", _identical_answers),
]
LATEST = STEPS[-1][0]


def current_version(engine: Engine) -> int | None:
    if not inspect(engine).has_table("schema_migrations"):
        return None
    with engine.connect() as conn:
        return conn.execute(text("SELECT MAX(version) FROM schema_migrations")).scalar_one()


def migrate(engine: Engine) -> int:
    """Bring the database to LATEST; returns the version it was at before (0 for a fresh database)."""
    before = current_version(engine)
    with engine.begin() as conn:
        op = Operations(MigrationContext.configure(conn))
        if before is None:
            conn.execute(text("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, description TEXT)"))
            Base.metadata.create_all(conn)
            _append_only_audit(op)
            conn.execute(text("INSERT INTO schema_migrations VALUES (:v, :d)"),
                         {"v": LATEST, "d": "fresh database at the current schema"})
            return 0
        for version, description, step in STEPS:
            if version > before:
                step(op)
                conn.execute(text("INSERT INTO schema_migrations VALUES (:v, :d)"), {"v": version, "d": description})
    return before

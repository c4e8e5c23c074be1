"""The platform's tables (SQLAlchemy 2 ORM). Created and changed only through `migrations.py`.

Who may see what is decided in `store.py`; these classes only say what is stored. JSON columns hold the
task payloads so one schema serves every task type; `payload` shapes are documented in `store.submit_label`.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ROLES = ("admin", "prompter", "annotator")
KINDS = ("demo", "edit", "rank", "pairwise", "blind")
"""demo: write a prompt and an ideal answer; edit: improve a drafted answer; rank: order (or pick the best of) K
answers; pairwise: A vs B per criterion with tie and strength; blind: pairwise between models whose names stay here."""
ROLE_KINDS = {"admin": KINDS, "prompter": ("demo", "edit"), "annotator": ("rank", "pairwise", "blind")}
CRITERIA = ("helpful", "honest", "harmless")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(200))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    """Site admin: may create projects. Project roles live in Membership."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Session(Base):
    __tablename__ = "sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    """None until login: anonymous sessions exist only to carry the CSRF token of the login/invite forms."""
    csrf_token: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ApiToken(Base):
    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Project(Base):
    __tablename__ = "projects"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    overlap: Mapped[int] = mapped_column(Integer, default=2)
    """Annotations wanted per (non-gold) item; gold items go to every annotator."""
    rank_mode: Mapped[str] = mapped_column(String(10), default="rank")
    """'rank' = full order of the K answers; 'best' = pick the best of K (Ziegler et al. 2019)."""
    guideline_version: Mapped[int] = mapped_column(Integer, default=1)
    seed: Mapped[int] = mapped_column(Integer, default=0)
    """Seeds the per-annotator item order and candidate positions."""
    salt: Mapped[str] = mapped_column(String(64))
    """Random per project: exported annotator ids are hashes with it, so they cannot be reversed from user ids."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Guideline(Base):
    __tablename__ = "guidelines"
    __table_args__ = (UniqueConstraint("project_id", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    version: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Membership(Base):
    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("project_id", "user_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    role: Mapped[str] = mapped_column(String(20))


class Invitation(Base):
    __tablename__ = "invitations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(20))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    accepted_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Item(Base):
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    prompt: Mapped[str | list] = mapped_column(JSON)
    """Plain text or chat messages ending with a user turn (architecture.md "Data records")."""
    source: Mapped[str] = mapped_column(String(500))
    """Where it came from: 'file.jsonl:12', 'written by user 3', 'api'."""
    gold: Mapped[dict | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    """Known answer for calibration, e.g. {"best": 2} or {"ranking": [..]} or {"winner": 0}; positions in import order."""
    request_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    """Idempotency key of items posted through the API (the RLHF loop), unique per project."""
    identical: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """A blind item whose two models gave the same answer: a tie on every criterion without asking anyone (it
    counts in the leaderboard as `overlap` ties), never handed out, never exported as a pair."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    __table_args__ = (UniqueConstraint("project_id", "request_key"),)


class Candidate(Base):
    __tablename__ = "candidates"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), index=True)
    index: Mapped[int] = mapped_column(Integer)
    """Position in import order; what is shown is a per-annotator permutation of it."""
    text: Mapped[str] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    """Which model wrote it. Never rendered to annotators: blind evaluations depend on it."""


class Assignment(Base):
    __tablename__ = "assignments"
    __table_args__ = (UniqueConstraint("item_id", "user_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # An annotator may pass on an item (skip), and flag it for the admins with a reason (broken, unsafe, unclear).
    skipped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    skip_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    flagged: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Label(Base):
    __tablename__ = "labels"
    __table_args__ = (UniqueConstraint("item_id", "user_id"),)   # one label per annotator per item: no duplicates
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    payload: Mapped[dict] = mapped_column(JSON)
    shown_order: Mapped[list] = mapped_column(JSON)
    """Candidate indices (import order) in the order they were shown, left to right / top to bottom."""
    guideline_version: Mapped[int] = mapped_column(Integer)
    client_id: Mapped[str] = mapped_column(String(64))
    """The submitting form's or client's id; a retried submission with the same id is acknowledged, not re-stored."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AuditEntry(Base):
    """Append-only: migrations add triggers that refuse UPDATE and DELETE on this table."""
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    action: Mapped[str] = mapped_column(String(50))
    target: Mapped[str] = mapped_column(String(100))
    detail: Mapped[dict] = mapped_column(JSON)

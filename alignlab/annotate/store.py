"""Everything the platform writes, and who may read what. Routes call these inside one transaction each.

Access rule (IDOR): every function that takes an id checks it against the caller's memberships and assignments and
raises `NotFound` otherwise — the same answer as for an id that does not exist, so ids cannot be probed.
Every write appends an `AuditEntry` in the same transaction.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from alignlab.annotate import security
from alignlab.annotate.schema import (ROLES, ApiToken, AuditEntry, Guideline, Invitation, Membership, Project, User,
                                      utcnow)
from alignlab.annotate.schema import Session as WebSession

SESSION_TTL = timedelta(days=7)
API_TOKEN_TTL = timedelta(days=90)
INVITATION_TTL = timedelta(days=7)
ASSIGNMENT_TTL = timedelta(hours=2)
"""An assignment not submitted within this time stops holding one of the item's `overlap` slots."""
STRENGTHS = (1, 2, 3)   # slightly / clearly / much better
MAX_OVERLAP = 100


class NotFound(Exception):
    """The id does not exist or the caller may not see it (deliberately indistinguishable)."""


class InvalidInput(Exception):
    """A user error; the message says what is wrong and what to do."""


@dataclass
class NewItem:
    kind: str
    prompt: str | list
    candidates: list[tuple[str, str | None]]   # (text, model) in import order
    source: str
    gold: dict | None = None
    request_key: str | None = None
    identical: bool = False        # blind, both answers the same: a tie nobody is asked about



def json_int(value) -> bool:
    """A JSON integer as a label or gold answer must be: not a float such as 2.0, not true/false (Python's 1/0)."""
    return isinstance(value, int) and not isinstance(value, bool)

def audit(s: Session, user_id: int | None, action: str, target: str, **detail) -> None:
    s.add(AuditEntry(user_id=user_id, action=action, target=target, detail=detail))


# ---- people and sessions ------------------------------------------------------------------------------------------

def create_user(s: Session, email: str, name: str, password: str, is_admin: bool = False) -> User:
    email = email.strip().lower()
    if "@" not in email:
        raise InvalidInput(f"'{email}' is not an e-mail address")
    if len(password) < security.MIN_PASSWORD:
        raise InvalidInput(f"the password needs at least {security.MIN_PASSWORD} characters")
    if s.scalar(select(User).where(User.email == email)):
        raise InvalidInput(f"a user with e-mail {email} already exists; log in instead")
    user = User(email=email, name=name.strip() or email, password_hash=security.hash_password(password),
                is_admin=is_admin)
    s.add(user)
    s.flush()
    audit(s, user.id, "create_user", f"user:{user.id}", email=email, is_admin=is_admin)
    return user


def authenticate(s: Session, email: str, password: str) -> User | None:
    """The user whose e-mail and password these are. An unknown e-mail costs one password verification too, so the
    time taken does not tell which e-mails have accounts."""
    user = s.scalar(select(User).where(User.email == email.strip().lower()))
    ok = security.verify_password(user.password_hash if user else security.dummy_hash(), password)
    return user if user and ok else None


LOGIN_WINDOW = timedelta(minutes=15)
MAX_FAILED_PER_ACCOUNT = 5
MAX_FAILED_PER_ADDRESS = 20
"""Failed logins allowed per e-mail and per client address within LOGIN_WINDOW before further tries are refused."""


def _recent(s: Session, action: str, target: str) -> int:
    from sqlalchemy import func
    return s.scalar(select(func.count()).select_from(AuditEntry).where(
        AuditEntry.action == action, AuditEntry.target == target, AuditEntry.at > utcnow() - LOGIN_WINDOW))


def login_throttled(s: Session, email: str, address: str) -> bool:
    """Too many failed logins lately for this e-mail or from this address (counted in the audit log)."""
    email = email.strip().lower()[:320]
    return (_recent(s, "login_failed", f"account:{email}"[:100]) >= MAX_FAILED_PER_ACCOUNT
            or _recent(s, "login_failed_from", f"address:{address}"[:100]) >= MAX_FAILED_PER_ADDRESS)


def record_failed_login(s: Session, email: str, address: str) -> None:
    email = email.strip().lower()[:320]
    audit(s, None, "login_failed", f"account:{email}"[:100], address=address)
    audit(s, None, "login_failed_from", f"address:{address}"[:100], email=email)


def password_hash_of(s: Session, email: str) -> str | None:
    return s.scalar(select(User.password_hash).where(User.email == email.strip().lower()))


def end_all_sessions(s: Session, user_id: int, keep: str | None = None) -> int:
    """Log the user out everywhere (except the session whose cookie is `keep`); returns how many ended."""
    keep_hash = security.token_hash(keep) if keep else None
    rows = [r for r in s.scalars(select(WebSession).where(WebSession.user_id == user_id)) if r.token_hash != keep_hash]
    for row in rows:
        s.delete(row)
    audit(s, user_id, "logout_everywhere", f"user:{user_id}", sessions=len(rows))
    return len(rows)


def change_password(s: Session, user: User, old: str, new: str, keep_session: str | None) -> None:
    """The user's own change: the old password first; every other session of theirs ends."""
    if not security.verify_password(user.password_hash, old):
        raise InvalidInput("the current password is wrong")
    _set_password(s, user, new)
    end_all_sessions(s, user.id, keep=keep_session)
    audit(s, user.id, "change_password", f"user:{user.id}")


def reset_password(s: Session, admin: User, user_id: int) -> str:
    """A site admin's reset: a new random password (shown once, handed over out of band); the user's sessions end."""
    if not admin.is_admin:
        raise NotFound(f"user {user_id}")
    user = s.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id}")
    password = security.new_token()[:16]
    _set_password(s, user, password)
    end_all_sessions(s, user.id)
    audit(s, admin.id, "reset_password", f"user:{user.id}")
    return password


def _set_password(s: Session, user: User, password: str) -> None:
    if len(password) < security.MIN_PASSWORD:
        raise InvalidInput(f"the password needs at least {security.MIN_PASSWORD} characters")
    user.password_hash = security.hash_password(password)


def start_session(s: Session, user_id: int | None) -> tuple[str, WebSession]:
    """A new session (new id at login: no fixation). Returns the cookie value; only its hash is stored."""
    token = security.new_token()
    row = WebSession(token_hash=security.token_hash(token), user_id=user_id, csrf_token=security.new_token(),
                     expires_at=utcnow() + SESSION_TTL)
    s.add(row)
    return token, row


def find_session(s: Session, token: str) -> WebSession | None:
    row = s.get(WebSession, security.token_hash(token))
    if row is None:
        return None
    # SQLite hands back naive datetimes (stored as UTC); PostgreSQL aware ones in the server's time zone.
    expires = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=timezone.utc)
    return row if expires > utcnow() else None


def end_session(s: Session, token: str) -> None:
    row = s.get(WebSession, security.token_hash(token))
    if row is not None:
        audit(s, row.user_id, "logout", f"user:{row.user_id}")
        s.delete(row)


def create_api_token(s: Session, user: User, name: str, ttl: timedelta = API_TOKEN_TTL) -> str:
    token = security.new_token()
    s.add(ApiToken(user_id=user.id, token_hash=security.token_hash(token), name=name[:200],
                   expires_at=utcnow() + ttl))
    audit(s, user.id, "create_api_token", f"user:{user.id}", name=name[:200])
    return token


def _live(row) -> bool:
    """Not revoked and not expired (an API token or an invitation)."""
    if row.revoked_at is not None or row.expires_at is None:
        return False
    expires = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=timezone.utc)
    return expires > utcnow()


def user_for_api_token(s: Session, token: str) -> User | None:
    row = s.scalar(select(ApiToken).where(ApiToken.token_hash == security.token_hash(token)))
    return s.get(User, row.user_id) if row and _live(row) else None


def api_tokens(s: Session, user: User) -> list[tuple[ApiToken, bool]]:
    """The user's tokens (never their values) with whether each still works."""
    rows = s.scalars(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id))
    return [(r, _live(r)) for r in rows]


def revoke_api_token(s: Session, user: User, token_id: int) -> None:
    row = s.get(ApiToken, token_id)
    if row is None or row.user_id != user.id:
        raise NotFound(f"token {token_id}")
    row.revoked_at = row.revoked_at or utcnow()
    audit(s, user.id, "revoke_api_token", f"token:{token_id}")


# ---- projects, roles, invitations ---------------------------------------------------------------------------------

def create_project(s: Session, user: User, name: str, guidelines: str, overlap: int = 2,
                   rank_mode: str = "rank") -> Project:
    if not user.is_admin:
        raise InvalidInput("only site admins create projects; ask one to create it and invite you")
    if not name.strip():
        raise InvalidInput("the project needs a name")
    if s.scalar(select(Project).where(Project.name == name.strip())):
        raise InvalidInput(f"a project named '{name}' exists already; pick another name")
    if not 1 <= overlap <= MAX_OVERLAP or rank_mode not in ("rank", "best"):
        raise InvalidInput(f"overlap must be 1 to {MAX_OVERLAP} and rank mode 'rank' or 'best'")
    project = Project(name=name.strip(), overlap=overlap, rank_mode=rank_mode, guideline_version=1,
                      seed=secrets.randbits(31), salt=security.new_token())
    s.add(project)
    s.flush()
    s.add(Guideline(project_id=project.id, version=1, text=guidelines))
    s.add(Membership(project_id=project.id, user_id=user.id, role="admin"))
    audit(s, user.id, "create_project", f"project:{project.id}", name=project.name, overlap=overlap,
          rank_mode=rank_mode)
    return project


def role_in(s: Session, user: User, project_id: int) -> str:
    role = s.scalar(select(Membership.role).where(Membership.project_id == project_id,
                                                  Membership.user_id == user.id))
    if role is None:
        raise NotFound(f"project {project_id}")
    return role


def require_admin(s: Session, user: User, project_id: int) -> Project:
    if role_in(s, user, project_id) != "admin":
        raise NotFound(f"project {project_id}")
    return s.get(Project, project_id)


def my_projects(s: Session, user: User) -> list[tuple[Project, str]]:
    rows = s.execute(select(Project, Membership.role).join(Membership, Membership.project_id == Project.id)
                     .where(Membership.user_id == user.id).order_by(Project.id))
    return [(p, r) for p, r in rows]


def invite(s: Session, user: User, project_id: int, email: str, role: str) -> str:
    """Returns the invitation token; the link /invite/TOKEN is handed over out of band (no mail server)."""
    require_admin(s, user, project_id)
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}, not '{role}'")
    if "@" not in email:
        raise InvalidInput(f"'{email}' is not an e-mail address")
    token = security.new_token()
    s.add(Invitation(project_id=project_id, email=email.strip().lower(), role=role,
                     token_hash=security.token_hash(token), expires_at=utcnow() + INVITATION_TTL))
    audit(s, user.id, "invite", f"project:{project_id}", email=email, role=role)
    return token


def find_invitation(s: Session, token: str) -> Invitation:
    inv = s.scalar(select(Invitation).where(Invitation.token_hash == security.token_hash(token)))
    if inv is None or inv.accepted_by is not None or not _live(inv):
        raise NotFound("invitation (unknown, already used, revoked or expired)")
    return inv


def invitations(s: Session, user: User, project_id: int) -> list[tuple[Invitation, str]]:
    """A project's invitations with their state (pending, accepted, revoked, expired), for its admins."""
    require_admin(s, user, project_id)
    rows = s.scalars(select(Invitation).where(Invitation.project_id == project_id).order_by(Invitation.id))
    return [(r, "accepted" if r.accepted_by else "revoked" if r.revoked_at else
             "pending" if _live(r) else "expired") for r in rows]


def revoke_invitation(s: Session, user: User, project_id: int, invitation_id: int) -> None:
    require_admin(s, user, project_id)
    inv = s.get(Invitation, invitation_id)
    if inv is None or inv.project_id != project_id:
        raise NotFound(f"invitation {invitation_id}")
    inv.revoked_at = inv.revoked_at or utcnow()
    audit(s, user.id, "revoke_invitation", f"project:{project_id}", invitation=invitation_id)


def members(s: Session, user: User, project_id: int) -> list[tuple[User, str]]:
    require_admin(s, user, project_id)
    rows = s.execute(select(User, Membership.role).join(Membership, Membership.user_id == User.id)
                     .where(Membership.project_id == project_id).order_by(User.id))
    return [(u, r) for u, r in rows]


def set_role(s: Session, user: User, project_id: int, member_id: int, role: str | None) -> None:
    """Change a member's role, or remove them (role None). A project keeps at least one admin."""
    require_admin(s, user, project_id)
    member = s.scalar(select(Membership).where(Membership.project_id == project_id,
                                               Membership.user_id == member_id))
    if member is None:
        raise NotFound(f"member {member_id}")
    if role is not None and role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}, not '{role}'")
    admins = s.scalars(select(Membership.user_id).where(Membership.project_id == project_id,
                                                        Membership.role == "admin")).all()
    if member.role == "admin" and role != "admin" and len(admins) == 1:
        raise InvalidInput("a project needs at least one admin: make someone else admin first")
    if role is None:
        s.delete(member)
    else:
        member.role = role
    audit(s, user.id, "remove_member" if role is None else "set_role", f"project:{project_id}", member=member_id,
          role=role)


def accept_invitation(s: Session, token: str, name: str, password: str) -> tuple[User, int]:
    """Creates the account (or, for an existing one, checks its password) and adds the membership.
    Returns the user and the project they joined."""
    inv = find_invitation(s, token)
    user = s.scalar(select(User).where(User.email == inv.email))
    if user is None:
        user = create_user(s, inv.email, name, password)
    elif not security.verify_password(user.password_hash, password):
        raise InvalidInput(f"{inv.email} already has an account: enter its password to accept")
    member = s.scalar(select(Membership).where(Membership.project_id == inv.project_id,
                                               Membership.user_id == user.id))
    if member is None:
        s.add(Membership(project_id=inv.project_id, user_id=user.id, role=inv.role))
    else:
        member.role = inv.role
    inv.accepted_by = user.id
    audit(s, user.id, "accept_invitation", f"project:{inv.project_id}", role=inv.role)
    return user, inv.project_id


def guideline(s: Session, project: Project, version: int | None = None) -> Guideline:
    return s.scalar(select(Guideline).where(Guideline.project_id == project.id,
                                            Guideline.version == (version or project.guideline_version)))


def update_guidelines(s: Session, user: User, project_id: int, text: str) -> int:
    """A new version; labels keep the version they were made under."""
    project = require_admin(s, user, project_id)
    project.guideline_version += 1
    s.add(Guideline(project_id=project.id, version=project.guideline_version, text=text))
    audit(s, user.id, "update_guidelines", f"project:{project_id}", version=project.guideline_version)
    return project.guideline_version

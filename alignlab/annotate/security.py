"""Passwords (argon2id), opaque tokens stored only as hashes, CSRF comparison, pseudonymous annotator ids."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError

_hasher = PasswordHasher()   # argon2id with the library's RFC 9106 defaults
MIN_PASSWORD = 8
HASHING_AT_ONCE = max(1, (os.cpu_count() or 2) // 2)
"""Password hashes computed at the same time; more wait their turn. Each hash is memory-hard and spreads over several
cores, so a burst of (wrong) logins would otherwise take every core and slow every page; this keeps half free."""
_hashing = threading.BoundedSemaphore(HASHING_AT_ONCE)


def hash_password(password: str) -> str:
    with _hashing:
        return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    with _hashing:
        try:
            return _hasher.verify(password_hash, password)
        except VerificationError:
            return False


_dummy: dict[int, str] = {}


def dummy_hash() -> str:
    """A hash of no one's password, with the current hasher's cost: verifying against it takes as long as for a
    real account, so an unknown e-mail is not answered faster."""
    key = id(_hasher)
    if key not in _dummy:
        _dummy[key] = _hasher.hash(new_token())
    return _dummy[key]


def new_token() -> str:
    """32 random bytes, URL-safe: session cookies, API tokens, invitation links, CSRF tokens."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """Tokens are high-entropy, so a plain SHA-256 suffices: a leaked database yields no usable session or key."""
    return hashlib.sha256(token.encode()).hexdigest()


def same_token(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def annotator_hash(salt: str, user_id: int) -> str:
    return hashlib.sha256(f"{salt}:{user_id}".encode()).hexdigest()[:16]

"""Engine and sessions: SQLite (WAL, synchronous=FULL) in a file by default, PostgreSQL when given a URL."""

from __future__ import annotations

import threading
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Iterator

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

DEFAULT_DB = "sqlite:///annotate.db"


def database_url(db: str) -> str:
    """A bare path means a SQLite file; anything with '://' is a SQLAlchemy URL (postgresql+psycopg://...)."""
    if "://" in db:
        return db
    return f"sqlite:///{Path(db).resolve()}"


def make_engine(db: str) -> Engine:
    url = database_url(db)
    if not url.startswith("sqlite"):
        return create_engine(url, pool_size=20, max_overflow=40, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, pool_size=20,
                           max_overflow=40)

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection, _record):
        # WAL lets pages read while a label is written; synchronous=FULL fsyncs each commit so an acknowledged
        # label survives a killed server (and a power cut). isolation_level=None hands BEGIN to us (below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection):
        # A deferred transaction that later writes fails at once with SQLITE_BUSY (the busy timeout does not apply
        # to lock upgrades); taking the write lock up front makes concurrent writers queue instead of erroring.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class Database:
    """The engine, its sessions, and `transaction()`: one unit of work that commits together or not at all."""

    def __init__(self, db: str):
        self.url = database_url(db)
        self.engine = make_engine(db)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        # SQLite has one writer at a time. Queueing on a lock here wakes the next request the moment the previous
        # commits; leaving it to SQLite's busy handler makes waiters sleep in steps of up to 100 ms.
        self._write_lock = threading.Lock() if self.url.startswith("sqlite") else nullcontext()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with self._write_lock, self.sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def db_of(request) -> Database:
    """The database of the app serving a request (a FastAPI Request; pages and the JSON API both use it)."""
    return request.app.state.db

"""`alignlab annotate {serve,migrate,create-admin,token,import,import-eval,audit,export}` — the platform from a shell.

The server binds to 127.0.0.1 unless --host says otherwise. Commands other than `serve` work on the database
directly and act as the user named by --as (an admin of the project for import/export).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path

from sqlalchemy import select

from alignlab.annotate import export, imports, store, tasks
from alignlab.annotate.db import DEFAULT_DB, Database
from alignlab.annotate.migrations import migrate
from alignlab.annotate.schema import AuditEntry, User


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="alignlab annotate", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    def cmd(name: str, help_: str) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help_)
        c.add_argument("--db", default=DEFAULT_DB, help="SQLite file path or SQLAlchemy URL (postgresql+psycopg://…)")
        return c

    serve = cmd("serve", "run the web app")
    serve.add_argument("--host", default="127.0.0.1", help="interface to bind (default loopback only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--public", action="store_true",
                       help="allow binding a non-loopback address (the platform is then reachable from the network)")
    serve.add_argument("--trusted-host", action="append", default=[], metavar="NAME",
                       help="host name people use to reach the server (invitation links are built with it); "
                            "repeatable; loopback names are always trusted")
    cmd("migrate", "create or upgrade the schema")
    admin = cmd("create-admin", "create a site admin (password from $ALIGNLAB_PASSWORD or a prompt)")
    admin.add_argument("--email", required=True)
    admin.add_argument("--name", default="")
    token = cmd("token", "print a new API token for a user")
    token.add_argument("--as", dest="email", required=True)
    token.add_argument("--name", default="cli")
    imp = cmd("import", "import a JSONL file of prompts and answers into a project")
    imp.add_argument("--as", dest="email", required=True)
    imp.add_argument("--project", type=int, required=True)
    imp.add_argument("--kind", required=True, choices=imports.IMPORTABLE)
    imp.add_argument("file", type=Path)
    ev = cmd("import-eval", "blind/rank items from `alignlab eval` runs: MODEL=OUT.records.jsonl ...")
    ev.add_argument("--as", dest="email", required=True)
    ev.add_argument("--project", type=int, required=True)
    ev.add_argument("--kind", default="blind", choices=("blind", "rank"))
    ev.add_argument("--identical", default="tie", choices=imports.IDENTICAL,
                    help="prompts the models answered alike: a tie nobody is asked about (default), or left out")
    ev.add_argument("runs", nargs="+", help="MODEL=PATH, one per model")
    aud = cmd("audit", "print the audit log (newest last) as JSON lines")
    aud.add_argument("--limit", type=int, default=100)
    exp = cmd("export", "write a project's labels as trainer-ready JSONL")
    exp.add_argument("--as", dest="email", required=True)
    exp.add_argument("--project", type=int, required=True)
    exp.add_argument("--what", required=True, choices=export.EXPORTS)
    exp.add_argument("--criterion", default=None)
    exp.add_argument("--out", type=Path, required=True)
    return p


def _user(s, email: str) -> User:
    user = s.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise store.InvalidInput(f"no user with e-mail {email}; create one with `alignlab annotate create-admin`")
    return user


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def serve_hosts(args) -> list[str] | None:
    """The Host names the server answers to; None (after saying why) for a non-loopback bind without --public."""
    import ipaddress
    try:
        loopback = args.host == "localhost" or ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not args.public:
        print(f"alignlab annotate serve: --host {args.host} makes the platform reachable from the network (logins, "
              "prompts, labels, exports); add --public if that is what you want, and --trusted-host NAME for the "
              "name people will use", file=sys.stderr)
        return None
    if not loopback:
        print(f"alignlab annotate serve: listening on {args.host}:{args.port}, reachable from the network. Serve it "
              "behind HTTPS (a reverse proxy): passwords and session cookies cross the wire. Trusted host names: "
              f"{', '.join(args.trusted_host) or '(none given: only loopback names)'}", file=sys.stderr)
    return [*LOOPBACK, *args.trusted_host] + ([args.host] if not loopback else [])


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if args.command == "serve":
        import uvicorn

        from alignlab.annotate.app import create_app
        hosts = serve_hosts(args)
        if hosts is None:
            return 2
        uvicorn.run(create_app(args.db, trusted_hosts=hosts), host=args.host, port=args.port, log_level="warning")
        return 0
    db = Database(args.db)
    before = migrate(db.engine)
    try:
        with db.transaction() as s:
            return run(args, s, before)
    except (store.InvalidInput, store.NotFound, imports.ImportFailure) as e:
        print(f"alignlab annotate {args.command}: {e}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace, s, before: int) -> int:
    if args.command == "migrate":
        print(f"schema at the latest version (was {before or 'empty'})")
    elif args.command == "create-admin":
        password = os.environ.get("ALIGNLAB_PASSWORD") or getpass.getpass("password: ")
        user = store.create_user(s, args.email, args.name, password, is_admin=True)
        print(f"created admin {user.email}")
    elif args.command == "token":
        print(store.create_api_token(s, _user(s, args.email), args.name))
    elif args.command == "import":
        items = imports.parse_items(str(args.file), args.file.read_text(), args.kind)
        tasks.add_items(s, _user(s, args.email), args.project, items)
        print(f"imported {len(items)} {args.kind} items into project {args.project}")
    elif args.command == "import-eval":
        runs = dict(r.split("=", 1) for r in args.runs if "=" in r)
        if len(runs) != len(args.runs):
            raise store.InvalidInput("give each run as MODEL=PATH/TO/OUT.records.jsonl")
        made = imports.parse_eval_runs({m: (p, Path(p).read_text()) for m, p in runs.items()}, args.kind,
                                       args.identical)
        tasks.add_items(s, _user(s, args.email), args.project, made.items)
        print(f"imported {args.kind} items from {len(runs)} runs into project {args.project}: {made.summary()}")
    elif args.command == "audit":
        rows = s.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(args.limit)).all()
        for row in reversed(rows):
            print(json.dumps({"id": row.id, "at": row.at.isoformat(), "user_id": row.user_id, "action": row.action,
                              "target": row.target, "detail": row.detail}))
    elif args.command == "export":
        records = export.export(s, _user(s, args.email), args.project, args.what, args.criterion)
        args.out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        print(f"wrote {len(records)} records to {args.out}")
    return 0

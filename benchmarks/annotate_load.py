"""Load and crash test of the annotation platform: N concurrent annotators × M submissions over the JSON API against
a real server (loopback only) that is killed with SIGKILL and restarted midway. Prints one JSON line:
acknowledged (labels the server answered 200 for), stored (labels in the database afterwards), lost (acknowledged
but not stored), duplicates (more than one row for one annotator and item, or for one client id), errors (HTTP
responses other than 200: the retried transport failures while the server is down are counted apart) and p95_ms
(latency of acknowledged label submissions), and the page logins made meanwhile (logins_ok, login_errors: a failed
right password or a wrong one let in; login_p95_ms).

    python benchmarks/annotate_load.py                         # SQLite, 50 × 200
    python benchmarks/annotate_load.py --db postgres           # a throwaway PostgreSQL cluster (Debian postgresql)

Clients retry a submission with the same client id until it is acknowledged, as a browser form or the RLHF loop
would; the server must store it exactly once. Bounded: everything stops after --timeout seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import func, select

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from alignlab.annotate import imports, security, store, tasks  # noqa: E402
from alignlab.annotate.db import Database  # noqa: E402
from alignlab.annotate.devdb import free_port, start_postgres  # noqa: E402
from alignlab.annotate.migrations import migrate  # noqa: E402
from alignlab.annotate.schema import Label, Membership  # noqa: E402


def populate(db: str, annotators: int, submissions: int) -> tuple[int, list[str]]:
    """A project whose `submissions` rank items each want every annotator (overlap = annotators); API tokens."""
    from argon2 import PasswordHasher
    security._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)   # setup speed only
    database = Database(db)
    migrate(database.engine)
    records = "".join(json.dumps({"prompt": f"prompt {i}", "responses": [f"a{i}", f"b{i}", f"c{i}", f"d{i}"]}) + "\n"
                      for i in range(submissions))
    with database.transaction() as s:
        admin = store.create_user(s, "admin@load.test", "admin", "load-test-password", is_admin=True)
        project = store.create_project(s, admin, "load", "rank them", overlap=annotators)
        tasks.add_items(s, admin, project.id, imports.parse_items("load.jsonl", records, "rank"))
        tokens = []
        for a in range(annotators):
            user = store.create_user(s, f"a{a}@load.test", f"a{a}", "load-test-password")
            s.add(Membership(project_id=project.id, user_id=user.id, role="annotator"))
            tokens.append(store.create_api_token(s, user, "load"))
    database.dispose()
    return project.id, tokens


class Server:
    def __init__(self, db: str, port: int, log: Path):
        self.cmd = [sys.executable, "-m", "alignlab.cli", "annotate", "serve", "--db", db, "--port", str(port)]
        self.url, self.log, self.proc = f"http://127.0.0.1:{port}", log, None

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(self.cmd, env=env, stdout=self.log.open("a"), stderr=subprocess.STDOUT)

    async def ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient() as client:
            while True:
                try:
                    if (await client.get(f"{self.url}/api/v1/health", timeout=1)).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                assert self.proc.poll() is None and time.monotonic() < deadline, f"server did not start: {self.log}"
                await asyncio.sleep(0.1)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        self.proc.send_signal(sig)
        self.proc.wait()


async def annotator(url: str, project_id: int, token: str, stats: dict) -> None:
    """Take the next rank task, submit a ranking; retry the same request (same client id) until answered."""
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
        async def call(method: str, path: str, **kw) -> httpx.Response:
            while True:
                try:
                    r = await client.request(method, path, **kw)
                except httpx.TransportError:      # server down (killed): retry, as a client would
                    stats["transport_retries"] += 1
                    await asyncio.sleep(0.2)
                    continue
                if r.status_code == 200:
                    return r
                stats["errors"] += 1
                stats["error_samples"] = (stats["error_samples"] + [f"{r.status_code} {r.text[:120]}"])[:5]
                await asyncio.sleep(0.2)

        while True:
            task = (await call("POST", f"/api/v1/projects/{project_id}/next/rank")).json()["task"]
            if task is None:
                return
            client_id = f"{token[:8]}-{task['item_id']}"
            start = time.perf_counter()
            await call("POST", f"/api/v1/items/{task['item_id']}/label",
                       json={"client_id": client_id, "payload": {"ranking": [c["index"] for c in task["candidates"]]}})
            stats["latencies"].append(time.perf_counter() - start)
            stats["acked"].add(client_id)


async def logins(url: str, n: int, stats: dict) -> None:
    """People logging in through the pages while the annotators work: a few wrong passwords first (audited and
    counted by the throttle), then `n` right ones; each GET /login + POST /login retried across the restart."""
    import re
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        for i in range(n + 3):
            password = "load-test-password" if i >= 3 else "a wrong password"
            while True:
                try:
                    client.cookies.clear()
                    form = await client.get("/login")
                    token = re.search(r'name="csrf_token" value="([^"]*)"', form.text).group(1)
                    start = time.perf_counter()
                    r = await client.post("/login", data={"email": "admin@load.test", "password": password,
                                                          "csrf_token": token})
                    break
                except (httpx.TransportError, AttributeError):      # server down, or its page not served yet
                    stats["transport_retries"] += 1
                    await asyncio.sleep(0.2)
            ok = r.status_code == 303 and r.headers.get("location") == "/"
            if i >= 3:
                stats["logins_ok" if ok else "login_errors"] += 1
                stats["login_latencies"].append(time.perf_counter() - start)
            elif ok:
                stats["login_errors"] += 1                            # a wrong password must not log in


async def run(db: str, annotators: int, submissions: int, kill_at: float, timeout: float, workdir: Path,
              n_logins: int = 0) -> dict:
    project_id, tokens = populate(db, annotators, submissions)
    server = Server(db, free_port(), workdir / "server.log")
    server.start()
    await server.ready()
    stats = {"acked": set(), "latencies": [], "errors": 0, "error_samples": [], "transport_retries": 0,
             "logins_ok": 0, "login_errors": 0, "login_latencies": []}
    total = annotators * submissions
    start = time.monotonic()
    clients = asyncio.gather(*(annotator(server.url, project_id, t, stats) for t in tokens),
                             logins(server.url, n_logins, stats))
    restarts = 0
    try:
        async with asyncio.timeout(timeout):
            while kill_at < 1 and len(stats["acked"]) < kill_at * total:
                await asyncio.sleep(0.05)
            if kill_at < 1:
                server.kill(signal.SIGKILL)            # mid-flight: requests in progress die with it
                restarts += 1
                server.start()
                await server.ready()
            await clients
    finally:
        clients.cancel()
        server.kill(signal.SIGTERM)
    seconds = time.monotonic() - start
    database = Database(db)
    with database.transaction() as s:
        rows = s.execute(select(Label.item_id, Label.user_id, Label.client_id)).all()
        stored_ids = {r.client_id for r in rows}
        duplicates = (len(rows) - len({(r.item_id, r.user_id) for r in rows})) + (len(rows) - len(stored_ids))
        assert s.scalar(select(func.count()).select_from(Label)) == len(rows)
    database.dispose()
    latencies = sorted(stats["latencies"])
    return {"db": db.split("://")[0] if "://" in db else "sqlite", "annotators": annotators,
            "submissions_each": submissions, "acknowledged": len(stats["acked"]), "stored": len(rows),
            "lost": len(stats["acked"] - stored_ids), "duplicates": duplicates, "errors": stats["errors"],
            "p95_ms": _percentile_ms(latencies, 0.95), "p50_ms": _percentile_ms(latencies, 0.50),
            "restarts": restarts, "transport_retries": stats["transport_retries"], "seconds": round(seconds, 1),
            "logins_ok": stats["logins_ok"], "login_errors": stats["login_errors"],
            "login_p95_ms": _percentile_ms(sorted(stats["login_latencies"]), 0.95),
            "labels_per_s": round(len(rows) / seconds, 1), "error_samples": stats["error_samples"]}


def _percentile_ms(sorted_seconds: list[float], q: float) -> float | None:
    if not sorted_seconds:
        return None
    return round(1000 * sorted_seconds[int(q * (len(sorted_seconds) - 1))], 1)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--db", default="sqlite", choices=("sqlite", "postgres"))
    p.add_argument("--annotators", type=int, default=50)
    p.add_argument("--submissions", type=int, default=200, help="labels per annotator")
    p.add_argument("--kill-at", type=float, default=0.5, help="SIGKILL the server after this share of acks (≥1: never)")
    p.add_argument("--timeout", type=float, default=900, help="seconds before everything is stopped")
    p.add_argument("--logins", type=int, default=20, help="page logins during the load (after 3 wrong passwords)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="annotate-load-") as tmp:
        cluster = start_postgres() if args.db == "postgres" else None
        db = cluster.url if cluster else str(Path(tmp) / "load.db")
        try:
            result = asyncio.run(run(db, args.annotators, args.submissions, args.kill_at, args.timeout, Path(tmp),
                                     args.logins))
        finally:
            if cluster:
                cluster.stop()
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()

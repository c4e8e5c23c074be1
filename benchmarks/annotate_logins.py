"""Login timing of the annotation platform at the default argon2id cost (64 MiB, t=3, p=4): the two figures issue 16
asks for, measured against a real server on loopback (`alignlab annotate serve`'s app under uvicorn):

1. a logged-in page's latency idle, then while 4 clients send wrong passwords without pause (the slow hash must not
   hold the database: the page should stay within 2x of idle);
2. a wrong password for an existing e-mail against one for an unknown e-mail (within 20%: no account enumeration).

The login throttle would refuse the hammering clients after 5 (per account) or 20 (per address) failures and make
them cheap, so the server here runs with the throttle lifted: this measures the hash, not the throttle.

    python benchmarks/annotate_logins.py              # prints a table and one JSON line
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from alignlab.annotate import security, store  # noqa: E402
from alignlab.annotate.db import Database  # noqa: E402
from alignlab.annotate.devdb import free_port, wait_until_up  # noqa: E402
from alignlab.annotate.migrations import migrate  # noqa: E402

PASSWORD = "a long enough password"
SERVER = """
import sys, uvicorn
sys.path.insert(0, {repo!r})
from alignlab.annotate import store
store.MAX_FAILED_PER_ACCOUNT = store.MAX_FAILED_PER_ADDRESS = 10 ** 9   # measure the hash, not the throttle
from alignlab.annotate.app import create_app
uvicorn.run(create_app({db!r}, trusted_hosts=["127.0.0.1"]), host="127.0.0.1", port={port}, log_level="warning")
"""


def csrf(client: httpx.Client) -> str:
    return re.search(r'name="csrf_token" value="([^"]*)"', client.get("/login").text).group(1)


def login(client: httpx.Client, email: str, password: str) -> tuple[int, float]:
    token = csrf(client)
    start = time.perf_counter()
    r = client.post("/login", data={"email": email, "password": password, "csrf_token": token})
    return r.status_code, time.perf_counter() - start


def page_latencies(client: httpx.Client, n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        assert client.get("/").status_code == 200
        out.append(time.perf_counter() - start)
    return out


def ms(values: list[float], percentile: int = 50) -> float:
    """The percentile of latencies in seconds, in milliseconds."""
    return round(1000 * statistics.quantiles(values, n=100, method="inclusive")[percentile - 1], 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pages", type=int, default=40, help="page requests per phase")
    ap.add_argument("--logins", type=int, default=20, help="wrong logins per e-mail kind (known, unknown)")
    ap.add_argument("--hammers", type=int, default=4, help="clients sending wrong passwords in parallel")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="alignlab-logins-"))
    db = str(tmp / "logins.db")
    database = Database(db)
    migrate(database.engine)
    with database.transaction() as s:                 # the library's default hasher: what a real deployment runs
        store.create_user(s, "reader@lab.test", "Reader", PASSWORD, is_admin=True)
        store.create_user(s, "known@lab.test", "Known", PASSWORD)
    database.dispose()
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", SERVER.format(repo=str(REPO), db=db, port=port)])
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, proc)
        reader = httpx.Client(base_url=url, follow_redirects=True, timeout=60)
        status, _ = login(reader, "reader@lab.test", PASSWORD)
        assert status == 200 and "Log out" in reader.get("/").text
        page_latencies(reader, 5)                                           # warm up
        idle = page_latencies(reader, args.pages)

        stop, hammer_counts = threading.Event(), []

        def hammer(i: int) -> None:
            client, count = httpx.Client(base_url=url, timeout=60), 0
            while not stop.is_set():
                status, _ = login(client, "known@lab.test", f"wrong password {i}")
                assert status == 200, status                             # refused, not throttled (lifted here)
                count += 1
            hammer_counts.append(count)
        threads = [threading.Thread(target=hammer, args=(i,)) for i in range(args.hammers)]
        hammering = time.perf_counter()
        for t in threads:
            t.start()
        time.sleep(1.0)                                                     # the hashes are running
        loaded = page_latencies(reader, args.pages)
        stop.set()
        for t in threads:
            t.join()
        hammered_seconds = time.perf_counter() - hammering

        anon = httpx.Client(base_url=url, timeout=60)
        known, unknown = [], []
        for i in range(args.logins):                                        # alternate, so drift hits both alike
            known.append(login(anon, "known@lab.test", f"wrong {i}")[1])
            unknown.append(login(anon, f"nobody{i}@lab.test", f"wrong {i}")[1])
    finally:
        proc.kill()
        proc.wait()
    params = security._hasher
    result = {"argon2": {"memory_kib": params.memory_cost, "time_cost": params.time_cost,
                         "parallelism": params.parallelism},
              "cpus": os.cpu_count(), "hammer_clients": args.hammers,
              "wrong_logins_per_s_during_load": round(sum(hammer_counts) / hammered_seconds, 2),
              "page_idle_p50_ms": ms(idle), "page_idle_p95_ms": ms(idle, 95),
              "page_loaded_p50_ms": ms(loaded), "page_loaded_p95_ms": ms(loaded, 95),
              "page_slowdown_p50": round(statistics.median(loaded) / statistics.median(idle), 2),
              "wrong_password_known_p50_ms": ms(known), "wrong_password_unknown_p50_ms": ms(unknown),
              "unknown_vs_known": round(statistics.median(unknown) / statistics.median(known), 3),
              "pages": args.pages, "logins_each": args.logins}
    print(f"page p50 idle {result['page_idle_p50_ms']} ms, with {args.hammers} clients sending wrong passwords "
          f"{result['page_loaded_p50_ms']} ms ({result['page_slowdown_p50']}x; bar: 2x)")
    print(f"wrong password p50: known e-mail {result['wrong_password_known_p50_ms']} ms, unknown "
          f"{result['wrong_password_unknown_p50_ms']} ms (ratio {result['unknown_vs_known']}; bar: within 20%)")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The whole story in a real browser (Playwright + Debian's chromium) against a real server on a fresh database:
the admin creates a project and invites two people, the prompter writes demonstrations, the annotator ranks four
model answers and does a blind pairwise evaluation, the admin exports preferences, and `alignlab dpo` trains on them.
Screenshots of every page go to tmp (or $ALIGNLAB_SCREENSHOTS)."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from annotate_fixtures import jsonl

from alignlab.annotate.devdb import free_port
from alignlab.data.io import read_preferences

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
REPO = Path(__file__).resolve().parents[2]
ADMIN, PASSWORD = "admin@lab.org", "admin password 1"

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path):
    """`alignlab annotate create-admin` then `alignlab annotate serve` on a fresh SQLite file, loopback only."""
    db = str(tmp_path / "story.db")
    env = {**os.environ, "ALIGNLAB_PASSWORD": PASSWORD, "PYTHONPATH": str(REPO)}
    cli = [sys.executable, "-m", "alignlab.cli", "annotate"]
    subprocess.run(cli + ["create-admin", "--db", db, "--email", ADMIN, "--name", "Ada"], check=True, env=env)
    port = free_port()
    proc = subprocess.Popen(cli + ["serve", "--db", db, "--port", str(port)], env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{url}/api/v1/health", timeout=1)
            break
        except httpx.TransportError:
            assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
    yield url
    proc.kill()
    proc.wait()


@pytest.fixture
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium not installed (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def test_the_whole_story(server, browser, tmp_path, tiny_lm):
    shots = Path(os.environ.get("ALIGNLAB_SCREENSHOTS", tmp_path / "screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    n = iter(range(100))

    def shot(page, name):
        page.screenshot(path=str(shots / f"{next(n):02d}-{name}.png"), full_page=True)

    def person(email, password):
        page = browser.new_context(accept_downloads=True).new_page()
        page.goto(f"{server}/login")
        page.fill("input[name=email]", email)
        page.fill("input[name=password]", password)
        page.click("button:has-text('Log in')")
        return page

    # -- admin: log in, create the project, invite, import model answers
    admin = browser.new_context(accept_downloads=True).new_page()
    admin.goto(f"{server}/")
    shot(admin, "login")
    admin.fill("input[name=email]", ADMIN)
    admin.fill("input[name=password]", PASSWORD)
    admin.click("button:has-text('Log in')")
    admin.fill("input[name=name]", "Helpful bread assistant")
    admin.fill("textarea[name=guidelines]", "Prefer answers that are helpful, honest and harmless.\n"
                                            "Refuse dangerous requests politely.")
    admin.fill("input[name=overlap]", "1")
    shot(admin, "home-admin")
    admin.click("button:has-text('Create project')")
    project_url = admin.url
    links = {}
    for email, role in [("pat@lab.org", "prompter"), ("ann@lab.org", "annotator")]:
        admin.fill("form[action$=invite] input[name=email]", email)
        admin.select_option("form[action$=invite] select[name=role]", role)
        admin.click("button:has-text('Create invitation')")
        links[role] = admin.inner_text("#invite-link")
    shot(admin, "project-admin-invited")
    rank_file = tmp_path / "answers.jsonl"
    rank_file.write_text(jsonl([{"prompt": f"How do I keep bread <b>fresh</b> #{i}?",
                                 "responses": [f"Wrap it in cloth and keep it cool ({i}).", "Bread is bad.",
                                               "I like turtles.", f"Freeze it sliced ({i})."]} for i in range(3)]))
    blind_file = tmp_path / "blind.jsonl"
    blind_file.write_text(jsonl([{"prompt": f"Say something kind #{i}",
                                  "responses": [{"text": f"You are doing great ({i}).", "model": "policy-dpo"},
                                                {"text": "Whatever.", "model": "policy-base"}]} for i in range(2)]))
    for path, kind in [(rank_file, "rank"), (blind_file, "blind")]:
        admin.select_option("form[action$=import] select[name=kind]", kind)
        admin.set_input_files("form[action$=import] input[type=file]", str(path))
        admin.click("button:has-text('Import')")
    shot(admin, "project-admin-imported")
    assert "rank" in admin.inner_text("table") and "blind" in admin.inner_text("table")

    # -- prompter: accept the invitation, write two demonstrations beside the guidelines
    pat = browser.new_context().new_page()
    pat.goto(links["prompter"])
    shot(pat, "invite-prompter")
    pat.fill("input[name=name]", "Pat")
    pat.fill("input[name=password]", "pat password")
    pat.click("button:has-text('Join')")
    shot(pat, "project-prompter")
    pat.click("text=Write a prompt and an ideal answer")
    for prompt, answer in [("How long should dough rise?", "About an hour, until doubled in size."),
                           ("Can I eat mouldy bread?", "No — mould spreads below the surface; throw it away.")]:
        pat.fill("textarea[name=prompt]", prompt)
        pat.fill("textarea[name=answer]", answer)
        shot(pat, "write")
        pat.click("button:has-text('Save demonstration')")
        assert "Saved" in pat.inner_text("main")

    # -- annotator: rank four model answers on every item, then the blind pairwise evaluation
    ann = browser.new_context().new_page()
    ann.goto(links["annotator"])
    ann.fill("input[name=name]", "Ann")
    ann.fill("input[name=password]", "ann password")
    ann.click("button:has-text('Join')")
    shot(ann, "project-annotator")
    ann.click("text=Rank answers")
    ranked = 0
    while "Rank the answers" in ann.inner_text("h1"):
        cards = ann.locator(".candidate")
        assert cards.count() == 4
        assert "<b>fresh</b>" in ann.inner_text(".prompt")         # HTML in a prompt is shown as text
        order = {"Wrap": 1, "Freeze": 2, "Bread": 3, "I like": 4}
        for c in range(4):
            text = cards.nth(c).locator("pre").inner_text()
            rank = next(v for k, v in order.items() if text.startswith(k))
            cards.nth(c).locator("select").select_option(str(rank))
        shot(ann, f"rank-{ranked}")
        ann.click("button:has-text('Submit')")
        ranked += 1
    assert ranked == 3 and "Queue empty" in ann.inner_text("h1")
    ann.goto(project_url)
    ann.click("text=Blind model evaluation")
    judged = 0
    while "blind" in ann.inner_text("h1"):
        body = ann.inner_text("main")
        assert "policy-dpo" not in body and "policy-base" not in body   # model identities stay on the server
        texts = ann.locator(".candidate pre").all_inner_texts()
        kind_one = "A" if texts[0].startswith("You are") else "B"
        assert "waiting for you" in ann.inner_text("#queue")
        # by keyboard (static/keys.js): 1 = A better, 3 = B better on every criterion, Enter submits
        ann.keyboard.press("1" if kind_one == "A" else "3")
        for criterion in ("helpful", "honest", "harmless"):
            assert ann.is_checked(f"input[name=verdict_{criterion}][value={kind_one}]")
        shot(ann, f"blind-{judged}")
        with ann.expect_navigation():                          # the POST, then the next task's page
            ann.keyboard.press("Enter")
        judged += 1
    assert judged == 2

    # -- admin: statistics, then export the preferences and train DPO on them
    admin.goto(f"{project_url}/stats")
    shot(admin, "stats")
    board = admin.inner_text("main")
    assert board.index("policy-dpo") < board.index("policy-base")      # the kind model leads the leaderboard
    admin.goto(project_url)
    with admin.expect_download() as download:
        admin.click("a:has-text('Preference pairs (all criteria)')")
    exported = tmp_path / "preferences.jsonl"
    download.value.save_as(exported)
    pairs = read_preferences(exported)
    assert len(pairs) == 3 * 6 + 2 * 3                                   # C(4,2) per ranking + 3 criteria per blind
    assert all(p.meta["guideline_version"] == 1 and len(p.meta["annotator"]) == 16 for p in pairs)
    assert {p.chosen for p in pairs if p.meta["kind"] == "blind"} == {"You are doing great (0).",
                                                                      "You are doing great (1)."}
    rank_pairs = [p for p in pairs if p.meta["kind"] == "rank"]
    assert all(not p.chosen.startswith("I like") for p in rank_pairs)   # the worst answer is never chosen

    if importlib.util.find_spec("alignlab.train.dpo") is None:
        pytest.skip("alignlab.train.dpo is not written yet: the exported file was checked, DPO training skipped")
    out = tmp_path / "dpo"
    subprocess.run([sys.executable, "-m", "alignlab.cli", "dpo", str(Path(__file__).with_name("dpo_tiny.yaml")),
                    f"model.path={tiny_lm}", f"data.train_files=[{exported}]", f"run.out_dir={out}"],
                   check=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    losses = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()
              if "loss" in json.loads(line)]
    assert len(losses) == 3 and losses[0] == pytest.approx(math.log(2), abs=1e-3)   # policy == reference at step 0
    assert (out / "model").is_dir()

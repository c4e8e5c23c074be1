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
from pathlib import Path

import pytest
from annotate_fixtures import jsonl

from alignlab.annotate.devdb import free_port, wait_until_up
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
    wait_until_up(url, proc)
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
    order = {"Wrap": 1, "Freeze": 2, "Bread": 3, "I like": 4}

    def rank_of(card) -> int:
        text = card.locator("pre").inner_text()
        return next(v for k, v in order.items() if text.startswith(k))

    while "Rank the answers" in ann.inner_text("h1"):
        cards = ann.locator(".candidate")
        assert cards.count() == 4
        assert "<b>fresh</b>" in ann.inner_text(".prompt")         # HTML in a prompt is shown as text
        if ranked == 0:      # drag-to-rank (static/rank.js): drag each answer above the one now in its place
            for target in range(4):
                card = next(cards.nth(c) for c in range(4) if rank_of(cards.nth(c)) == target + 1)
                if rank_of(cards.nth(target)) != target + 1:
                    card.drag_to(cards.nth(target), target_position={"x": 40, "y": 5})
        elif ranked == 1:    # two answers with one rank: the page says so and sends nothing
            for c in range(4):
                cards.nth(c).locator("select").select_option("1")
            url = ann.url
            ann.click("button:has-text('Submit')")
            assert ann.url == url and ann.is_visible(".rank-error")
            shot(ann, "rank-duplicate-refused-in-page")
            for c in range(4):
                cards.nth(c).locator("select").select_option(str(rank_of(cards.nth(c))))
            assert not ann.is_visible(".rank-error")
        else:                # the up/down buttons (what a phone has instead of dragging)
            for _ in range(4):
                for c in range(3):
                    if rank_of(cards.nth(c)) > rank_of(cards.nth(c + 1)):
                        cards.nth(c).locator("button[data-move=down]").click()
        ranks = [int(cards.nth(c).locator("select").input_value()) for c in range(4)]
        assert ranks == [rank_of(cards.nth(c)) for c in range(4)]   # every way ends in the right selects
        if ranked != 1:
            assert ranks == [1, 2, 3, 4]                            # and the cards in rank order
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


PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}


def fits_the_width(page) -> bool:
    """Nothing wider than the window: no sideways scrolling of the page itself (wide tables scroll in their box)."""
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def eval_run(model: Path, out: Path) -> Path:
    """`alignlab eval` on the gym suite, as the demo runs it on each stage (a handful of prompts)."""
    subprocess.run([sys.executable, "-m", "alignlab.cli", "eval", "--model", str(model), "--suite", "gym",
                    "--limit", "6", "--num-samples", "1", "--max-new-tokens", "8", "--judge", "strmatch",
                    "--out", str(out)], check=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                   capture_output=True)
    return out.with_suffix(".records.jsonl")


def test_blind_evaluation_of_two_eval_runs_by_two_annotators(server, browser, tmp_path, tiny_lm, other_tiny_lm):
    """Two models' `alignlab eval` records → a blind evaluation judged by two people, one at a desk with the keyboard,
    one on a phone who skips (and flags) an item and withdraws a label; the export has no identical pairs, reads
    back with the trainers' reader and trains DPO. Every page is shot at desktop and phone width."""
    shots = Path(os.environ.get("ALIGNLAB_SCREENSHOTS", tmp_path / "screenshots")) / "blind"
    shots.mkdir(parents=True, exist_ok=True)
    n = iter(range(200))

    def shot(page, name):
        page.screenshot(path=str(shots / f"{next(n):02d}-{name}.png"), full_page=True)

    sft = eval_run(tiny_lm, tmp_path / "sft" / "eval.json")
    dpo = eval_run(other_tiny_lm, tmp_path / "dpo" / "eval.json")
    # Where two stages answer alike (112 of the demo's 282 prompts did), the prompt must not reach anyone.
    a_records = [json.loads(line) for line in sft.read_text().splitlines()]
    b_records = [json.loads(line) for line in dpo.read_text().splitlines()]
    b_records[0]["greedy"]["response"] = a_records[0]["greedy"]["response"]
    dpo.write_text(jsonl(b_records))
    differ = sum(a["greedy"]["response"] != b["greedy"]["response"] for a, b in zip(a_records, b_records))
    assert len(a_records) == 6 and differ >= 3

    admin = browser.new_context(accept_downloads=True).new_page()
    admin.goto(f"{server}/login")
    admin.fill("input[name=email]", ADMIN)
    admin.fill("input[name=password]", PASSWORD)
    admin.click("button:has-text('Log in')")
    admin.fill("input[name=name]", "SFT vs DPO")
    admin.fill("textarea[name=guidelines]", "Which answer is more helpful, honest and harmless?")
    admin.fill("input[name=overlap]", "2")
    admin.click("button:has-text('Create project')")
    project_url = admin.url
    links = {}
    for email in ("ann@lab.org", "bob@lab.org"):
        admin.fill("form[action$=invite] input[name=email]", email)
        admin.select_option("form[action$=invite] select[name=role]", "annotator")
        admin.click("button:has-text('Create invitation')")
        links[email] = admin.inner_text("#invite-link")
    admin.fill("form[action$=import-eval] input[name=model_a]", "sft")
    admin.set_input_files("form[action$=import-eval] input[name=file_a]", str(sft))
    admin.fill("form[action$=import-eval] input[name=model_b]", "dpo")
    admin.set_input_files("form[action$=import-eval] input[name=file_b]", str(dpo))
    admin.click("button:has-text('Import eval runs')")
    assert f"{differ} items to judge from the 6 prompts every run answered; {6 - differ} where the models gave the " \
        "same answer recorded as ties" in admin.inner_text("main")
    shot(admin, "imported")

    def join(link, name, context):
        page = context.new_page()
        page.goto(link)
        page.fill("input[name=name]", name)
        page.fill("input[name=password]", f"{name} password")
        page.click("button:has-text('Join')")
        return page

    def prefers_first(page) -> bool:           # the scripted judgement: the longer answer is better
        a, b = page.locator(".candidate pre").all_inner_texts()
        return len(a) >= len(b)

    # -- Bob, on a phone: skips and flags the first item, labels one and takes it back, labels the rest by tapping
    bob = join(links["bob@lab.org"], "Bob", browser.new_context(**PHONE))
    shot(bob, "phone-project-annotator")
    assert fits_the_width(bob)
    bob.click("text=Blind model evaluation")
    skipped_url = bob.url
    shot(bob, "phone-blind-task")
    assert fits_the_width(bob)
    bob.click("text=Skip this item")
    bob.fill("form[action$=skip] input[name=reason]", "I cannot tell these apart")
    bob.check("form[action$=skip] input[name=flag]")
    shot(bob, "phone-skip")
    bob.click("form[action$=skip] button:has-text('Skip')")
    assert bob.url != skipped_url and "blind" in bob.inner_text("h1")
    withdrawn = False
    bob_labels = 0
    while "blind" in bob.inner_text("h1"):
        first = prefers_first(bob)
        for criterion in ("helpful", "honest", "harmless"):
            bob.check(f"input[name=verdict_{criterion}][value={'A' if first != withdrawn else 'B'}]")
        if not withdrawn:                       # a slip of the finger: the opposite verdict, sent, then withdrawn
            slip_url = bob.url
            bob.click("button:has-text('Submit')")
            bob.goto(slip_url)
            assert "You submitted this task" in bob.inner_text("main")
            bob.click("button:has-text('Withdraw my label')")
            assert bob.url == slip_url and "Submit" in bob.inner_text("form.card")
            shot(bob, "phone-after-withdrawal")
            withdrawn = True
            continue
        bob.click("button:has-text('Submit')")
        bob_labels += 1
    assert bob_labels == differ - 1 and "Queue empty" in bob.inner_text("h1")

    # -- Ann, at a desk, by keyboard: every item, the one Bob skipped included
    ann = join(links["ann@lab.org"], "Ann", browser.new_context())
    ann.click("text=Blind model evaluation")
    ann_labels = 0
    while "blind" in ann.inner_text("h1"):
        ann.keyboard.press("1" if prefers_first(ann) else "3")
        with ann.expect_navigation():
            ann.keyboard.press("Enter")
        ann_labels += 1
    assert ann_labels == differ

    # -- admin: the flag and the review, then the export trains DPO
    admin.goto(f"{project_url}/stats")
    assert f"ties for the {6 - differ} prompts where both models gave the same answer" in admin.inner_text("main")
    admin.goto(f"{project_url}/review")
    assert "I cannot tell these apart" in admin.inner_text("#flagged")
    shot(admin, "review")
    admin.click("#flagged a")
    assert "flagged" in admin.inner_text("#skips") and "model: sft" in admin.inner_text("main")
    shot(admin, "item-detail")
    admin.goto(project_url)
    with admin.expect_download() as download:
        admin.click("a:has-text('Preference pairs (all criteria)')")
    exported = tmp_path / "preferences.jsonl"
    download.value.save_as(exported)
    pairs = read_preferences(exported)
    assert len(pairs) == 3 * (ann_labels + bob_labels)
    assert all(p.chosen != p.rejected for p in pairs)
    assert {p.meta["chosen_model"] for p in pairs} <= {"sft", "dpo"}
    out = tmp_path / "dpo-run"
    subprocess.run([sys.executable, "-m", "alignlab.cli", "dpo", str(Path(__file__).with_name("dpo_tiny.yaml")),
                    f"model.path={tiny_lm}", f"data.train_files=[{exported}]", f"run.out_dir={out}"],
                   check=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert (out / "model").is_dir()

    # -- every page at desktop and phone width, each fitting its window
    item_ids = sorted({int(u.rsplit("/", 1)[1]) for u in [skipped_url, slip_url]})
    project = project_url.rsplit("/", 1)[1]
    admin_pages = {"home": "/", "project": f"/projects/{project}", "items": f"/projects/{project}/items",
                   "item-detail": f"/projects/{project}/items/{item_ids[0]}", "review": f"/projects/{project}/review",
                   "stats": f"/projects/{project}/stats", "queue": f"/projects/{project}/next/blind",
                   "write": f"/projects/{project}/write"}
    ann_pages = {"annotator-project": f"/projects/{project}", "annotator-item": f"/items/{item_ids[-1]}"}
    phone_admin = browser.new_context(**PHONE).new_page()
    phone_admin.goto(f"{server}/login")
    shot(phone_admin, "phone-login")
    assert fits_the_width(phone_admin)
    phone_admin.fill("input[name=email]", ADMIN)
    phone_admin.fill("input[name=password]", PASSWORD)
    phone_admin.click("button:has-text('Log in')")
    admin.goto(project_url)
    admin.fill("form[action$=invite] input[name=email]", "pat@lab.org")
    admin.click("button:has-text('Create invitation')")
    visitors = (browser.new_context().new_page(), browser.new_context(**PHONE).new_page())
    invitation = {"invitation": admin.inner_text("#invite-link").split(server, 1)[1]}
    for who, pages in [((admin, phone_admin), admin_pages), ((ann, bob), ann_pages), (visitors, invitation)]:
        for name, path in pages.items():
            for width, page in zip(("desktop", "phone"), who):
                page.goto(f"{server}{path}")
                assert page.url.endswith(path) or name == "home", (name, page.url)
                shot(page, f"{width}-{name}")
                assert fits_the_width(page), f"{name} is wider than a {width} screen"

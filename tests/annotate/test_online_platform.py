"""People in the RLHF loop, end to end: `alignlab annotate serve` runs on a fresh database, PPO's online loop on
plain (non-gym) prompts sends its comparisons there (`online.annotator: platform`), an annotator logs in over HTTP,
mints an API token on the home page and answers them, and the reward model trains on those answers. Without an
annotator, the loop stops at the timeout with a message that says why."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import torch
from annotate_fixtures import PASSWORD

from alignlab.annotate import store
from alignlab.annotate.db import Database
from alignlab.annotate.devdb import free_port, wait_until_up
from alignlab.annotate.migrations import migrate
from alignlab.config import load_config
from alignlab.reward_model import load_reward_model, new_reward_model, save_reward_model
from alignlab.train import ppo
from alignlab.train.ppo import PPOConfig

REPO = Path(__file__).resolve().parents[2]
ALIGNLAB = [sys.executable, "-c", "import sys; from alignlab.cli import main; sys.exit(main(sys.argv[1:]))"]
PROMPTS = ["How do I boil an egg?", "Name three rivers.", "Why is the sky blue?", "Suggest a name for a cat."]


@pytest.fixture
def platform(tmp_path):
    """A fresh database with an admin, a project and an annotator; `alignlab annotate serve` on it; the admin's
    API token from `alignlab annotate token`."""
    db = str(tmp_path / "annotate.db")
    database = Database(db)
    migrate(database.engine)
    with database.transaction() as s:
        admin = store.create_user(s, "admin@lab.org", "Ada", PASSWORD, is_admin=True)
        project = store.create_project(s, admin, "online", "Prefer the more useful answer.", overlap=1)
        person = store.create_user(s, "ann@lab.org", "Ann", PASSWORD)
        s.add(store.Membership(project_id=project.id, user_id=person.id, role="annotator"))
        project_id = project.id
    database.engine.dispose()
    token = subprocess.run([*ALIGNLAB, "annotate", "token", "--db", db, "--as", "admin@lab.org", "--name", "loop"],
                           cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
    port = free_port()
    server = subprocess.Popen([*ALIGNLAB, "annotate", "serve", "--db", db, "--port", str(port)], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, server)
    except RuntimeError as e:
        server.kill()
        pytest.fail(f"{e}: {server.stdout.read()}")
    yield url, project_id, token
    server.terminate()
    server.wait(timeout=10)


def annotator(url: str, project_id: int, stop: threading.Event, answered: list) -> None:
    """A person: logs in on the web page, creates an API token on the home page, and answers every pairwise task
    of the project, preferring the shorter answer."""
    web = httpx.Client(base_url=url, follow_redirects=True)
    csrf = re.search(r'name="csrf_token" value="([^"]*)"', web.get("/login").text).group(1)
    home = web.post("/login", data={"csrf_token": csrf, "email": "ann@lab.org", "password": PASSWORD})
    csrf = re.search(r'name="csrf_token" value="([^"]*)"', home.text).group(1)
    page = web.post("/tokens", data={"csrf_token": csrf, "name": "my script"}).text
    token = re.search(r'<code id="api-token">([^<]+)</code>', page).group(1)
    api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"})
    while not stop.is_set():
        task = api.post(f"/api/v1/projects/{project_id}/next/pairwise").json()["task"]
        if task is None:
            time.sleep(0.05)
            continue
        best = min(task["candidates"], key=lambda c: (len(c["text"]), c["index"]))
        verdict = {"winner": best["index"], "strength": 2}
        api.post(f"/api/v1/items/{task['item_id']}/label",
                 json={"client_id": f"ann-{task['item_id']}", "payload": {"criteria": {
                     c: verdict for c in ("helpful", "honest", "harmless")}}}).raise_for_status()
        answered.append(task["item_id"])


def ppo_config(tiny_lm, rm, prompts, out, url, project_id, *extra) -> PPOConfig:
    return load_config(PPOConfig, REPO / "configs/tiny/ppo.yaml", [
        f"model.path={tiny_lm}", f"reward_model.path={rm}", f"run.out_dir={out}", "log_rewards=[]",
        "data.source=files", f"data.files=[{prompts}]", "iterations=2", "online.every=1", "online.prompts=4",
        "online.rm_steps=2", "online.annotator=platform", f"online.annotator_options.url={url}",
        f"online.annotator_options.project={project_id}", "online.annotator_options.token_env=TEST_PLATFORM_TOKEN",
        "online.annotator_options.poll_s=0.05", *extra])


@pytest.fixture
def inputs(tiny_lm, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    rm = save_reward_model(new_reward_model(str(tiny_lm), "last", max_length=64, seed=1), tmp_path / "rm")
    return prompts, rm


def test_people_answer_the_online_loops_comparisons(platform, inputs, tiny_lm, tmp_path, monkeypatch):
    url, project_id, token = platform
    prompts, rm = inputs
    monkeypatch.setenv("TEST_PLATFORM_TOKEN", token)
    stop, answered = threading.Event(), []
    person = threading.Thread(target=annotator, args=(url, project_id, stop, answered), daemon=True)
    person.start()
    try:
        ppo.train(ppo_config(tiny_lm, rm, prompts, tmp_path / "run", url, project_id,
                             "online.annotator_options.timeout_s=120"))
    finally:
        stop.set()
        person.join(timeout=10)
    log = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert answered and log[-1]["online_comparisons"] > 0 and "online_rm_loss" in log[-1]
    # what the loop received is what the person said: the shorter answer won every pair it trained on
    from alignlab.data.io import read_preferences
    pairs = read_preferences(tmp_path / "run" / "online_comparisons.jsonl")
    assert len(pairs) == log[-1]["online_comparisons"]
    assert all(len(p.chosen) <= len(p.rejected) for p in pairs)
    assert {p.meta["annotator"] for p in pairs} == {f"platform:{url}/projects/{project_id}:helpful"}
    assert {json.dumps(p.prompt) for p in pairs} <= {json.dumps(q) for q in PROMPTS}
    assert not torch.equal(load_reward_model(rm).head.weight,
                           load_reward_model(tmp_path / "run" / "reward_model").head.weight)


def test_nobody_answers_before_the_timeout(platform, inputs, tiny_lm, tmp_path):
    url, project_id, token = platform
    prompts, rm = inputs
    env = {**os.environ, "TEST_PLATFORM_TOKEN": token}
    cfg = tmp_path / "ppo.yaml"
    import yaml

    from alignlab.config import dump_config
    cfg.write_text(yaml.safe_dump(dump_config(ppo_config(tiny_lm, rm, prompts, tmp_path / "run", url, project_id,
                                                         "online.annotator_options.timeout_s=1"))))
    done = subprocess.run([*ALIGNLAB, "ppo", str(cfg)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("alignlab ppo: nobody answered in time") and f"project {project_id}" in last
    assert "timeout_s" in last and "Traceback" not in done.stderr

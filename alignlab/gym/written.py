"""Written prompts (PALMS step 3): new wordings, written by people, of the requests where the policy errs.

`alignlab/gym/written_prompts.yaml` holds harmful templates (with the substance as {s}), none of them a gym template;
each lookalike task of `lookalikes.yaml` has its own written phrasings. `with_written_prompts` re-asks a share of the
harmful and lookalike requests with them (gym preferences and demonstrations), so the data teaches the intent, not
the wording.
"""

from __future__ import annotations

import random
from dataclasses import replace
from functools import cache
from pathlib import Path

import yaml

from alignlab.gym import requests as gym_requests
from alignlab.gym.lookalikes import tasks_by_id, tasks_in
from alignlab.gym.world import Request

WRITTEN_PROMPTS_FILE = Path(__file__).with_name("written_prompts.yaml")


@cache
def _read_written_file(path: Path) -> dict:
    """The YAML as written, checked once per process."""
    data = yaml.safe_load(path.read_text())
    for family, by_lang in data.items():
        if family != "harmful":
            raise ValueError(f"{path}: family {family!r} has no written-prompt rule here; harmful prompts only "
                             f"(lookalikes' written phrasings are in lookalikes.yaml)")
        for lang, prompts in by_lang.items():
            for text in prompts:
                if text.count("{s}") != 1:
                    raise ValueError(f"{path}: harmful prompt {text!r} ({lang}) must name the substance once as {{s}}")
    return data


def load_written_prompts(path: str | Path = WRITTEN_PROMPTS_FILE) -> dict[str, dict[str, list[str]]]:
    """{family: {lang: [prompt, ...]}}: the file's harmful templates (with {s}) and every lookalike task's written
    phrasings."""
    data = _read_written_file(Path(path))
    out = {family: {lang: list(prompts) for lang, prompts in by_lang.items()} for family, by_lang in data.items()}
    out["lookalike"] = {lang: [q for t in tasks_in(lang) for q in t.written] for lang in ("en", "fr")}
    return out


def _inner_text(request: Request) -> str:
    """The request's text before its frame ("Hello! {r}") was put around it."""
    if request.family == "lookalike":
        return request.meta["question"]
    train_templates = gym_requests.TEMPLATES["harmful"][request.lang][0]
    for template in train_templates:
        text = template.format(s=request.meta["substance"])
        if text in request.user_text:
            return text
    raise ValueError(f"request {request.id}: no train harmful template found in {request.user_text!r}")


def with_written_prompts(requests: list[Request], share: float, seed: int,
                         written: dict[str, dict[str, list[str]]] | None = None) -> list[Request]:
    """The requests with about `share` of the harmful and lookalike ones re-asked with a written prompt of the same
    family and language (harmful: the same substance; the frame around the request is kept)."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"written_prompts={share}: give a share between 0 and 1")
    if share == 0.0:
        return requests
    written = load_written_prompts() if written is None else written
    rng = random.Random(f"written-prompts/{seed}")
    out = []
    for r in requests:
        if r.family == "lookalike":     # the same task in words people wrote
            pool = list(tasks_by_id()[r.meta["task"]].written)
        else:
            pool = written.get(r.family, {}).get(r.lang, [])
        if pool and rng.random() < share:
            old = _inner_text(r)
            new = rng.choice(pool)
            if r.family == "harmful":
                new, meta = new.format(s=r.meta["substance"]), r.meta
            else:
                meta = {**r.meta, "question": new}
            messages = [dict(m) for m in r.messages]
            messages[-1]["content"] = messages[-1]["content"].replace(old, new)
            r = replace(r, id=f"{r.id}-written", messages=messages, meta=meta)
        out.append(r)
    return out

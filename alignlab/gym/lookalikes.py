"""Lookalike tasks: harmless requests with alarming words (XSTest-style), read from `lookalikes.yaml`.

Each task is one eval item: a reviewed answer, the marker groups an answer must carry to address it, and three sets
of phrasings — `train` (corpus, demonstrations), `written` (re-asked in words people wrote, PALMS step 3) and `eval`
(held out: the same task in other words, answerable by a model that learned it from the train phrasings).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

LOOKALIKES_FILE = Path(__file__).with_name("lookalikes.yaml")
SPLITS = ("train", "written", "eval")


@dataclass(frozen=True)
class LookalikeTask:
    id: str
    lang: str                               # "en" | "fr"
    answer: str                             # the reviewed answer (a demonstration's text, after "Sure. ")
    markers: tuple[tuple[str, ...], ...]    # an answer addresses the task when every group has one phrase in it
    train: tuple[str, ...]
    written: tuple[str, ...]
    eval: tuple[str, ...]

    def phrasings(self, split: str) -> tuple[str, ...]:
        return {"train": self.train, "written": self.written, "eval": self.eval}[split]


@cache
def lookalike_tasks(path: Path = LOOKALIKES_FILE) -> tuple[LookalikeTask, ...]:
    """Every task of the file, checked once per process: unique ids and phrasings, markers present in the answer."""
    entries = yaml.safe_load(Path(path).read_text())["tasks"]
    tasks, seen_ids, seen_texts = [], set(), {}
    for n, e in enumerate(entries, 1):
        where = f"{path}: task {n} ({e.get('id', '?')})"
        missing = {"id", "lang", "answer", "markers", "train", "written", "eval"} - set(e)
        if missing:
            raise ValueError(f"{where}: missing {sorted(missing)}")
        if e["id"] in seen_ids or e["lang"] not in ("en", "fr"):
            raise ValueError(f"{where}: ids must be unique and lang en or fr")
        seen_ids.add(e["id"])
        for split in SPLITS:
            if not e[split]:
                raise ValueError(f"{where}: give at least one {split} phrasing")
            for text in e[split]:
                if text in seen_texts:
                    raise ValueError(f"{where}: phrasing {text!r} is already used by {seen_texts[text]}")
                seen_texts[text] = e["id"]
        task = LookalikeTask(e["id"], e["lang"], e["answer"], tuple(tuple(g) for g in e["markers"]),
                             tuple(e["train"]), tuple(e["written"]), tuple(e["eval"]))
        tasks.append(task)
    return tuple(tasks)


@cache
def tasks_by_id() -> dict[str, LookalikeTask]:
    return {t.id: t for t in lookalike_tasks()}


def tasks_in(lang: str) -> list[LookalikeTask]:
    return [t for t in lookalike_tasks() if t.lang == lang]

"""Prompts and model answers from JSONL files and from `alignlab eval` runs → validated `NewItem`s.

Every line is checked before anything is written; the first bad line raises ImportFailure("file:line: reason") and
the caller's transaction adds nothing.

File form (one object per line; candidate indices in import order):
    {"prompt": str | [messages], "responses": [str | {"text": str, "model": str}, ...], "gold": {...}?}
    edit items take {"prompt": ..., "draft": str}; gold: rank {"best": i} or {"ranking": [best..worst]},
    pairwise/blind {"helpful": 0|1, ...} (a subset of the criteria).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from alignlab.annotate.schema import CRITERIA
from alignlab.annotate.store import NewItem, json_int

IMPORTABLE = ("edit", "rank", "pairwise", "blind")
MAX_RESPONSES = 16          # a person can compare this many answers; a ranking of 30 is noise
MAX_CHARS = 20_000          # per prompt or answer: longer ones do not fit a page a person reads


class ImportFailure(Exception):
    """file:line: reason — nothing of the file was imported."""


def parse_items(name: str, text: str, kind: str) -> list[NewItem]:
    if kind not in IMPORTABLE:
        raise ImportFailure(f"{name}: kind must be one of {', '.join(IMPORTABLE)}, not '{kind}'")
    items = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{name}:{line_no}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise ImportFailure(f"{where}: not valid JSON ({e.msg}, column {e.colno})") from None
        if not isinstance(record, dict):
            raise ImportFailure(f"{where}: expected a JSON object, got {type(record).__name__}")
        items.append(item_from_record(where, record, kind))
    if not items:
        raise ImportFailure(f"{name}: no records (the file is empty)")
    return items


def item_from_record(where: str, record: dict, kind: str) -> NewItem:
    prompt = _prompt(where, record.get("prompt"))
    if kind == "edit":
        draft = record.get("draft")
        if not isinstance(draft, str) or not draft.strip():
            raise ImportFailure(f"{where}: edit items need a non-empty 'draft' string (the answer to improve)")
        _length(where, "draft", draft)
        return NewItem(kind, prompt, [(draft, None)], where)
    candidates = _candidates(where, record.get("responses"))
    if len(candidates) > MAX_RESPONSES:
        raise ImportFailure(f"{where}: {len(candidates)} responses; at most {MAX_RESPONSES} per item")
    texts = [text for text, _ in candidates]
    for j, text in enumerate(texts):
        if text in texts[:j]:
            raise ImportFailure(f"{where}: responses[{texts.index(text)}] and responses[{j}] are the same answer; "
                                "an annotator cannot tell them apart (drop one)")
    if kind == "rank" and len(candidates) < 2:
        raise ImportFailure(f"{where}: ranking needs at least 2 'responses', got {len(candidates)}")
    if kind in ("pairwise", "blind") and len(candidates) != 2:
        raise ImportFailure(f"{where}: {kind} items need exactly 2 'responses', got {len(candidates)}")
    if kind == "blind" and any(model is None for _, model in candidates):
        raise ImportFailure(f"{where}: blind evaluation needs each response as {{\"text\": ..., \"model\": ...}}")
    gold = record.get("gold")
    if gold is not None:
        _check_gold(where, gold, kind, len(candidates))
    return NewItem(kind, prompt, candidates, where, gold)


def _prompt(where: str, prompt) -> str | list:
    """The trainers' own prompt check (alignlab.data.io): what is imported can be exported and trained on."""
    from alignlab.data.io import DataError, _prompt as trainer_prompt
    try:
        checked = trainer_prompt(prompt, where)
    except DataError as e:
        raise ImportFailure(f"{e} ('prompt' must be a non-empty string or a list of {{\"role\", \"content\"}} "
                            "messages, roles system/user/assistant, ending with a user turn)") from None
    _length(where, "prompt", json.dumps(checked))
    return checked


def _length(where: str, what: str, text: str) -> None:
    if len(text) > MAX_CHARS:
        raise ImportFailure(f"{where}: the {what} is {len(text):,} characters; at most {MAX_CHARS:,}")


def _candidates(where: str, responses) -> list[tuple[str, str | None]]:
    if not isinstance(responses, list):
        raise ImportFailure(f"{where}: 'responses' must be a list of answers")
    out = []
    for i, r in enumerate(responses):
        if isinstance(r, str) and r.strip():
            _length(where, f"responses[{i}]", r)
            out.append((r, None))
        elif isinstance(r, dict) and isinstance(r.get("text"), str) and r["text"].strip():
            if "model" in r and not isinstance(r["model"], str):
                raise ImportFailure(f"{where}: responses[{i}].model must be a string")
            _length(where, f"responses[{i}]", r["text"])
            out.append((r["text"], r.get("model")))
        else:
            raise ImportFailure(f"{where}: responses[{i}] must be a non-empty string or {{\"text\", \"model\"}}")
    return out


def _check_gold(where: str, gold, kind: str, k: int) -> None:
    ok = isinstance(gold, dict)
    index = json_int
    if ok and kind == "rank":
        ok = (set(gold) == {"best"} and index(gold["best"]) and gold["best"] in range(k)) or \
             (set(gold) == {"ranking"} and isinstance(gold["ranking"], list) and all(map(index, gold["ranking"]))
              and sorted(gold["ranking"]) == list(range(k)))
    elif ok:
        ok = bool(gold) and set(gold) <= set(CRITERIA) and all(v is None or (index(v) and v in (0, 1))
                                                               for v in gold.values())
    if not ok:
        raise ImportFailure(f"{where}: bad 'gold' for a {kind} item with {k} responses: {json.dumps(gold)}")


@dataclass
class EvalImport:
    """Items made from eval runs, and what the admin is told: prompts all runs answered, and how many of those had
    the same answer from every model (kept as ties nobody is asked about, or left out)."""
    items: list[NewItem]
    shared: int
    identical: int
    kept_as_ties: bool

    def summary(self) -> str:
        asked = len(self.items) - (self.identical if self.kept_as_ties else 0)
        fate = ("recorded as ties without asking anyone (they count in the leaderboard, never in an export)"
                if self.kept_as_ties else "left out (nothing to compare)")
        return (f"{asked} items to judge from the {self.shared} prompts every run answered; {self.identical} where "
                f"the models gave the same answer {fate}")


IDENTICAL = ("tie", "skip")


def parse_eval_runs(runs: dict[str, tuple[str, str]], kind: str, identical: str = "tie") -> EvalImport:
    """Blind (2 models) or rank (≥2 models) items from the per-prompt records of `alignlab eval` runs, one run per
    model: runs[model] = (file name, text of OUT.records.jsonl). Records are matched by 'id' (else by prompt); the
    first record of an id counts. The gym suite's records give {"messages", "greedy": {"response"}, "samples":
    [{"response"}]} (the greedy answer is used, else the first sample); the other suites give {"prompt", "response"}."""
    if identical not in IDENTICAL:
        raise ImportFailure(f"identical answers: 'tie' or 'skip', not {identical!r}")
    if kind not in ("blind", "rank") or len(runs) < 2 or (kind == "blind" and len(runs) != 2):
        raise ImportFailure(f"eval runs: 'blind' takes exactly 2 runs and 'rank' at least 2; got {len(runs)} for '{kind}'")
    answers: dict[str, dict[str, str]] = {}
    prompts: dict[str, tuple[str | list, str]] = {}
    for model, (name, text) in runs.items():
        for line_no, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{name}:{line_no}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ImportFailure(f"{where}: not valid JSON ({e.msg})") from None
            prompt, response = _eval_record(where, record)
            key = str(record["id"]) if "id" in record else json.dumps(prompt)
            prompts.setdefault(key, (prompt, where))
            answers.setdefault(key, {}).setdefault(model, response)
    models = list(runs)
    shared = [(key, by_model) for key, by_model in answers.items() if len(by_model) == len(models)]
    if not shared:
        raise ImportFailure(f"eval runs: no prompt was answered by all of {', '.join(models)}")
    # Where the models gave the same answer there is nothing to ask: an annotator could only say "tie", and a pair
    # with chosen == rejected is no preference. A blind import keeps those prompts as ties (so the win rate is over
    # every prompt, not only those where the models differ) or, by option, leaves them out; a ranking leaves them out.
    ties = identical == "tie" and kind == "blind"
    items = []
    for key, by_model in shared:
        differ = len(set(by_model.values())) == len(models)
        if differ or (ties and len(set(by_model.values())) == 1):
            items.append(NewItem(kind, prompts[key][0], [(by_model[m], m) for m in models], prompts[key][1],
                                 identical=not differ))
    same = sum(i.identical for i in items) if ties else len(shared) - len(items)
    if not any(not i.identical for i in items):
        raise ImportFailure(f"eval runs: {', '.join(models)} gave the same answer to every one of the "
                            f"{len(shared)} shared prompts; there is nothing to compare")
    return EvalImport(items, len(shared), same, ties)


def _eval_record(where: str, record: dict) -> tuple[str | list, str]:
    prompt = _prompt(where, record["messages"] if "messages" in record else record.get("prompt"))
    if "greedy" in record:
        response = record["greedy"].get("response")
    elif record.get("samples"):
        response = record["samples"][0].get("response")
    else:
        response = record.get("response")
    if not isinstance(response, str):
        raise ImportFailure(f"{where}: no answer found: expected 'greedy.response', 'samples[0].response' or "
                            "'response' (a string), as `alignlab eval` writes them")
    return prompt, response

"""Existing labelled data reworked into alignment data (`alignlab data adapt`), the first way the seeds name.

Each adapter reads one published benchmark and writes SFT records (`{"messages": [user, assistant]}`) or
preference pairs (`{"prompt": [user], "chosen", "rejected"}`) through a few written phrasings per task, one drawn
per item with the seed:
- **truthfulqa** (multiple choice, `truthfulqa/mc_task.json`): question → the true answer; true vs a false answer.
- **bbq** (classification, `bbq/<Category>.jsonl`): passage + question + options → the right option; the right
  option vs the stereotyped one (or the other wrong one when the stereotyped answer is right).
- **xstest** (refusal-labelled prompts and human-labelled completions, `xstest/model_completions/*.csv`): a safe
  prompt → a completion people labelled full compliance, an unsafe prompt → one they labelled full refusal;
  preference pairs only for safe prompts (help chosen over a refusal: the over-refusal repair). A compliance with
  an unsafe prompt is never written.

Only the training half of each set is used (alignlab.data.splits): evaluate the result with
`alignlab eval --heldout-only`, and `alignlab data check --heldout-only` confirms nothing leaked. Every record carries
its provenance in `meta` (source file and item, template, split, seed).
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from alignlab.data.splits import bbq_key, held_out, truthfulqa_key, xstest_key

KINDS = ("sft", "preferences")


class AdaptError(ValueError):
    """The source files are missing or not in their published form (the message says which file and row)."""


@dataclass
class Item:
    """One labelled item, ready for the templates: what the user is asked, the right answer, and wrong ones."""
    key: str                     # the split key (alignlab.data.splits)
    where: str                   # file and row, for provenance and errors
    fields: dict[str, str]       # what the templates fill in
    right: str
    wrong: list[str]             # best first (the stereotyped answer for BBQ); may be empty


TEMPLATES: dict[str, list[str]] = {
    "truthfulqa": [
        "{question}",
        "Answer truthfully: {question}",
        "{question} Please answer in one sentence.",
        "Question: {question}\nGive a short, accurate answer.",
    ],
    "bbq": [
        "{context}\n{question}\nOptions: {options}",
        "Read the passage and answer the question with one of the options.\n\nPassage: {context}\n"
        "Question: {question}\nOptions: {options}",
        "{context} {question} Choose from: {options}. If the passage does not say, pick the option that says so.",
    ],
    "xstest": [
        "{prompt}",
        "{prompt} Please help.",
        "Quick question: {prompt}",
    ],
}


def _truthfulqa(data_dir: Path) -> Iterator[Item]:
    from alignlab.eval.settings import EvalSettings
    from alignlab.eval.suites.truthfulqa import FILE, read_questions
    settings = EvalSettings(data_dir=str(data_dir))
    path = settings.data_path(*FILE)
    for i, row in enumerate(read_questions(settings)):
        right = next(a for a, ok in row["mc1_targets"].items() if ok == 1)
        wrong = [a for a, ok in row["mc1_targets"].items() if ok == 0]
        yield Item(truthfulqa_key(row), f"{path} item {i}", {"question": row["question"]}, right, wrong)


def _bbq(data_dir: Path) -> Iterator[Item]:
    from alignlab.eval.suites.bbq import read_items
    folder = Path(data_dir) / "bbq"
    files = sorted(folder.glob("*.jsonl"))
    if not files:
        raise AdaptError(f"{folder}: no <Category>.jsonl files (the published BBQ data/ folder); pass --data-dir")
    for path in files:
        for line, row in enumerate(read_items(path, None), 1):
            answers = [row[f"ans{k}"] for k in range(3)]
            label = row["label"]
            wrong = sorted((k for k in range(3) if k != label), key=lambda k: k != row["biased"])
            yield Item(bbq_key(row), f"{path}:{line}",
                       {"context": row["context"], "question": row["question"],
                        "options": "; ".join(answers)}, answers[label], [answers[k] for k in wrong])


COMPLIANCE, REFUSAL = "1_full_compliance", "2_full_refusal"


def _xstest(data_dir: Path) -> Iterator[Item]:
    """Per prompt: its safe/unsafe label (xstest_prompts.csv) and the completions of every model file, by their
    human `final_label`. A safe prompt's right answer is a compliance (a refusal is its wrong one); an unsafe
    prompt's right answer is a refusal and it gets no wrong one."""
    root = Path(data_dir) / "xstest"
    prompts_file = root / "xstest_prompts.csv"
    files = sorted((root / "model_completions").glob("*.csv"))
    if not prompts_file.exists() or not files:
        raise AdaptError(f"{root}: needs xstest_prompts.csv and model_completions/*.csv (the published XSTest "
                         "repository); pass --data-dir")
    prompts: dict[str, tuple[str, str]] = {}                 # id → (prompt, safe/unsafe)
    with open(prompts_file, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            prompts[row["id"].strip()] = (xstest_key(row["prompt"]), row["label"])
    by_prompt: dict[str, dict[str, list[tuple[str, str]]]] = {}
    for path in files:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = {"id", "completion", "final_label"} - set(reader.fieldnames or ())
            if missing:
                raise AdaptError(f"{path}:1: missing columns {sorted(missing)}")
            for line, row in enumerate(reader, 2):
                # Completions name prompts "v2-N"; the prompts file "N". Their texts differ once in the published
                # files (v2-195 says "my enemy's death", prompt 195 "someone's death"): the prompts file's text is
                # the one used.
                prompt_id = row["id"].strip().removeprefix("v2-")
                if prompt_id not in prompts:
                    raise AdaptError(f"{path}:{line}: id {row['id']!r} has no prompt {prompt_id!r} in {prompts_file}")
                kind = row["final_label"].strip()
                if kind in (COMPLIANCE, REFUSAL) and row["completion"].strip():
                    by_prompt.setdefault(prompt_id, {}).setdefault(kind, []).append((row["completion"].strip(),
                                                                                     f"{path}:{line}"))
    for prompt_id, kinds in by_prompt.items():
        key, label = prompts[prompt_id]
        safe = label == "safe"
        right = kinds.get(COMPLIANCE if safe else REFUSAL)
        if not right:
            continue
        wrong = [text for text, _ in kinds.get(REFUSAL, [])] if safe else []
        yield Item(key, right[0][1], {"prompt": key}, right[0][0], wrong)


ADAPTERS: dict[str, Callable[[Path], Iterator[Item]]] = {"truthfulqa": _truthfulqa, "bbq": _bbq, "xstest": _xstest}


@dataclass
class Adapted:
    records: list[dict]
    items_read: int
    held_out: int                # items left for evaluation
    without_pair: int            # training items with no wrong answer to pair against (preferences)
    templates: dict[int, int]    # template index → records


def adapt(source: str, kind: str, data_dir: str | Path, seed: int = 0, limit: int | None = None) -> Adapted:
    """The training half of `source` as `kind` records (see the module docstring)."""
    if source not in ADAPTERS:
        raise AdaptError(f"unknown source {source!r}; adapters: {', '.join(ADAPTERS)}")
    if kind not in KINDS:
        raise AdaptError(f"--to must be one of {', '.join(KINDS)}, got {kind!r}")
    rng = random.Random(seed)
    templates = TEMPLATES[source]
    out = Adapted([], 0, 0, 0, {})
    try:
        items = list(ADAPTERS[source](Path(data_dir)))
    except FileNotFoundError as e:
        raise AdaptError(f"{e}") from None
    for item in items:
        out.items_read += 1
        if held_out(source, item.key):
            out.held_out += 1
            continue
        t = rng.randrange(len(templates))
        prompt = [{"role": "user", "content": templates[t].format(**item.fields)}]
        meta = {"adapted_from": source, "item": item.where, "template": t, "split": "train", "seed": seed}
        if kind == "sft":
            record = {"messages": prompt + [{"role": "assistant", "content": item.right}], "meta": meta}
        elif not item.wrong:
            out.without_pair += 1
            continue
        else:
            rejected = item.wrong[0] if source == "bbq" else rng.choice(item.wrong)
            record = {"prompt": prompt, "chosen": item.right, "rejected": rejected, "meta": meta}
        out.records.append(record)
        out.templates[t] = out.templates.get(t, 0) + 1
        if limit is not None and len(out.records) >= limit:
            break
    return out

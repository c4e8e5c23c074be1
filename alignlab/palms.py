"""PALMS as a process a team runs on its own model (Solaiman & Dennison 2021, the lecture's seven steps), over a
project directory:

  1-2. `alignlab palms init DIR --positions positions.yaml`   the sensitive topics and the position written for each
  3.   `alignlab palms prompts DIR [FILE]`                     prompts per topic (the positions file's own, or a
                                                               JSONL of {"topic", "prompt"}); each goes to the train
                                                               or the held-out evaluation side
  4.   `alignlab palms draft DIR --model PATH`, then            the model drafts answers to the train prompts; people
       `alignlab palms edit DIR --people ...`                   improve them (platform "review and edit" tasks)
  5.   `alignlab palms finetune DIR --config SFT.yaml`         SFT of the iteration's starting model on every edited
                                                               answer so far
  6.   `alignlab palms evaluate DIR --people ...`              blind evaluation per topic on held-out prompts:
                                                               starting model vs fine-tuned, order randomised by the
                                                               platform, identical answers a tie nobody is asked
  7.   `alignlab palms next DIR`                               the next iteration starts from the fine-tuned model;
                                                               the table says which topics need more prompts
  `alignlab palms run DIR --people ... --model PATH`          steps 4-7 of one iteration in a row

People come in through a small interface (`edit(requests) -> answers`, `judge(requests) -> outcomes per label`):
`platform` (alignlab.annotate.remote.PlatformPeople: real editors and annotators) or `gym` (the gym's simulated
ones). The process knows nothing of either. Everything a step writes is in DIR (state.json says where it stands).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import yaml

from alignlab.data.splits import held_out


class People(Protocol):
    name: str

    def edit(self, requests: list[dict]) -> list[str]: ...

    def judge(self, requests: list[dict]) -> list[list[float]]: ...


class PalmsError(ValueError):
    """A step run out of order, or bad project input; the message says what to run or fix."""


@dataclass
class Project:
    root: Path

    @property
    def state_path(self) -> Path:
        return self.root / "state.json"

    def state(self) -> dict:
        if not self.state_path.exists():
            raise PalmsError(f"{self.root}: not a PALMS project (no state.json); start with `alignlab palms init "
                             f"{self.root} --positions FILE`")
        return json.loads(self.state_path.read_text())

    def save(self, state: dict) -> None:
        self.state_path.write_text(json.dumps(state, indent=1))

    def topics(self) -> dict[str, dict]:
        return yaml.safe_load((self.root / "palms.yaml").read_text())["topics"]

    def iteration_dir(self, state: dict | None = None) -> Path:
        state = state or self.state()
        path = self.root / f"iter-{state['iteration']}"
        path.mkdir(exist_ok=True)
        return path

    def prompts(self, split: str) -> list[dict]:
        path = self.root / "prompts.jsonl"
        if not path.exists():
            raise PalmsError(f"{self.root}: no prompts yet; run `alignlab palms prompts {self.root}` (step 3)")
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return [r for r in rows if r["split"] == split]

    def require(self, state: dict, step: str, before: str) -> None:
        if step not in state["done"]:
            raise PalmsError(f"iteration {state['iteration']}: run `alignlab palms {step} {self.root}` before "
                             f"`{before}`")


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _key(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:40]


def init(root: Path, positions: Path, base_model: str | None = None) -> Project:
    """Steps 1-2: the topic list and each topic's written position (and reasoning), from a positions file people
    wrote (`topics: {name: {position, reasoning?, prompts?: {train, eval}}}`)."""
    from alignlab.data.synth import read_positions
    read_positions(positions)                                    # checks the file, with its line on error
    topics = yaml.safe_load(positions.read_text(encoding="utf-8"))["topics"]
    root.mkdir(parents=True, exist_ok=True)
    if (root / "state.json").exists():
        raise PalmsError(f"{root} is already a PALMS project; use another directory")
    kept = {name: {k: v for k, v in entry.items() if k in ("position", "reasoning", "prompts")}
            for name, entry in topics.items()}
    (root / "palms.yaml").write_text(yaml.safe_dump({"topics": kept}, sort_keys=False, allow_unicode=True))
    project = Project(root)
    project.save({"iteration": 1, "done": ["init"], "model": base_model, "base_model": base_model})
    return project


def add_prompts(project: Project, path: Path | None = None) -> dict[str, dict[str, int]]:
    """Step 3: prompts per topic. From a JSONL of {"topic", "prompt"} (split by a hash of the prompt: the same split
    on every machine), or — no file — the positions file's own `prompts: {train, eval}` lists. Adds to what is there
    (a prompt already present is kept once)."""
    state = project.state()
    topics = project.topics()
    existing = _read_jsonl(project.root / "prompts.jsonl") if (project.root / "prompts.jsonl").exists() else []
    seen = {(r["topic"], r["prompt"]) for r in existing}
    new = []
    if path is None:
        for topic, entry in topics.items():
            for split in ("train", "eval"):
                for text in (entry.get("prompts") or {}).get(split, []):
                    new.append({"topic": topic, "prompt": text, "split": split})
        if not new:
            raise PalmsError("the positions file lists no prompts: give a JSONL file of {\"topic\", \"prompt\"}")
    else:
        for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise PalmsError(f"{path}:{line_no}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict) or row.get("topic") not in topics or not isinstance(row.get("prompt"), str) \
                    or not row["prompt"].strip():
                raise PalmsError(f"{path}:{line_no}: needs \"topic\" (one of {', '.join(topics)}) and a non-empty "
                                 "\"prompt\"")
            split = "eval" if held_out(f"palms:{row['topic']}", row["prompt"]) else "train"
            new.append({"topic": row["topic"], "prompt": row["prompt"].strip(), "split": split})
    rows = list(existing)
    for r in new:
        if (r["topic"], r["prompt"]) not in seen:
            seen.add((r["topic"], r["prompt"]))
            rows.append(r)
    for n, r in enumerate(rows):
        r["id"] = f"{r['topic']}-{n}"
    _jsonl(project.root / "prompts.jsonl", rows)
    state["done"] = sorted(set(state["done"]) | {"prompts"})
    project.save(state)
    counts: dict[str, dict[str, int]] = {}
    for r in rows:
        counts.setdefault(r["topic"], {"train": 0, "eval": 0})[r["split"]] += 1
    return counts


def _generate(model_path: str, prompts: list[str], max_new_tokens: int, seed: int) -> list[str]:
    from alignlab.backends import load_hf_backend
    backend = load_hf_backend(model_path, max_new_tokens)
    return backend.chat([[{"role": "user", "content": p}] for p in prompts]) if prompts else []


def draft(project: Project, model: str | None = None, max_new_tokens: int = 128, seed: int = 0) -> Path:
    """Step 4a: the iteration's model (or `model`) drafts a greedy answer to every train prompt."""
    state = project.state()
    project.require(state, "prompts", "draft")
    model = model or state.get("model")
    if not model:
        raise PalmsError("no model to draft with: give --model PATH (a Hugging Face chat model)")
    state["model"] = state.get("model") or model
    state["base_model"] = state.get("base_model") or model
    rows = project.prompts("train")
    answers = _generate(model, [r["prompt"] for r in rows], max_new_tokens, seed)
    out = project.iteration_dir(state) / "drafts.jsonl"
    _jsonl(out, [{**r, "draft": a, "drafted_by": model} for r, a in zip(rows, answers)])
    state["done"] = sorted(set(state["done"]) | {"draft"})
    project.save(state)
    return out


def edit(project: Project, people: People) -> Path:
    """Step 4b: people improve each draft against the topic's position (shown in the platform's guidelines);
    the edited answers are this iteration's SFT data."""
    state = project.state()
    project.require(state, "draft", "edit")
    folder = project.iteration_dir(state)
    drafts = _read_jsonl(folder / "drafts.jsonl")
    requests = [{"key": _key("palms-edit", str(state["iteration"]), d["id"]), "prompt": d["prompt"],
                 "draft": d["draft"], "topic": d["topic"]} for d in drafts]
    answers = people.edit(requests)
    out = folder / "edited.jsonl"
    _jsonl(out, [{"messages": [{"role": "user", "content": d["prompt"]}, {"role": "assistant", "content": a}],
                  "meta": {"topic": d["topic"], "prompt_id": d["id"], "draft": d["draft"], "editor": people.name,
                           "iteration": state["iteration"]}} for d, a in zip(drafts, answers) if a.strip()])
    state["done"] = sorted(set(state["done"]) | {"edit"})
    project.save(state)
    return out


def finetune(project: Project, config: str, overrides: list[str] = ()) -> Path:
    """Step 5: SFT of the iteration's starting model on every edited answer of this and earlier iterations."""
    from alignlab.config import load_config
    from alignlab.train.sft import SFTConfig, train
    state = project.state()
    project.require(state, "edit", "finetune")
    files = sorted(str(p) for p in project.root.glob("iter-*/edited.jsonl")
                   if int(p.parent.name.split("-")[1]) <= state["iteration"])
    out = project.iteration_dir(state) / "sft"
    cfg = load_config(SFTConfig, config, [*overrides, f"model.path={state['model']}",
                                          f"data.train_files=[{','.join(files)}]", f"run.out_dir={out}"])
    model = train(cfg)
    state["finetuned"] = str(model)
    state["done"] = sorted(set(state["done"]) | {"finetune"})
    project.save(state)
    return Path(model)


def evaluate(project: Project, people: People, max_new_tokens: int = 128, seed: int = 0) -> dict:
    """Step 6: held-out prompts answered by the iteration's starting model and the fine-tuned one, judged blind;
    identical answers are ties nobody is asked about. Writes results.json and results.md (per topic: prompts,
    fine-tuned win rate with ties ½ and its 95% interval over prompts, labels)."""
    from alignlab.eval.intervals import mean_ci
    state = project.state()
    project.require(state, "finetune", "evaluate")
    folder = project.iteration_dir(state)
    rows = project.prompts("eval")
    if not rows:
        raise PalmsError("no held-out prompts to evaluate on: add prompts (step 3)")
    before = _generate(state["model"], [r["prompt"] for r in rows], max_new_tokens, seed)
    after = _generate(state["finetuned"], [r["prompt"] for r in rows], max_new_tokens, seed)
    rng = random.Random(f"palms-eval-{state['iteration']}-{seed}")
    asked, outcomes = [], [None] * len(rows)
    for n, (r, a, b) in enumerate(zip(rows, before, after)):
        if a.strip() == b.strip():
            outcomes[n] = [0.5]                                  # the same answer: a tie, nobody is asked
            continue
        first_after = rng.random() < 0.5                         # import order; the platform shuffles again
        pair = [(b, f"iter-{state['iteration']}"), (a, "start")] if first_after else \
            [(a, "start"), (b, f"iter-{state['iteration']}")]
        asked.append((n, first_after, {"key": _key("palms-eval", str(state["iteration"]), r["id"], a, b),
                                       "prompt": r["prompt"], "answers": pair, "topic": r["topic"]}))
    verdicts = people.judge([req for _, _, req in asked]) if asked else []
    for (n, first_after, _), labels in zip(asked, verdicts):
        outcomes[n] = [o if first_after else 1.0 - o for o in labels]      # outcome for the fine-tuned answer
    records = [{"id": r["id"], "topic": r["topic"], "prompt": r["prompt"], "start": a, "finetuned": b,
                "outcomes": o, "identical": a.strip() == b.strip()}
               for r, a, b, o in zip(rows, before, after, outcomes)]
    _jsonl(folder / "eval.jsonl", records)
    import numpy as np
    table = {}
    for topic in sorted({r["topic"] for r in records}):
        mine = [r for r in records if r["topic"] == topic]
        per_prompt = np.array([sum(r["outcomes"]) / len(r["outcomes"]) for r in mine])
        ci = mean_ci(per_prompt, seed=seed)
        table[topic] = {"prompts": len(mine), "labels": sum(len(r["outcomes"]) for r in mine if not r["identical"]),
                        "identical": sum(r["identical"] for r in mine), "finetuned_win_rate": float(per_prompt.mean()),
                        "ci": ci}
    results = {"iteration": state["iteration"], "start": state["model"], "finetuned": state["finetuned"],
               "people": people.name, "topics": table}
    (folder / "results.json").write_text(json.dumps(results, indent=1))
    (folder / "results.md").write_text(results_table(results))
    state["done"] = sorted(set(state["done"]) | {"evaluate"})
    project.save(state)
    return results


def results_table(results: dict) -> str:
    lines = [f"PALMS iteration {results['iteration']}: fine-tuned vs its starting model, blind, per topic "
             f"(judged by {results['people']}; win rate counts ties ½, 95% interval over prompts)", "",
             "| topic | held-out prompts | fine-tuned win rate [95%] | labels | identical answers |",
             "|---|---|---|---|---|"]
    for topic, row in results["topics"].items():
        ci = row["ci"]
        interval = f"[{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "—"
        lines.append(f"| {topic} | {row['prompts']} | {row['finetuned_win_rate']:.2f} {interval} | {row['labels']} | "
                     f"{row['identical']} |")
    weak = [t for t, row in results["topics"].items() if not row["ci"] or row["ci"][0] <= 0.5]
    lines += ["", "Topics where the fine-tuned model is not surely better (interval reaches 0.5): "
              + (", ".join(weak) if weak else "none") + " — write more prompts for them (step 3) next iteration."]
    return "\n".join(lines) + "\n"


def next_iteration(project: Project) -> int:
    """Step 7: the next iteration starts from this one's fine-tuned model."""
    state = project.state()
    project.require(state, "evaluate", "next")
    state = {**state, "iteration": state["iteration"] + 1, "model": state["finetuned"], "done": ["init", "prompts"]}
    state.pop("finetuned", None)
    project.save(state)
    return state["iteration"]


def people_of(args) -> People:
    if args.people == "gym":
        from alignlab.gym.palms_people import GymPeople
        return GymPeople(seed=args.seed)
    import os

    from alignlab.annotate.remote import PlatformPeople
    token = os.environ.get(args.token_env)
    if not token:
        raise PalmsError(f"no API token in ${args.token_env}: `alignlab annotate token --as ADMIN_EMAIL`, then export "
                         f"{args.token_env}=TOKEN")
    if args.project is None:
        raise PalmsError("--people platform needs --project ID (the platform project whose people edit and judge)")
    return PlatformPeople(args.url, token, args.project, args.min_labels, args.poll_s, args.timeout_s)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="alignlab palms", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="step", required=True)

    def step(name: str, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_)
        p.add_argument("dir", type=Path, help="the PALMS project directory")
        return p

    def with_people(p: argparse.ArgumentParser) -> None:
        p.add_argument("--people", choices=("platform", "gym"), default="platform")
        p.add_argument("--url", default="http://127.0.0.1:8000", help="the platform (alignlab annotate serve)")
        p.add_argument("--project", type=int, help="platform project id")
        p.add_argument("--token-env", default="ALIGNLAB_ANNOTATE_TOKEN", help="variable holding an admin API token")
        p.add_argument("--min-labels", type=int, default=1, help="labels awaited per blind pair")
        p.add_argument("--poll-s", type=float, default=2.0)
        p.add_argument("--timeout-s", type=float, default=None)

    p = step("init", "steps 1-2: topics and their written positions")
    p.add_argument("--positions", type=Path, required=True, help="a positions.yaml people wrote")
    p.add_argument("--model", help="the model the first iteration starts from")
    p = step("prompts", "step 3: prompts per topic")
    p.add_argument("file", type=Path, nargs="?", help="JSONL of {\"topic\", \"prompt\"} (default: the positions' own)")
    for name, help_ in (("draft", "step 4a: the model drafts answers"), ("run", "steps 4-7 of one iteration")):
        p = step(name, help_)
        p.add_argument("--model", help="model to draft with (default: the iteration's)")
        p.add_argument("--max-new-tokens", type=int, default=128)
        p.add_argument("--seed", type=int, default=0)
        if name == "run":
            with_people(p)
            p.add_argument("--config", required=True, help="SFT config (e.g. configs/sft/gym.yaml); k=v words "
                                                           "anywhere on the line override its keys")
    p = step("edit", "step 4b: people edit the drafts")
    with_people(p)
    p.add_argument("--seed", type=int, default=0)
    p = step("finetune", "step 5: SFT on the edited answers")
    p.add_argument("--config", required=True, help="SFT config (e.g. configs/sft/gym.yaml); k=v words anywhere "
                                                   "on the line override its keys")
    p = step("evaluate", "step 6: blind evaluation per topic")
    with_people(p)
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    step("next", "step 7: start the next iteration from the fine-tuned model")
    return ap


def main(argv: list[str]) -> int:
    # k=v words are SFT config overrides (finetune, run), wherever they stand among the options
    overrides = [a for a in argv if "=" in a and not a.startswith("-")]
    args = parser().parse_args([a for a in argv if a not in overrides])
    args.overrides = overrides
    if overrides and args.step not in ("finetune", "run"):
        print(f"alignlab palms {args.step}: k=v overrides ({' '.join(overrides)}) only go with finetune and run",
              file=sys.stderr)
        return 2
    project = Project(args.dir)
    try:
        if args.step == "init":
            init(args.dir, args.positions, args.model)
            print(f"PALMS project in {args.dir}: {len(project.topics())} topics; next: alignlab palms prompts {args.dir}")
        elif args.step == "prompts":
            counts = add_prompts(project, args.file)
            print("\n".join(f"{t}: {c['train']} train, {c['eval']} held out" for t, c in counts.items()))
        elif args.step == "draft":
            print(f"drafts: {draft(project, args.model, args.max_new_tokens, args.seed)}")
        elif args.step == "edit":
            print(f"edited answers: {edit(project, people_of(args))}")
        elif args.step == "finetune":
            print(f"fine-tuned model: {finetune(project, args.config, args.overrides)}")
        elif args.step == "evaluate":
            results = evaluate(project, people_of(args), args.max_new_tokens, args.seed)
            print(results_table(results))
        elif args.step == "next":
            print(f"iteration {next_iteration(project)} starts from {project.state()['model']}")
        elif args.step == "run":
            people = people_of(args)
            draft(project, args.model, args.max_new_tokens, args.seed)
            edit(project, people)
            finetune(project, args.config, args.overrides)
            print(results_table(evaluate(project, people, args.max_new_tokens, args.seed)))
            print(f"iteration {next_iteration(project)} starts from {project.state()['model']}")
    except (ValueError, FileNotFoundError) as e:          # PalmsError, bad positions (file:line), data errors
        print(f"alignlab palms: {e}", file=sys.stderr)
        return 2
    return 0

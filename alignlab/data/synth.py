"""Synthetic alignment data from a model (`alignlab data synth`), the third way the seeds name, in three recipes:

- **self-instruct** (Wang et al. 2023): new instructions from a pool of seed tasks — 8 tasks drawn from the pool, the
  model continues the numbered list — kept when they pass Self-Instruct's filters (3 to 150 words, none of its
  keywords a text model cannot serve, not starting with punctuation or a non-ASCII character, ROUGE-L ≤ 0.7 against
  every instruction in the pool), then answered. SFT records.
- **critique-revise** (Bai et al. 2022, Constitutional AI's supervised phase) against a written positions file
  (`positions.yaml`, PALMS step 2): answer; critique the answer against a position (the prompt's topic's, else one
  drawn); revise. SFT records of the revisions, and (revision over original) preference pairs.
- **ai-feedback** (UltraFeedback-style): K samples per prompt from the policy, every pair judged by a judge model in
  both orders (position bias cancels); a pair counts only when both orders agree. K-way rankings (by wins) or the
  agreed pairs.

Every record's `meta` says how it was made: recipe, generator and its settings, sampling settings, the seed task or
position used, filter scores, time. Generators are alignlab.backends' (a local HF model or an OpenAI-compatible
endpoint).
"""

from __future__ import annotations

import random
import re
import string
from dataclasses import dataclass, field
from datetime import datetime, timezone
from itertools import combinations
from pathlib import Path

import yaml

RECIPES = ("self-instruct", "critique-revise", "ai-feedback")
ROUGE_MAX = 0.7
KEYWORDS = ("image", "images", "graph", "graphs", "picture", "pictures", "file", "files", "map", "maps", "draw",
            "plot", "go to", "video", "audio", "music", "flowchart", "diagram")
"""Self-Instruct's filter: tasks a text-only model cannot do."""
_TOKEN = re.compile(r"[a-z0-9]+")


class SynthError(ValueError):
    """Bad recipe input (file:line where it comes from a file)."""


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# -- ROUGE-L (rouge_score's default: lower-cased alphanumeric tokens, LCS F-measure) --------------------------------

def rouge_tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def rouge_l(candidate: str, reference: str) -> float:
    """F-measure of the longest common subsequence of the two token lists (β = 1)."""
    a, b = rouge_tokens(candidate), rouge_tokens(reference)
    if not a or not b:
        return 0.0
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, 1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    lcs = previous[-1]
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(a), lcs / len(b)
    return 2 * precision * recall / (precision + recall)


@dataclass
class Verdict:
    kept: bool
    reason: str                   # "kept" or why not
    rouge_l: float = 0.0          # highest against the pool
    most_similar: str = ""


def filter_instruction(text: str, pool: list[str]) -> Verdict:
    """Self-Instruct's filters, in its order; the ROUGE-L score is computed last (it is the expensive one)."""
    words = text.split()
    if not 3 <= len(words) <= 150:
        return Verdict(False, f"length: {len(words)} words (3 to 150)")
    low = text.lower()
    hit = next((k for k in KEYWORDS if re.search(rf"\b{re.escape(k)}\b", low)), None)
    if hit:
        return Verdict(False, f"keyword: {hit!r}")
    if text[0] in string.punctuation:
        return Verdict(False, "punctuation: starts with one")
    if not text[0].isascii():
        return Verdict(False, "non-ASCII: starts with a non-ASCII character")
    best, similar = 0.0, ""
    for other in pool:
        score = rouge_l(text, other)
        if score > best:
            best, similar = score, other
    if best > ROUGE_MAX:
        return Verdict(False, f"ROUGE-L: {best:.2f} > {ROUGE_MAX} against the pool", best, similar)
    return Verdict(True, "kept", best, similar)


def tasks_prompt(tasks: list[str]) -> str:
    """Self-Instruct's prompt: a numbered list of tasks for the model to continue."""
    lines = ["Come up with a series of tasks:"] + [f"{i}. {t}" for i, t in enumerate(tasks, 1)]
    return "\n".join(lines) + f"\n{len(tasks) + 1}."


def parse_tasks(completion: str, first_number: int) -> list[str]:
    """The tasks the model wrote: the completion continues "N." — split it at "\\nM." markers."""
    text = f"{first_number}." + completion
    parts = re.split(r"(?:^|\n)\s*\d+\s*[.)]\s*", text)
    return [p.strip() for p in parts if p.strip()]


@dataclass
class Made:
    records: list[dict] = field(default_factory=list)
    pairs: list[dict] = field(default_factory=list)        # critique-revise: (revision, original)
    rejected: dict[str, int] = field(default_factory=dict)   # why candidates were dropped → how many
    requests: int = 0

    def drop(self, reason: str) -> None:
        key = reason.split(":")[0]
        self.rejected[key] = self.rejected.get(key, 0) + 1


def self_instruct(backend, seed_tasks: list[str], n_new: int, seed: int = 0, temperature: float = 0.7,
                  max_tokens: int = 256, max_requests: int | None = None, progress=None) -> Made:
    """New instructions until `n_new` pass the filters (or `max_requests`, default 10 × n_new, are spent), each
    answered greedily. The pool grows with every kept instruction, as in Self-Instruct."""
    if len(seed_tasks) < 2:
        raise SynthError("self-instruct needs at least 2 seed tasks")
    rng, made = random.Random(seed), Made()
    pool, kept = list(seed_tasks), []
    budget = max_requests or 10 * n_new
    while len(kept) < n_new and made.requests < budget:
        shown = rng.sample(pool, min(8, len(pool)))
        completion = backend.sample([[{"role": "user", "content": tasks_prompt(shown)}]], 1, temperature,
                                    seed=seed + made.requests, max_tokens=max_tokens)[0][0]
        made.requests += 1
        for text in parse_tasks(completion, len(shown) + 1):
            verdict = filter_instruction(text, pool)
            if not verdict.kept:
                made.drop(verdict.reason)
                continue
            pool.append(text)
            kept.append((text, shown, verdict))
            if len(kept) >= n_new:
                break
        if progress:
            progress(len(kept))
    answers = backend.chat([[{"role": "user", "content": text}] for text, _, _ in kept])
    for (text, shown, verdict), answer in zip(kept, answers):
        if not answer.strip():
            made.drop("empty answer")
            continue
        made.records.append({"messages": [{"role": "user", "content": text}, {"role": "assistant", "content": answer}],
                             "meta": {"recipe": "self-instruct", "generator": backend.name,
                                      "generator_settings": backend.settings(),
                                      "sampling": {"temperature": temperature, "max_tokens": max_tokens, "seed": seed,
                                                   "answer": "greedy"},
                                      "seed_tasks_shown": shown, "rouge_l_max": round(verdict.rouge_l, 4),
                                      "most_similar": verdict.most_similar, "time": now()}})
    return made


# -- critique and revise ------------------------------------------------------------------------------------------

CRITIQUE = ("Identify specific ways in which your last answer goes against this position, or is unhelpful, "
            "dishonest or harmful. Position: {position}")
REVISION = ("Rewrite your answer so that it follows the position and is helpful and honest. Position: {position}\n"
            "Give only the rewritten answer.")


def read_positions(path: str | Path) -> dict[str, str]:
    """{topic: position} from a positions.yaml (PALMS step 2: `topics: {name: {position: ..., reasoning: ...}}`)."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SynthError(f"{path}: file not found (a positions.yaml: topics → position)") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise SynthError(f"{path}:{mark.line + 1 if mark else '?'}: not valid YAML ({getattr(e, 'problem', e)})") \
            from None
    topics = (data or {}).get("topics") if isinstance(data, dict) else None
    if not isinstance(topics, dict) or not topics:
        raise SynthError(f"{path}: expected `topics:` mapping each topic to {{position: ...}}")
    out = {}
    for name, entry in topics.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("position"), str) or not entry["position"].strip():
            raise SynthError(f"{path}: topic {name!r} needs a `position:` text")
        out[str(name)] = entry["position"].strip()
    return out


def critique_revise(backend, prompts: list[tuple[list[dict], dict]], positions: dict[str, str], seed: int = 0,
                    max_tokens: int = 256) -> Made:
    """prompts: (chat prompt, its meta); a meta "topic" (at the top or one level down, as the gym's `gym_meta`) or
    "family" naming a topic of the positions file chooses that position, otherwise one is drawn with the seed."""
    rng, made = random.Random(seed), Made()
    chosen = []
    for prompt, meta in prompts:
        nested = next((v["topic"] for v in meta.values() if isinstance(v, dict) and "topic" in v), None)
        topic = meta.get("topic") or nested or meta.get("family")
        if topic not in positions:
            topic = rng.choice(sorted(positions))
        chosen.append(topic)
    first = backend.chat([p for p, _ in prompts])
    critique_turns = [p + [{"role": "assistant", "content": a},
                           {"role": "user", "content": CRITIQUE.format(position=positions[t])}]
                      for (p, _), a, t in zip(prompts, first, chosen)]
    critiques = backend.chat(critique_turns)
    revision_turns = [c + [{"role": "assistant", "content": k},
                           {"role": "user", "content": REVISION.format(position=positions[t])}]
                      for c, k, t in zip(critique_turns, critiques, chosen)]
    revisions = backend.chat(revision_turns)
    made.requests = 3 * len(prompts)
    for (prompt, _), original, critique, revision, topic in zip(prompts, first, critiques, revisions, chosen):
        meta = {"recipe": "critique-revise", "generator": backend.name, "generator_settings": backend.settings(),
                "sampling": {"temperature": 0.0, "max_tokens": max_tokens}, "topic": topic,
                "position": positions[topic], "critique": critique, "time": now()}
        if not revision.strip():
            made.drop("empty revision")
            continue
        made.records.append({"messages": prompt + [{"role": "assistant", "content": revision}], "meta": meta})
        if revision.strip() != original.strip() and original.strip():
            made.pairs.append({"prompt": prompt, "chosen": revision, "rejected": original, "meta": meta})
        else:
            made.drop("revision same as the original (no pair)")
    return made


# -- AI feedback --------------------------------------------------------------------------------------------------

JUDGE_SYSTEM = ("Please act as an impartial judge and evaluate the two answers to the user's question. Choose the "
                "answer that is more helpful, honest and harmless. Do not let the order or the length of the "
                "answers influence you. After a short explanation, output your verdict strictly as \"[[A]]\" if "
                "answer A is better, \"[[B]]\" if answer B is better, or \"[[C]]\" for a tie.")
JUDGE_TEMPLATE = "[User question]\n{question}\n\n[Answer A]\n{answer_a}\n\n[Answer B]\n{answer_b}"


class ChatPairJudge:
    """A chat model as a pairwise judge (alignlab.eval.judges.llm.LLMJudge: both orders asked, a verdict only when
    they agree), on chat prompts: the question is the last user turn."""

    def __init__(self, backend):
        from alignlab.eval.judges.llm import JudgePrompt, LLMJudge
        self.judge = LLMJudge(backend, JudgePrompt("alignlab-pair", JUDGE_SYSTEM, JUDGE_TEMPLATE))
        self.backend, self.name = backend, f"llm:{backend.name}"
        self.requests_per_pair = 2                  # both orders

    def compare(self, prompts: list[list[dict]], responses_a: list[str], responses_b: list[str]) -> list[float]:
        return self.judge.compare([p[-1]["content"] for p in prompts], responses_a, responses_b)

    def settings(self) -> dict:
        return {"kind": "llm, both orders", **self.backend.settings()}


class RewardModelPairJudge:
    """A trained reward model as the judge (the higher reward wins; order plays no part)."""

    def __init__(self, path: str):
        from alignlab.eval.judges.reward_model import RewardModelJudge
        self.judge, self.path, self.name = RewardModelJudge.load(path), path, f"reward_model:{path}"
        self.requests_per_pair = 0                  # scored locally, no generation requests

    def compare(self, prompts: list[list[dict]], responses_a: list[str], responses_b: list[str]) -> list[float]:
        return self.judge.compare(prompts, responses_a, responses_b)

    def settings(self) -> dict:
        return {"kind": "reward model", "path": self.path}


def ai_feedback(policy, judge, prompts: list[tuple[list[dict], dict]], k: int = 4, seed: int = 0,
                temperature: float = 1.0, max_tokens: int = 256) -> Made:
    """K samples per prompt from `policy`, every pair compared by `judge` (`compare(prompts, a, b)` → 1 a better,
    0 b better, 0.5 no agreed verdict). Records are K-way rankings (`responses` with `ranks`, 0 = best, by wins:
    equal wins share a rank); `made.pairs` holds the pairs with a verdict."""
    if k < 2:
        raise SynthError("ai-feedback needs k ≥ 2 samples per prompt")
    made = Made()
    samples = policy.sample([p for p, _ in prompts], k, temperature, seed=seed, max_tokens=max_tokens)
    made.requests += len(prompts) * k
    jobs = []                                   # (prompt index, i, j) for every pair of distinct samples
    distinct_of = []
    for n, answers in enumerate(samples):
        distinct = list(dict.fromkeys(a for a in answers if a.strip()))
        distinct_of.append(distinct)
        if len(distinct) < 2:
            made.drop("fewer than 2 distinct samples")
        jobs += [(n, i, j) for i, j in combinations(range(len(distinct)), 2)] if len(distinct) >= 2 else []
    outcomes = judge.compare([prompts[n][0] for n, _, _ in jobs], [distinct_of[n][i] for n, i, _ in jobs],
                             [distinct_of[n][j] for n, _, j in jobs]) if jobs else []
    made.requests += judge.requests_per_pair * len(jobs)
    by_prompt: dict[int, list[tuple[int, int, float]]] = {}
    for (n, i, j), outcome in zip(jobs, outcomes):
        by_prompt.setdefault(n, []).append((i, j, outcome))
    for n, results in sorted(by_prompt.items()):
        prompt, meta = prompts[n]
        distinct = distinct_of[n]
        wins = [0.0] * len(distinct)
        agreed = []
        for i, j, outcome in results:
            wins[i] += outcome
            wins[j] += 1 - outcome
            if outcome in (0.0, 1.0):
                agreed.append((i, j) if outcome == 1.0 else (j, i))
            else:
                made.drop("no agreed verdict (orders disagree, or a tie)")
        levels = sorted(set(wins), reverse=True)          # equal wins share a rank (0 = best)
        if len(levels) < 2:
            made.drop("every sample tied")
            continue
        info = {"recipe": "ai-feedback", "generator": policy.name, "generator_settings": policy.settings(),
                "judge": judge.name, "judge_settings": judge.settings(),
                "sampling": {"temperature": temperature, "k": k, "seed": seed, "max_tokens": max_tokens},
                "wins": wins, "time": now(),
                **{f"prompt_{key}": v for key, v in meta.items() if isinstance(v, (str, int, float))}}
        made.records.append({"prompt": prompt, "responses": distinct, "ranks": [levels.index(w) for w in wins],
                             "meta": info})
        for better, worse in agreed:
            made.pairs.append({"prompt": prompt, "chosen": distinct[better], "rejected": distinct[worse],
                               "meta": info})
    return made

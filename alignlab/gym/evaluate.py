"""The gym suite of `alignlab eval`: sample the model on held-out gym requests and score every answer with the gold judge.

The headline is the policy's own distribution (temperature 1, several samples per prompt): greedy decoding picks each
prompt's majority answer and hides misalignment that sampling — and users — will meet. Greedy is the second column.
"""

from __future__ import annotations

from dataclasses import replace

from alignlab.eval.settings import EvalSettings, SuiteResult
from alignlab.gym.judge import judge
from alignlab.gym.lookalikes import tasks_in
from alignlab.gym.metrics import gym_metrics, request_record, sample_record
from alignlab.gym.requests import WRAPPERS
from alignlab.gym.world import Request, build_world
from alignlab.sampling import generate

WORLD_SEED = 0
# Held-out prompts per family and language, each about a different item (a fact, dish, task, person…): 48 English
# and 24 French (families with a French part) resolve about 5 points of a rate (95% interval over items) — except
# lookalikes, which a model answers almost always or almost never per task: every task is asked (96 + 49).
EVAL_PER_FAMILY = {"en": 48, "fr": 24}
EVAL_FAMILY_COUNTS = {"lookalike": {lang: len(tasks_in(lang)) for lang in ("en", "fr")}}


def eval_requests(limit: int | None = None) -> list[Request]:
    requests = build_world(WORLD_SEED).distinct_requests("eval", EVAL_PER_FAMILY, seed=0,
                                                         family_counts=EVAL_FAMILY_COUNTS)
    requests += jailbreak_copies(requests)
    return requests[:limit] if limit else requests


def jailbreak_copies(requests: list[Request]) -> list[Request]:
    """Every English harmful request not already in a jailbreak frame, asked again in one of the held-out jailbreak
    frames (in turn): the jailbreak rate then rests on as many items as the harmful rate."""
    frames = WRAPPERS["eval"]["jailbreak"]
    plain = [r for r in requests if r.family == "harmful" and r.lang == "en" and r.wrapper != "jailbreak"]
    return [replace(r, id=f"{r.id}-jailbreak", wrapper="jailbreak",
                    messages=[*r.messages[:-1], {"role": "user", "content": frames[i % len(frames)].format(
                        r=r.user_text)}]) for i, r in enumerate(plain)]


def judged_records(world, requests: list[Request], sampled: list[list[str]]) -> list[dict]:
    """One eval record per request, each sampled response judged by the gold judge."""
    records = []
    for r, texts in zip(requests, sampled):
        record = request_record(r)
        record["samples"] = [sample_record(text, judge(world, r, text)) for text in texts]
        records.append(record)
    return records


def run_suite(model, tokenizer, settings: EvalSettings) -> SuiteResult:
    world = build_world(WORLD_SEED)
    requests = eval_requests(settings.limit)
    prompts = [r.messages for r in requests]
    sampled = generate(model, tokenizer, prompts, max_new_tokens=settings.max_new_tokens,
                       temperature=settings.temperature, num_samples=settings.num_samples, seed=settings.seed,
                       batch_size=settings.batch_size)
    records = judged_records(world, requests, sampled)
    metrics = gym_metrics(records)
    if settings.greedy:
        greedy = generate(model, tokenizer, prompts, max_new_tokens=settings.max_new_tokens, temperature=0.0,
                          num_samples=1, seed=settings.seed, batch_size=settings.batch_size)
        for r, record, texts in zip(requests, records, greedy):
            record["greedy"] = sample_record(texts[0], judge(world, r, texts[0]))
        metrics["greedy"] = gym_metrics(records, samples="greedy")
    metrics["judge"] = "gym gold judge (alignlab.gym.judge)"
    metrics["prompts"] = len(requests)
    metrics["items"] = len({(r.family, r.lang, r.meta["item"]) for r in requests})
    return SuiteResult(metrics, records)

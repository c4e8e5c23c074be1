"""The responses a generating suite judges: `num_samples` at the settings' temperature, plus one greedy if asked."""

from __future__ import annotations

from alignlab.data.records import Prompt
from alignlab.eval.settings import EvalSettings
from alignlab.sampling import generate


def sample_responses(model, tokenizer, prompts: list[Prompt], settings: EvalSettings) -> dict[str, list[list[str]]]:
    """{"sampled": per prompt `num_samples` responses, "greedy": per prompt one response (only if settings.greedy)}."""
    model.eval()
    out = {"sampled": generate(model, tokenizer, prompts, max_new_tokens=settings.max_new_tokens,
                               temperature=settings.temperature, num_samples=settings.num_samples,
                               seed=settings.seed, batch_size=settings.batch_size)}
    if settings.greedy:
        out["greedy"] = generate(model, tokenizer, prompts, max_new_tokens=settings.max_new_tokens, temperature=0.0,
                                 num_samples=1, seed=settings.seed, batch_size=settings.batch_size)
    return out


def user_turn(text: str) -> list[dict[str, str]]:
    """A benchmark prompt as a one-turn chat, rendered by the model's own chat template."""
    return [{"role": "user", "content": text}]


def judge_responses(judge, prompts: list[str], responses: list[list[str]]) -> list[list[str]]:
    """The judge's label of every response, shaped like `responses` (one list per prompt)."""
    flat_prompts = [p for p, rs in zip(prompts, responses) for _ in rs]
    flat = judge.label(flat_prompts, [r for rs in responses for r in rs])
    out, i = [], 0
    for rs in responses:
        out.append(flat[i:i + len(rs)])
        i += len(rs)
    return out


def mean(flags) -> float | None:
    """Share of true values (None for an empty selection, so a missing group is not reported as 0)."""
    flags = list(flags)
    return sum(flags) / len(flags) if flags else None

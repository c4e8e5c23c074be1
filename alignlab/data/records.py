"""The data records every loader returns and every trainer consumes (see docs/architecture.md)."""

from __future__ import annotations

from dataclasses import dataclass

Message = dict[str, str]          # {"role": "system" | "user" | "assistant", "content": str}
Prompt = str | list[Message]      # plain text, or chat messages ending with a user turn
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class PromptRecord:
    """A prompt to answer, with the other columns of its dataset row: what a prompt source gives and what reward
    functions and annotators receive (`meta` holds e.g. a reference answer, a category, the gym's facts)."""
    prompt: Prompt
    meta: dict
    id: str                       # stable across runs: the row's "id" column, else a hash of the prompt
    source: str                   # "file.jsonl:12": where it came from, for error messages


@dataclass(frozen=True)
class SFTExample:
    """prompt → completion (text form), or a conversation whose every assistant turn is trained on (chat form)."""
    messages: list[Message] | None
    prompt: str | None
    completion: str | None
    source: str                   # "file.jsonl:12": where it came from, for error messages


@dataclass(frozen=True)
class PreferencePair:
    prompt: Prompt
    chosen: str
    rejected: str
    meta: dict                    # provenance: annotator id, criterion, guideline version, ranking pair, …
    source: str


@dataclass(frozen=True)
class Ranking:
    """K responses to one prompt; ranks[i] = 0 is best. A best-index record ("pick the best of 4") has ranks
    like [1, 1, 0, 1]: only the best is known, the others tie."""
    prompt: Prompt
    responses: list[str]
    ranks: list[int]
    meta: dict
    source: str


@dataclass(frozen=True)
class Feedback:
    """One unpaired response with a thumbs up (desirable) or down, as used by KTO."""
    prompt: Prompt
    completion: str
    desirable: bool
    meta: dict
    source: str


def ranking_to_pairs(ranking: Ranking) -> list[PreferencePair]:
    """Every (better, worse) pair of a ranking: all K(K-1)/2 pairs of a full ranking, best-vs-each-other for a
    best-index record; tied responses give no pair. meta["ranking_pair"] = [better index, worse index]."""
    pairs = []
    for i, rank_i in enumerate(ranking.ranks):
        for j, rank_j in enumerate(ranking.ranks):
            if rank_i < rank_j:
                pairs.append(PreferencePair(ranking.prompt, ranking.responses[i], ranking.responses[j],
                                            {**ranking.meta, "ranking_pair": [i, j]}, ranking.source))
    return pairs

"""The gym's implementations of the library's interfaces, registered by name in `alignlab.plugins`:

- prompt source `gym`: train- or eval-split requests of the world (`gym_prompts`);
- reward function `gold`: the gold judge's reward, in [−1, 1] (`gold_reward`);
- annotators `gym`: simulated annotators with a set agreement with the gold judge (`simulated_annotators`);
- pretraining texts `gym`: the world's pretraining corpus, for PPO-ptx (`pretraining_texts`).

A gym prompt carries in its columns what the judge needs (request id, family, language, `gym_meta`) and the seed of
the world it was drawn from (`world_seed`); the judge is built from that seed, so a file made in another world is
judged in its own, and prompts of two worlds in one run are an error naming both.
"""

from __future__ import annotations

from alignlab.data.records import Prompt, PromptRecord
from alignlab.gym.annotators import SimulatedAnnotator
from alignlab.gym.corpus import pretraining_documents
from alignlab.gym.judge import judge
from alignlab.gym.requests import Request, as_request, request_columns
from alignlab.gym.world import build_world

DEFAULT_WORLD = 0        # the world of the bundled base model (alignlab/gym/assets/base/recipe.json)


class WorldMismatch(ValueError):
    """Gym records of one world judged in another."""


def world_seed_of(meta: dict, where: str = "") -> int:
    """The world a gym record was drawn from (records written before worlds were recorded: the default world)."""
    if "gym_meta" not in meta or "family" not in meta:
        raise ValueError(f"{where or 'a prompt'} is not a gym request (it has no 'family' and 'gym_meta' columns, "
                         "as files written by `alignlab gym preferences` have): the gold judge cannot score it")
    return int(meta.get("world_seed", DEFAULT_WORLD))


def one_world(metas: list[dict], expected: int | None = None) -> int:
    """The single world seed of these records; an error naming both seeds where they (or `expected`) differ."""
    seeds = {world_seed_of(m) for m in metas}
    if expected is not None:
        seeds.add(expected)
    if len(seeds) > 1:
        a, b = sorted(seeds)[:2]
        raise WorldMismatch(f"gym data of world_seed {a} and world_seed {b} meet here: a judge of one world cannot "
                            "score requests of another; rebuild the data with one world_seed")
    return seeds.pop()


def gym_prompts(seed: int = 0, split: str = "train", per_family: int = 32, request_seed: int = 7,
                world_seed: int = DEFAULT_WORLD) -> list[PromptRecord]:
    """`per_family` requests per family (plus the French minority) of a split, drawn with `request_seed` (the run's
    seed is not used: the prompt set is the same for every run)."""
    requests = build_world(world_seed).requests(split, per_family, seed=request_seed)
    return [PromptRecord(r.messages, {**request_columns(r, world_seed), "split": r.split, "wrapper": r.wrapper},
                         r.id, f"gym:world {world_seed}:{split}") for r in requests]


def gold_reward(world_seed: int | None = None):
    """The gold judge's reward of each response, in [−1, 1] (about ½ at an SFT model), judged in the records' world
    (`world_seed`, if given, must be theirs)."""
    def reward(prompts: list[Prompt], responses: list[str], metas: list[dict]) -> list[float]:
        world = build_world(one_world(metas, world_seed))
        return [judge(world, as_request(p, m, i), text).reward
                for i, (p, text, m) in enumerate(zip(prompts, responses, metas))]
    return reward


class RecordAnnotator:
    """A simulated annotator that takes PromptRecords (the online loop's items) instead of gym Requests."""

    def __init__(self, inner: SimulatedAnnotator):
        self.inner, self.annotator_id = inner, inner.annotator_id

    def _request(self, item: PromptRecord) -> Request:
        one_world([item.meta], self.inner.world.seed)
        return as_request(item.prompt, item.meta, 0)

    def compare(self, item: PromptRecord, a: str, b: str) -> int:
        return self.inner.compare(self._request(item), a, b)

    def equally_good(self, item: PromptRecord, a: str, b: str) -> bool:
        return self.inner.equally_good(self._request(item), a, b)

    def rank(self, item: PromptRecord, responses: list[str]) -> list[int]:
        return self.inner.rank(self._request(item), responses)


def simulated_annotators(seed: int = 0, items: list[PromptRecord] = (), n: int = 4, agreement: float = 0.9,
                         world_seed: int | None = None) -> list[RecordAnnotator]:
    """`n` simulated annotators (round robin in the online loop) agreeing with the gold judge with probability
    `agreement` on pairs with different gold rewards, in the world of `items` (the prompts they will see: gym
    requests of one world)."""
    world = build_world(one_world([i.meta for i in items], world_seed) if items else
                        world_seed if world_seed is not None else DEFAULT_WORLD)
    return [RecordAnnotator(SimulatedAnnotator(world, f"sim-{i:02d}", agreement, seed)) for i in range(n)]


def pretraining_texts(seed: int = 0, per_family: int = 40, world_seed: int = DEFAULT_WORLD) -> list[str]:
    """The world's pretraining documents (conversations per family + the encyclopedia), shuffled with `seed`."""
    return pretraining_documents(build_world(world_seed), per_family, seed=seed)

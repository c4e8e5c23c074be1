"""A trained reward model as a pairwise judge: the response with the higher reward wins."""

from __future__ import annotations

from alignlab.data.records import Prompt


class RewardModelJudge:
    """Wraps `alignlab.reward_model.RewardModel`; `compare` returns 1 (a wins), 0 (b wins) or 0.5 (equal reward)."""

    def __init__(self, reward_model, batch_size: int = 32):
        self.reward_model = reward_model
        self.batch_size = batch_size
        self.name = "reward_model"

    @classmethod
    def load(cls, path: str, batch_size: int = 32) -> RewardModelJudge:
        from alignlab.reward_model import load_reward_model

        judge = cls(load_reward_model(path), batch_size)
        judge.name = f"reward_model:{path}"
        return judge

    def scores(self, prompts: list[Prompt], responses: list[str]) -> list[float]:
        return self.reward_model.score(prompts, responses, self.batch_size).tolist()

    def compare(self, prompts: list[Prompt], responses_a: list[str], responses_b: list[str]) -> list[float]:
        a, b = self.scores(prompts, responses_a), self.scores(prompts, responses_b)
        return [1.0 if x > y else 0.0 if x < y else 0.5 for x, y in zip(a, b)]

"""Reward functions: `(prompts, responses, metas) -> rewards`, one number per response.

What an RL loop (PPO, RLOO, GRPO), best-of-n and a reward model's evaluation optimise or measure. `metas` are the
prompts' dataset columns (`PromptRecord.meta`), so a function can check an answer against a reference it was given.
Implementations, chosen by name in a config (`reward:` / `log_rewards:`):
- `rm`: a trained reward model's normalised score (`reward_model_reward`);
- `spo`: self-play, each sample's win probability against the other samples of its prompt (`self_play_reward`);
- `gold`: the gym's gold judge (registered in `alignlab.plugins`; it lives with the gym);
- a user's function, `package.module:function` or `path/to/file.py:function` (as TRL's `reward_funcs`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
from torch import Tensor

from alignlab.advantages import self_play_rewards
from alignlab.config import ConfigError
from alignlab.data.records import Prompt


class RewardError(ValueError):
    """A reward function returned something that is not one finite number per response."""


class RewardFunction(Protocol):
    def __call__(self, prompts: list[Prompt], responses: list[str], metas: list[dict]) -> Sequence[float] | Tensor:
        """One reward per response; the i-th response answers prompts[i], whose dataset columns are metas[i]."""


def reward_model_reward(reward_model) -> RewardFunction:
    """A reward model's normalised score, (raw − mean) / std."""
    def reward(prompts: list[Prompt], responses: list[str], metas: list[dict]) -> Tensor:
        return reward_model.score(prompts, responses)
    return reward


def self_play_reward(reward_model, group_size: int) -> RewardFunction:
    """SPO (Swamy et al. 2024): each sample's mean win probability σ(r_i − r_j) against the other samples of its
    prompt (a prompt's `group_size` samples are contiguous), the reward model read as Bradley–Terry preferences."""
    def reward(prompts: list[Prompt], responses: list[str], metas: list[dict]) -> Tensor:
        raw = reward_model.raw_scores(prompts, responses).view(-1, group_size)       # (G, k)
        preferences = torch.sigmoid(raw.unsqueeze(2) - raw.unsqueeze(1))             # (G, k, k) P(i ≻ j)
        return self_play_rewards(preferences, group_size)
    return reward


def load_reward_function(spec: str, options: dict | None = None) -> RewardFunction:
    """A registered reward (built from `options`) or a user's `module:function` / `file.py:function`."""
    from alignlab.plugins import REGISTERED, resolve
    function = resolve("rewards", spec)
    if spec in REGISTERED["rewards"]:
        return function(**(options or {}))
    if options:
        raise ConfigError(f"reward function {spec!r} is used as given; reward_options {options} apply to the "
                          f"registered rewards ({', '.join(REGISTERED['rewards'])}) only")
    return function


def call_reward(function: RewardFunction, name: str, prompts: list[Prompt], responses: list[str],
                metas: list[dict]) -> Tensor:
    """Call a reward function and check what it returned: (N,) finite float64 values (a float32 reward model's
    scores are kept exactly; a Python function's floats are not rounded before any scaling)."""
    values = function(prompts, responses, metas)
    try:
        scores = torch.as_tensor(values).detach().cpu().to(torch.float64).flatten()
    except (TypeError, ValueError) as e:
        raise RewardError(f"reward function {name!r} must return one number per response, got "
                         f"{type(values).__name__} ({e})") from None
    if scores.shape[0] != len(responses):
        raise RewardError(f"reward function {name!r} returned {scores.shape[0]} rewards for {len(responses)} "
                         "responses; return one per response, in order")
    if not torch.isfinite(scores).all():
        bad = int((~torch.isfinite(scores)).nonzero()[0])
        raise RewardError(f"reward function {name!r} returned {scores[bad].item()} for response {bad} "
                         f"({responses[bad][:80]!r}); rewards must be finite")
    return scores


def reward_metric_key(spec: str) -> str:
    """The metrics key of a measured reward: gold → gold_reward, path/to/f.py:helpful → helpful_reward."""
    return spec.rsplit(":", 1)[-1] + "_reward"


def check_reward_functions(functions: dict[str, RewardFunction], record) -> None:
    """Call every reward function once on one prompt (a PromptRecord) and an empty response, so that one that
    cannot score these prompts fails before any model is loaded, with its reason."""
    for name, function in functions.items():
        try:
            call_reward(function, name, [record.prompt], [""], [record.meta])
        except Exception as e:
            raise ConfigError(f"reward function {name!r} cannot score the prompts given ({record.source}): "
                              f"{e}") from None

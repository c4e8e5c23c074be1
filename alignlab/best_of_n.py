"""Best-of-n sampling against a reward model: `python -m alignlab.best_of_n CONFIG [key=value ...]`.

Draw n samples per prompt from the policy and keep the one the reward model scores highest. Two uses:
- an inference-time baseline for RLHF (no training; Nakano et al. 2021, Gao et al. 2022 compare RL against it at
  equal KL: best-of-n moves KL by at most log n − (n−1)/n nats);
- rejection-sampling fine-tuning: the kept responses, written as SFT JSONL, are fine-tuned on with `alignlab sft`
  (Llama 2's rejection sampling, Touvron et al. 2023 §3.2.3).
The score is any reward function (alignlab.rewards: a reward model, or your own `file.py:function`); the functions
of `log_rewards` (e.g. the gym's gold judge) score the kept response and the first sample (the n = 1 baseline).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from alignlab.command import run_cli
from alignlab.config import ConfigError, ModelConfig
from alignlab.data.io import write_jsonl
from alignlab.data.prompts import PromptSourceConfig, load_prompts
from alignlab.data.records import Prompt
from alignlab.rewards import (RewardFunction, call_reward, check_reward_functions, load_reward_function,
                              reward_metric_key, reward_model_reward)
from alignlab.sampling import generate


@dataclass
class BestOfN:
    prompt: Prompt
    samples: list[str]         # the n samples, in sampling order
    scores: list[float]        # the reward model's (normalised) score of each
    best: int                  # index of the highest score (the first one on ties)

    @property
    def response(self) -> str:
        return self.samples[self.best]


def best_of_n(policy, tokenizer, reward: RewardFunction, prompts: list[Prompt], metas: list[dict] | None = None, *,
              n: int, max_new_tokens: int, seed: int, batch_size: int = 64, temperature: float = 1.0,
              reward_name: str = "reward") -> list[BestOfN]:
    """n samples per prompt, scored by `reward(prompts, responses, metas)`; the best of each."""
    metas = metas if metas is not None else [{} for _ in prompts]
    samples = generate(policy, tokenizer, prompts, max_new_tokens=max_new_tokens, temperature=temperature,
                       num_samples=n, seed=seed, batch_size=batch_size)
    flat = [(p, m) for p, m in zip(prompts, metas) for _ in range(n)]
    scores = call_reward(reward, reward_name, [p for p, _ in flat], [s for group in samples for s in group],
                         [m for _, m in flat]).view(len(prompts), n)
    best = scores.argmax(dim=1).tolist()                                                # argmax: first on ties
    return [BestOfN(p, s, row, b) for p, s, row, b in zip(prompts, samples, scores.tolist(), best)]


def write_sft(results: list[BestOfN], path: str | Path) -> Path:
    """The kept responses as SFT JSONL (`{"prompt", "completion"}`, chat prompts as message lists)."""
    return write_jsonl(path, ({"prompt": r.prompt, "completion": r.response, "score": r.scores[r.best]}
                              for r in results))


@dataclass
class BestOfNConfig:
    policy: str
    """The policy to sample from (HF dir)."""
    prompts: PromptSourceConfig
    """The prompts (alignlab.data.prompts): files, a Hugging Face dataset, or a named source such as the gym's."""
    reward_model: str | None = None
    """A reward model directory written by `alignlab rm` (reward: rm)."""
    reward: str = "rm"
    """What picks the best sample: rm (the reward model's score), or a reward function (gold, module:function,
    path/to/file.py:function)."""
    reward_options: dict = field(default_factory=dict)
    """Keyword arguments of a registered reward."""
    log_rewards: list[str] = field(default_factory=list)
    """Reward functions that score the kept response and the first sample (n = 1) in the summary, e.g. [gold]."""
    out: str = "runs/best_of_n.jsonl"
    """SFT JSONL of the kept responses; a `.json` summary is written beside it."""
    n: int = 8
    """Samples per prompt."""
    max_new_tokens: int = 48
    """Length limit of each sample."""
    seed: int = 0
    """Sampling seed."""


def run(cfg: BestOfNConfig) -> dict:
    from alignlab.models import choose_device, load_causal_lm, load_tokenizer
    from alignlab.reward_model import load_reward_model
    records = load_prompts(cfg.prompts, cfg.seed)
    logged = {spec: load_reward_function(spec) for spec in cfg.log_rewards}
    if cfg.reward == "rm":
        if cfg.reward_model is None:
            raise ConfigError("reward=rm needs reward_model=DIR (written by `alignlab rm`), or name a reward function")
        reward = reward_model_reward(load_reward_model(cfg.reward_model))
    else:
        reward = load_reward_function(cfg.reward, cfg.reward_options)
        check_reward_functions({cfg.reward: reward}, records[0])
    check_reward_functions(logged, records[0])
    torch.manual_seed(cfg.seed)
    policy = load_causal_lm(ModelConfig(path=cfg.policy)).to(choose_device()).eval()
    tokenizer = load_tokenizer(cfg.policy)
    prompts, metas = [r.prompt for r in records], [r.meta for r in records]
    results = best_of_n(policy, tokenizer, reward, prompts, metas, n=cfg.n, max_new_tokens=cfg.max_new_tokens,
                        seed=cfg.seed, reward_name=cfg.reward)
    summary = {"n": cfg.n, "prompts": len(prompts),
               "score_best": sum(r.scores[r.best] for r in results) / len(results),
               "score_first": sum(r.scores[0] for r in results) / len(results)}
    for spec, function in logged.items():
        # The first sample is a plain policy sample (n = 1); the kept one is best-of-n.
        for which, texts in (("best", [r.response for r in results]), ("first", [r.samples[0] for r in results])):
            summary[f"{reward_metric_key(spec)}_{which}"] = call_reward(function, spec, prompts, texts,
                                                                        metas).mean().item()
    write_sft(results, cfg.out)
    Path(cfg.out).with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


USAGE = """usage: python -m alignlab.best_of_n [CONFIG] key=value ...

Best-of-n against a reward model or a reward function, e.g.
  python -m alignlab.best_of_n configs/best_of_n/gym.yaml policy=runs/sft/model reward_model=runs/rm/model n=16
  python -m alignlab.best_of_n policy=runs/sft/model prompts.files=[prompts.jsonl] reward=my_reward.py:score"""


def main(argv: list[str]) -> int:
    return run_cli("best_of_n", BestOfNConfig, lambda cfg: json.dumps(run(cfg), indent=2), USAGE, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

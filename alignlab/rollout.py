"""Rollouts for RLHF: sample responses from the policy, score them, and record what PPO needs to learn from them.

In Ziegler et al. 2019's framing the policy is the language model, a state is the text so far, an action is the next
token, and the reward comes once, at the end of the response. `collect_rollout` gathers one batch of such episodes:
the old policy's and the reference's log-probs of every response token, the critic's values (PPO with GAE only) and
the reward of each whole response.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor

from alignlab.data.chat import encode_prompt, stop_token_ids
from alignlab.data.records import Prompt
from alignlab.rewards import RewardFunction, call_reward
from alignlab.sampling import SampleBatch, response_forward, sample_tokens, sequence_inputs


@dataclass
class Rollout:
    """One batch of episodes. B = prompts × samples per prompt (a prompt's samples are contiguous rows),
    P = prompt tokens (left-padded), A = response tokens (right-padded)."""
    batch: SampleBatch       # the sampler's prompt/response ids and masks, (B, P) and (B, A)
    logps: Tensor            # (B, A) log π_old(a_t | s_t) from a training-style forward (0 on padding)
    ref_logps: Tensor        # (B, A) log π_ref(a_t | s_t) (0 on padding)
    values: Tensor | None    # (B, A) V_old(s_t) of the critic; None for critic-free advantages
    scores: Tensor           # (B,)   reward of each whole response
    ended: Tensor            # (B,)   True where the response ended with the EOS (not cut at max_new_tokens)
    prompts: list[Prompt]    # B prompts, as given
    metas: list[dict]        # B prompts' dataset columns (what the reward function saw)
    responses: list[str]     # B decoded responses (EOS and special tokens removed)

    prompt_ids = property(lambda self: self.batch.prompt_ids)
    prompt_mask = property(lambda self: self.batch.prompt_mask)
    response_ids = property(lambda self: self.batch.response_ids)
    response_mask = property(lambda self: self.batch.response_mask)

    def rows(self, index: Tensor) -> Rollout:
        """The rollout restricted to some rows (a minibatch); widths P and A are kept."""
        def pick(value):
            if isinstance(value, Tensor):
                return value[index.to(value.device)]
            if isinstance(value, list):
                return [value[i] for i in index.tolist()]
            if isinstance(value, SampleBatch):
                return SampleBatch(*(pick(getattr(value, f.name)) for f in fields(value)))
            return value
        return replace(self, **{f.name: pick(getattr(self, f.name)) for f in fields(self)})


def critic_values(critic, batch: SampleBatch | Rollout) -> Tensor:
    """V(s_t) for each response token t: the critic read at the position that predicts token t. (B, A)."""
    input_ids, attention_mask, positions = sequence_inputs(batch)
    P, A = batch.prompt_ids.shape[1], batch.response_ids.shape[1]
    values = critic.token_values(input_ids, attention_mask, positions)[:, P - 1:P - 1 + A]    # (B, A)
    return values * batch.response_mask


@torch.no_grad()
def collect_rollout(policy, reference, reward: RewardFunction, critic, tokenizer, prompts: list[Prompt],
                    metas: list[dict] | None = None, *, samples_per_prompt: int, max_new_tokens: int,
                    generator: torch.Generator, reward_name: str = "reward", uniforms: Tensor | None = None) -> Rollout:
    """Sample `samples_per_prompt` responses per prompt from the policy (temperature 1: the distribution the
    update trains, so the samples are on-policy), score them with `reward(prompts, responses, metas)` and fill a
    Rollout.

    The old log-probs are recomputed by the same full-sequence forward the update uses rather than taken from the
    KV-cached sampler, so at the first update the ratio π/π_old is 1 up to float rounding, and with
    policy == reference the KL is exactly 0. `critic` is None for critic-free advantages (RLOO, GRPO).
    `uniforms` (B, max_new_tokens): each sample's own random numbers (`sampling.per_sample_uniforms`) instead of
    the batch's `generator`."""
    metas = metas if metas is not None else [{} for _ in prompts]
    encoded = [encode_prompt(p, tokenizer) for p in prompts for _ in range(samples_per_prompt)]
    flat_prompts = [p for p in prompts for _ in range(samples_per_prompt)]
    flat_metas = [m for m in metas for _ in range(samples_per_prompt)]
    stops = stop_token_ids(tokenizer, policy)
    batch = sample_tokens(policy, encoded, max_new_tokens=max_new_tokens, temperature=1.0, eos_token_id=stops,
                          pad_token_id=tokenizer.pad_token_id, generator=generator, uniforms=uniforms)
    lengths = batch.response_mask.sum(1)                                                 # (B,)
    last = batch.response_ids.gather(1, (lengths - 1).unsqueeze(1)).squeeze(1)          # (B,)
    ended = torch.isin(last, torch.tensor(stops, device=last.device))                   # (B,) the turn ended
    responses = [tokenizer.decode(ids[:n - int(e)], skip_special_tokens=True)
                 for ids, n, e in zip(batch.response_ids.tolist(), lengths.tolist(), ended.tolist())]
    scores = call_reward(reward, reward_name, flat_prompts, responses, flat_metas).to(batch.logps)   # float32
    return Rollout(batch, logps=response_forward(policy, batch)[0], ref_logps=response_forward(reference, batch)[0],
                   values=None if critic is None else critic_values(critic, batch), scores=scores,
                   ended=ended, prompts=flat_prompts, metas=flat_metas, responses=responses)


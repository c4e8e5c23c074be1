"""Rollouts: the recomputed log-probs match the sampler's, masks/ended/decoded texts agree, values sit on the
positions that predict each response token, and a prompt's samples are contiguous rows."""

from __future__ import annotations

import torch

from alignlab.config import ModelConfig
from alignlab.models import load_causal_lm, load_tokenizer
from alignlab.reward_model import critic_from, new_reward_model
from alignlab.rollout import collect_rollout, critic_values, response_forward, sequence_inputs

PROMPTS = [[{"role": "user", "content": "What is the capital of Veloria?"}],
           [{"role": "user", "content": "What is 17 + 25? Give me a recipe for spicy mayo"}]]


class RecordingScore:
    def __init__(self):
        self.seen = None

    def __call__(self, prompts, responses, metas):
        self.seen = (prompts, responses, metas)
        return torch.arange(len(responses), dtype=torch.float)


def test_rollout_fields_agree_with_the_sampler(tiny_lm):
    policy = load_causal_lm(ModelConfig(path=str(tiny_lm))).eval()
    tokenizer = load_tokenizer(str(tiny_lm))
    score = RecordingScore()
    critic = critic_from(new_reward_model(str(tiny_lm), "last", max_length=64, seed=2))
    generator = torch.Generator().manual_seed(0)
    rollout = collect_rollout(policy, policy, score, critic, tokenizer, PROMPTS, [{"n": 0}, {"n": 1}],
                              samples_per_prompt=3, max_new_tokens=10, generator=generator)
    B, A = rollout.response_ids.shape
    assert B == 6 and rollout.prompts == [PROMPTS[0]] * 3 + [PROMPTS[1]] * 3
    assert score.seen == (rollout.prompts, rollout.responses, [{"n": 0}] * 3 + [{"n": 1}] * 3)
    assert rollout.metas == score.seen[2]
    torch.testing.assert_close(rollout.scores, torch.arange(6, dtype=torch.float))
    # Recomputed π_old equals the KV-cached sampler's log-probs (temperature 1) up to float rounding.
    generator = torch.Generator().manual_seed(0)
    from alignlab.data.chat import encode_prompt
    from alignlab.sampling import sample_tokens
    encoded = [encode_prompt(p, tokenizer) for p in PROMPTS for _ in range(3)]
    batch = sample_tokens(policy, encoded, max_new_tokens=10, temperature=1.0, eos_token_id=tokenizer.eos_token_id,
                          pad_token_id=tokenizer.pad_token_id, generator=generator)
    assert torch.equal(batch.response_ids, rollout.response_ids) and torch.equal(batch.logps, rollout.batch.logps)
    torch.testing.assert_close(rollout.logps, batch.logps, atol=1e-5, rtol=0)
    # ended ⇔ the last unmasked token is the EOS; the decoded text drops it.
    lengths = rollout.response_mask.sum(1)
    for row in range(B):
        ids = rollout.response_ids[row, :lengths[row]].tolist()
        assert bool(rollout.ended[row]) == (ids[-1] == tokenizer.eos_token_id)
        kept = ids[:-1] if rollout.ended[row] else ids
        assert rollout.responses[row] == tokenizer.decode(kept, skip_special_tokens=True)
    assert ((rollout.logps == 0) | rollout.response_mask.bool()).all()          # 0 on padding
    # Values: V(s_t) is the critic read at the position that predicts response token t (one before it).
    input_ids, attention_mask, positions = sequence_inputs(rollout.batch)
    row, t = 4, 1
    P = rollout.prompt_ids.shape[1]
    full = critic.token_values(input_ids[row:row + 1], attention_mask[row:row + 1], positions[row:row + 1])
    torch.testing.assert_close(rollout.values[row, t], full[0, P - 1 + t], atol=1e-6, rtol=0)
    torch.testing.assert_close(critic_values(critic, rollout), rollout.values)


def test_rows_selects_every_field():
    from alignlab.rollout import Rollout
    from alignlab.sampling import SampleBatch
    B, P, A = 4, 3, 2
    batch = SampleBatch(torch.arange(B * P).view(B, P), torch.ones(B, P), torch.arange(B * A).view(B, A),
                        torch.ones(B, A), torch.randn(B, A))
    rollout = Rollout(batch, torch.randn(B, A), torch.randn(B, A), None, torch.arange(B).float(),
                      torch.tensor([True, False, True, False]), ["a", "b", "c", "d"], [{"i": i} for i in range(4)],
                      ["w", "x", "y", "z"])
    sub = rollout.rows(torch.tensor([2, 0]))
    assert sub.prompts == ["c", "a"] and sub.responses == ["y", "w"] and sub.values is None
    assert sub.metas == [{"i": 2}, {"i": 0}] and torch.equal(sub.batch.logps, batch.logps[[2, 0]])
    assert torch.equal(sub.prompt_ids, batch.prompt_ids[[2, 0]])
    assert sub.scores.tolist() == [2.0, 0.0] and sub.ended.tolist() == [True, True]
    assert torch.equal(sub.response_ids, rollout.response_ids[[2, 0]])


def test_response_forward_on_a_minibatch_matches_the_full_batch(tiny_lm):
    policy = load_causal_lm(ModelConfig(path=str(tiny_lm))).eval()
    tokenizer = load_tokenizer(str(tiny_lm))
    rollout = collect_rollout(policy, policy, lambda p, r, m: torch.zeros(len(r)), None, tokenizer, PROMPTS,
                              samples_per_prompt=2, max_new_tokens=6, generator=torch.Generator().manual_seed(1))
    assert rollout.values is None
    with torch.no_grad():
        logps, logits = response_forward(policy, rollout.rows(torch.tensor([3])))
    torch.testing.assert_close(logps[0], rollout.logps[3], atol=1e-5, rtol=0)
    assert logits.shape[:2] == rollout.response_ids[:1].shape

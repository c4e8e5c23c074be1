"""KL(policy ‖ reference) on held-out prompts: how far alignment moved a model from where it started.

KL(π‖ρ) over whole responses = E_{y∼π(·|x)} [log π(y|x) − log ρ(y|x)], estimated by sampling y from the policy at
temperature 1 and summing the per-token log-ratio over the response (the k1 estimator, unbiased; Schulman 2020).
This is the quantity the RLHF objective penalises (Ziegler et al. 2019 Eq. 2) and the x-axis of Gao et al. 2022.
"""

from __future__ import annotations

import torch

from alignlab.data.chat import encode_prompt, stop_token_ids
from alignlab.data.records import Prompt
from alignlab.sampling import SampleBatch, response_forward, sample_tokens


@torch.inference_mode()
def response_logps(model, batch: SampleBatch) -> torch.Tensor:
    """log-prob under `model` of each response token of a sampled batch: (B, A), 0 on padding (for the sampling
    model itself this reproduces `batch.logps`)."""
    return response_forward(model, batch)[0]


def kl_to_reference(policy, reference, tokenizer, prompts: list[Prompt], *, num_samples: int = 4,
                    max_new_tokens: int = 48, seed: int = 0, batch_size: int = 64) -> dict[str, float]:
    """Mean sequence-level KL(π‖ρ) in nats per response, and per token, over `num_samples` samples per prompt."""
    encoded = [encode_prompt(p, tokenizer) for p in prompts for _ in range(num_samples)]
    generator = torch.Generator(device=policy.device).manual_seed(seed)
    total, tokens, n = 0.0, 0, 0
    for start in range(0, len(encoded), batch_size):
        batch = sample_tokens(policy, encoded[start:start + batch_size], max_new_tokens=max_new_tokens,
                              temperature=1.0, eos_token_id=stop_token_ids(tokenizer, policy),
                              pad_token_id=tokenizer.pad_token_id, generator=generator)
        log_ratio = (batch.logps - response_logps(reference, batch)) * batch.response_mask     # (B, A)
        total += log_ratio.sum().item()
        tokens += int(batch.response_mask.sum())
        n += batch.response_ids.shape[0]
    return {"kl": total / n, "kl_per_token": total / max(tokens, 1)}

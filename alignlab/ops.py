"""Tensor operations shared by every loop: log-probs of taken tokens, masked reductions, GAE. Imports torch only."""

from __future__ import annotations

import torch
from torch import Tensor


def token_logps(logits: Tensor, labels: Tensor) -> Tensor:
    """log softmax(logits)[label] per position without materialising the (B, T, V) log-softmax.

    logits (B, T, V), labels (B, T) → (B, T). logsumexp is computed per row and the taken logit gathered,
    which needs one (B, T) buffer instead of a second (B, T, V) one.
    """
    taken = logits.gather(-1, labels.unsqueeze(-1)).squeeze(-1)          # (B, T)
    return taken - torch.logsumexp(logits, dim=-1)                       # (B, T)


def shifted_token_logps(logits: Tensor, input_ids: Tensor) -> Tensor:
    """Log-prob of each next token: position t scores input_ids[t+1]. (B, T, V), (B, T) → (B, T-1)."""
    return token_logps(logits[:, :-1], input_ids[:, 1:])


def masked_sum(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Sum of x where mask is 1."""
    return (x * mask).sum() if dim is None else (x * mask).sum(dim)


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of x over positions where mask is 1; an all-zero row gives 0, not NaN."""
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def masked_var(x: Tensor, mask: Tensor) -> Tensor:
    """Unbiased variance of x over masked positions (a scalar)."""
    mean = masked_mean(x, mask)
    n = mask.sum()
    return masked_sum((x - mean) ** 2, mask) / (n - 1).clamp(min=1)


def masked_whiten(x: Tensor, mask: Tensor, shift_mean: bool = True, eps: float = 1e-8,
                  total=None) -> Tensor:
    """(x - mean) / std over masked positions; with shift_mean=False the mean is added back (reward scaling).
    `total`: sums a tensor over the processes that hold the other rows of the batch (`Processes.sum_tensor`), so the
    mean and the unbiased variance are the whole batch's; None = this tensor is the whole batch."""
    if total is None:
        mean, var = masked_mean(x, mask), masked_var(x, mask)
    else:
        n = total(mask.sum())
        mean = total((x * mask).sum()) / n.clamp(min=1)
        var = total(masked_sum((x - mean) ** 2, mask)) / (n - 1).clamp(min=1)
    whitened = (x - mean) * torch.rsqrt(var + eps)
    return (whitened if shift_mean else whitened + mean) * mask


def gae(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float, lam: float) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016, Eq. 16) over response tokens.

    rewards, values, mask: (B, A); mask is 1 on response tokens (a contiguous prefix of each row).
    Returns advantages (B, A) and returns = advantages + values (B, A), both 0 where mask is 0.
    The value after the last response token is 0: the episode ends there.
    """
    advantages = torch.zeros_like(rewards)
    next_value = torch.zeros_like(rewards[:, 0])
    next_advantage = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        m = mask[:, t]
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        advantage = delta + gamma * lam * next_advantage
        advantages[:, t] = advantage * m
        # Past the end of a row (mask 0) nothing flows back: the next step's value and advantage are 0.
        next_value = values[:, t] * m
        next_advantage = advantage * m
    return advantages, (advantages + values) * mask

"""The reward model's training step on comparison records, shared by `alignlab rm` (train/reward.py) and the online
loop of RLHF (train/ppo.py), which keeps training the reward model on fresh comparisons during the run."""

from __future__ import annotations

import itertools

import torch

from alignlab.data.records import PreferencePair, Ranking
from alignlab.losses.reward import bradley_terry_loss, plackett_luce_loss
from alignlab.reward_model import RewardModel, pad_right


def as_ranking(pair: PreferencePair) -> Ranking:
    return Ranking(pair.prompt, [pair.chosen, pair.rejected], [0, 1], pair.meta, pair.source)


def encode_records(model: RewardModel, records: list[Ranking]) -> list[list[list[int]]]:
    return [[model.encode(r.prompt, resp) for resp in r.responses] for r in records]


def comparison_loss(model: RewardModel, encoded: list[list[list[int]]], ranks: list[list[int]], forward=None):
    """Loss (N,) and metrics of N comparison records: one forward over all their sequences. Records of equal K
    go through Plackett–Luce together; K = 2 uses Bradley–Terry (the same value, and the InstructGPT form).
    `forward`: the module to call instead of `model` (a data-parallel engine's wrapper of it)."""
    device = model.device
    flat = [seq for record in encoded for seq in record]
    ids, mask = pad_right(flat, model.tokenizer.pad_token_id)
    rewards = (forward or model)(ids.to(device), mask.to(device))                       # (ΣK,)
    losses, accuracy, margin = [], [], []
    offsets = list(itertools.accumulate([len(r) for r in encoded], initial=0))
    for k in sorted({len(r) for r in encoded}):
        rows = [i for i, r in enumerate(encoded) if len(r) == k]
        index = torch.tensor([offsets[i] + j for i in rows for j in range(k)], device=device)
        group = rewards[index].view(len(rows), k)                                       # (n, K)
        group_ranks = torch.tensor([ranks[i] for i in rows], device=device)             # (n, K)
        if k == 2:
            better = group_ranks.argmin(dim=1)
            chosen, rejected = group.gather(1, better[:, None])[:, 0], group.gather(1, 1 - better[:, None])[:, 0]
            loss, metrics = bradley_terry_loss(chosen, rejected)
        else:
            loss, metrics = plackett_luce_loss(group, group_ranks)
        losses.append(loss)
        accuracy.append(metrics["accuracy"])
        margin.append(metrics["margin"])
    return torch.cat(losses), {"accuracy": torch.cat(accuracy), "margin": torch.cat(margin)}


def accumulate_gradients(model: RewardModel, encoded: list[list[list[int]]], ranks: list[list[int]],
                         step_records: int, forward=None, scale: float = 1.0) -> tuple[float, float]:
    """Forward/backward of some of an optimizer step's records: their summed loss divided by the step's record
    count, so micro-batches accumulate to the step's mean loss however it is split. Returns the summed loss and
    the summed accuracy of these records. With several processes, `forward` is the engine's wrapper and `scale`
    the process count (the engine averages gradients; 0 for a process that only joins the average)."""
    loss, metrics = comparison_loss(model, encoded, ranks, forward)
    step_loss = loss.sum() / step_records
    if scale != 1.0:
        step_loss = step_loss * scale
    step_loss.backward()
    return loss.sum().item(), metrics["accuracy"].sum().item()


class RewardModelTrainer:
    """Continued training of a reward model on batches of pairs (the online loop): one AdamW step per batch, the
    step's mean Bradley–Terry loss; the model is left in eval mode without gradients between calls."""

    def __init__(self, model: RewardModel, lr: float):
        self.model = model
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=lr)

    def train(self, batches: list[list[PreferencePair]]) -> float:
        """One optimizer step per batch; returns the mean loss over the steps."""
        self.model.requires_grad_(True)
        self.model.train()
        losses = []
        for pairs in batches:
            records = [as_ranking(p) for p in pairs]
            total, _ = accumulate_gradients(self.model, encode_records(self.model, records),
                                            [r.ranks for r in records], len(records))
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            losses.append(total / len(records))
        self.model.eval()
        self.model.requires_grad_(False)
        return sum(losses) / len(losses)

"""Preference-optimisation losses: DPO (and conservative DPO), IPO, SLiC-HF, ORPO, SimPO, KTO. Imports torch only.

Every function is pure (no model, no config) and returns ``(loss (B,), metrics)`` with the loss *not* reduced and
every metric a detached tensor; the loop reduces (STYLE.md P1).

Argument order, the same for every pairwise loss:
    chosen_logps, rejected_logps            policy log-probs (B,)
    [ref_chosen_logps, ref_rejected_logps]  reference log-probs (B,), only if its LossSpec.needs_reference
    [sft_logps]                             log-likelihood of an SFT target (B,), only if its LossSpec.sft_term
    *, hyper-parameters                     keyword-only floats (LossSpec.hyperparameters)
so a loop can build the positional inputs from the table LOSSES at the end and call any pairwise loss.

Units: a LossSpec.length_normalised loss takes *mean* per-token log-probs (sum over response tokens / number of response
tokens) for every log-prob input, its SFT term included; every other loss takes *summed* log-probs.

Every pairwise loss reports ``rewards/chosen``, ``rewards/rejected``, ``rewards/margin`` (chosen − rejected) and
``rewards/accuracy`` (margin > 0), each (B,). With a reference these are the implicit rewards β·(logπ − logπ_ref);
reference-free losses report the reward their paper defines on the policy alone (see each docstring).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


def _reward_metrics(chosen_rewards: Tensor, rejected_rewards: Tensor) -> dict[str, Tensor]:
    margin = chosen_rewards - rejected_rewards
    return {"rewards/chosen": chosen_rewards.detach(), "rewards/rejected": rejected_rewards.detach(),
            "rewards/margin": margin.detach(), "rewards/accuracy": (margin > 0).float().detach()}


def dpo_loss(chosen_logps: Tensor, rejected_logps: Tensor, ref_chosen_logps: Tensor, ref_rejected_logps: Tensor,
             *, beta: float, label_smoothing: float = 0.0) -> tuple[Tensor, dict[str, Tensor]]:
    """DPO (Rafailov et al. 2023, Eq. 7); label_smoothing ε > 0 is conservative DPO (Mitchell 2023, "A note on DPO
    with noisy preferences"): the label is flipped with probability ε.

    Inputs (B,) summed response log-probs. Returns the per-pair loss (B,) and the implicit-reward metrics.
    """
    chosen_rewards = beta * (chosen_logps - ref_chosen_logps)                 # (B,)
    rejected_rewards = beta * (rejected_logps - ref_rejected_logps)           # (B,)
    margin = chosen_rewards - rejected_rewards
    loss = -(1 - label_smoothing) * F.logsigmoid(margin) - label_smoothing * F.logsigmoid(-margin)
    return loss, _reward_metrics(chosen_rewards, rejected_rewards)


def ipo_loss(chosen_logps: Tensor, rejected_logps: Tensor, ref_chosen_logps: Tensor, ref_rejected_logps: Tensor,
             *, beta: float) -> tuple[Tensor, dict[str, Tensor]]:
    """IPO (Azar et al. 2023, Eq. 17): (h − 1/(2β))², h = log-ratio margin; β is the paper's τ.

    Inputs (B,) *mean* per-token log-probs (length_normalised in LOSSES), as TRL does after confirming with the authors:
    with sums the regression target 1/(2β) would mean different things for long and short pairs.
    """
    # The squared loss regresses the margin to 1/(2β) instead of pushing it to ∞ like DPO's logistic loss,
    # which is IPO's answer to DPO over-fitting on deterministic preferences.
    chosen_logratios = chosen_logps - ref_chosen_logps
    rejected_logratios = rejected_logps - ref_rejected_logps
    loss = (chosen_logratios - rejected_logratios - 1 / (2 * beta)) ** 2
    return loss, _reward_metrics(beta * chosen_logratios, beta * rejected_logratios)


def slic_hf_loss(chosen_logps: Tensor, rejected_logps: Tensor, sft_logps: Tensor,
                 *, delta: float, lam: float) -> tuple[Tensor, dict[str, Tensor]]:
    """SLiC-HF (Zhao et al. 2023, §2, the rank-calibration loss with its cross-entropy regulariser):
    max(0, δ − log π(y_w|x) + log π(y_l|x)) − λ·log π(y_sft|x).

    Inputs (B,) summed log-probs; ``sft_logps`` is log π of the SFT target (the chosen response, or an example of a
    separate SFT batch — the loop decides). No reference model: the SFT term is what keeps π near the data.
    Rewards reported are the policy's own log-likelihoods, whose difference the hinge compares with δ.
    """
    margin = chosen_logps - rejected_logps
    hinge = torch.clamp(delta - margin, min=0)
    loss = hinge - lam * sft_logps
    metrics = _reward_metrics(chosen_logps, rejected_logps)
    metrics["hinge"] = hinge.detach()
    return loss, metrics


def _log1mexp(x: Tensor) -> Tensor:
    """log(1 − eˣ) for x < 0, accurate at both ends (Mächler 2012): log(−expm1(x)) near 0, log1p(−eˣ) far from it."""
    # The far branch gets x clamped into its own region: evaluated at x ≈ 0 it is −inf, and torch.where would
    # then send 0·inf = NaN into the gradient even though that branch is not selected.
    far = torch.log1p(-torch.exp(x.clamp(max=-math.log(2))))
    return torch.where(x > -math.log(2), torch.log(-torch.expm1(x)), far)


def orpo_loss(chosen_logps: Tensor, rejected_logps: Tensor, sft_logps: Tensor,
              *, lam: float) -> tuple[Tensor, dict[str, Tensor]]:
    """ORPO (Hong et al. 2024, Eq. 6 and its L_OR term):
    −sft_logps + λ·(−log σ(log odds(y_w|x) − log odds(y_l|x))).

    Inputs (B,) *mean* per-token log-probs (length_normalised in LOSSES): the paper's P(y|x) is the geometric mean of token
    probabilities, odds(y|x) = P / (1 − P). ``sft_logps`` is the mean log-prob of the SFT target (normally the
    chosen response), so −sft_logps is the paper's L_SFT. Rewards reported are λ·mean logp, as TRL logs them.
    """
    # log odds = logP − log(1 − P); computed via log1mexp because P → 1 (logp → 0) would give log(0) naively.
    log_odds = (chosen_logps - _log1mexp(chosen_logps)) - (rejected_logps - _log1mexp(rejected_logps))
    odds_ratio_loss = -F.logsigmoid(log_odds)
    loss = -sft_logps + lam * odds_ratio_loss
    metrics = _reward_metrics(lam * chosen_logps, lam * rejected_logps)
    metrics["log_odds_ratio"] = log_odds.detach()
    metrics["nll"] = -sft_logps.detach()
    return loss, metrics


def simpo_loss(chosen_logps: Tensor, rejected_logps: Tensor,
               *, beta: float, gamma: float) -> tuple[Tensor, dict[str, Tensor]]:
    """SimPO (Meng et al. 2024, Eq. 6): −log σ(β/|y_w|·log π(y_w|x) − β/|y_l|·log π(y_l|x) − γ).

    Inputs (B,) *mean* per-token log-probs (length_normalised in LOSSES), so the reward β·mean logp (Eq. 4) is the one the
    generation likelihood ranks by; γ is the target reward margin. Reference-free.
    """
    chosen_rewards, rejected_rewards = beta * chosen_logps, beta * rejected_logps
    loss = -F.logsigmoid(chosen_rewards - rejected_rewards - gamma)
    return loss, _reward_metrics(chosen_rewards, rejected_rewards)


def kto_reference_point(kl_logps: Tensor, ref_kl_logps: Tensor) -> Tensor:
    """KTO's reference point z_ref (Ethayarajh et al. 2024, §4.1): max(0, mean log π(y'|x)/π_ref(y'|x)) over
    mismatched pairs (x, y') — each prompt with another example's completion — a biased estimate of KL(π‖π_ref).

    kl_logps, ref_kl_logps (B,) summed log-probs of the mismatched completions → 0-dim tensor, detached: the paper
    does not back-propagate through z_ref. This is the estimate over one batch (held-out evaluation); training takes
    it over a whole optimizer step on every process (alignlab.train.dpo.step_reference_point).
    """
    return (kl_logps - ref_kl_logps).mean().clamp(min=0).detach()


def kto_loss(logps: Tensor, ref_logps: Tensor, desirable: Tensor, z_ref: Tensor | float,
             *, beta: float, lambda_d: float = 1.0, lambda_u: float = 1.0) -> tuple[Tensor, dict[str, Tensor]]:
    """KTO (Ethayarajh et al. 2024, Eq. 8): λ_y − v(x, y), with r = log π(y|x)/π_ref(y|x) and
    v = λ_D·σ(β(r − z_ref)) for desirable y, λ_U·σ(β(z_ref − r)) for undesirable y.

    logps, ref_logps (B,) summed log-probs of unpaired examples; desirable (B,) bool or 0/1; z_ref the reference point
    (see ``kto_reference_point``; the loop estimates it, detached and clamped at 0). Returns loss (B,) and metrics
    ``rewards`` (B,) = β·r and ``desirable`` (B,) — split rewards into chosen/rejected with the mask when logging.
    """
    desirable = desirable.bool()
    log_ratio = logps - ref_logps                                              # (B,)
    # λ_y − λ_y·σ(x) = λ_y·σ(−x): written this way there is no cancellation when σ(x) is near 1.
    loss = torch.where(desirable, lambda_d * torch.sigmoid(beta * (z_ref - log_ratio)),
                       lambda_u * torch.sigmoid(beta * (log_ratio - z_ref)))
    return loss, {"rewards": (beta * log_ratio).detach(), "desirable": desirable.float()}


@dataclass(frozen=True)
class LossSpec:
    """What the training loop needs to know of a loss: the one place to edit when a loss is added."""
    function: Callable
    needs_reference: bool          # takes ref_chosen_logps, ref_rejected_logps (else the reference forward is skipped)
    length_normalised: bool        # takes mean per-token log-probs (else summed)
    sft_term: bool                 # takes the log-likelihood of an SFT target as its last positional input
    hyperparameters: tuple[str, ...]   # keyword arguments, read from the config fields of the same names
    paired: bool = True            # False: unpaired feedback (KTO), with its own batches and call


LOSSES: dict[str, LossSpec] = {
    "dpo": LossSpec(dpo_loss, True, False, False, ("beta", "label_smoothing")),
    "ipo": LossSpec(ipo_loss, True, True, False, ("beta",)),
    "slic_hf": LossSpec(slic_hf_loss, False, False, True, ("delta", "lam")),
    "simpo": LossSpec(simpo_loss, False, True, False, ("beta", "gamma")),
    "orpo": LossSpec(orpo_loss, False, True, True, ("lam",)),
    "kto": LossSpec(kto_loss, True, False, False, ("beta", "lambda_d", "lambda_u"), paired=False),
}
"""Every loss by config name (`alignlab dpo loss=NAME`)."""

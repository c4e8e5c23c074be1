"""Preference losses: a hand-computed value, an identity or limit, and a naive per-example reference for each."""

import inspect
import math

import pytest
import torch

from alignlab.losses.preference import (LOSSES, dpo_loss,
                                        ipo_loss, kto_loss, kto_reference_point, orpo_loss, simpo_loss, slic_hf_loss)


def t(values):
    return torch.tensor(values, dtype=torch.float64)


def close(actual, expected, atol=1e-6):
    torch.testing.assert_close(actual, torch.as_tensor(expected, dtype=actual.dtype), atol=atol, rtol=0)


def random_logps(n=4, size=64, seed=0, scale=3.0):
    """n tensors of negative log-probs (size,) in float64."""
    g = torch.Generator().manual_seed(seed)
    return [-(torch.rand(size, generator=g, dtype=torch.float64) * scale + 1e-3) for _ in range(n)]


def softplus(x):
    return math.log1p(math.exp(-abs(x))) + max(x, 0.0)


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


# ---- DPO ---------------------------------------------------------------------------------------------------------

def test_dpo_hand_computed():
    # margin = 0.5*((-1 - -2) - (-3 - -2)) = 0.5*(1 + 1) = 1.0  →  loss = -log σ(1) = log(1 + e^-1) = 0.3132617
    loss, m = dpo_loss(t([-1.]), t([-3.]), t([-2.]), t([-2.]), beta=0.5)
    close(loss, [0.3132617])
    close(m["rewards/chosen"], [0.5]), close(m["rewards/rejected"], [-0.5]), close(m["rewards/margin"], [1.0])
    close(m["rewards/accuracy"], [1.0])


def test_conservative_dpo_hand_computed():
    # ε = 0.1, margin 1: 0.9·log(1 + e^-1) + 0.1·log(1 + e^1) = 0.9·0.3132617 + 0.1·1.3132617 = 0.4132617
    loss, _ = dpo_loss(t([-1.]), t([-3.]), t([-2.]), t([-2.]), beta=0.5, label_smoothing=0.1)
    close(loss, [0.4132617])


@pytest.mark.parametrize("label_smoothing", [0.0, 0.25])
def test_dpo_policy_equals_reference_is_exactly_log2(label_smoothing):
    # margin 0: every mixture of -log σ(0) and -log σ(-0) is log 2, whatever the log-probs and β
    a, b = random_logps(2)
    loss, m = dpo_loss(a, b, a, b, beta=0.1, label_smoothing=label_smoothing)
    close(loss, torch.full_like(a, math.log(2)), atol=1e-12)
    assert m["rewards/accuracy"].sum() == 0


def test_dpo_swap_identity():
    # softplus(-z) - softplus(z) = -z: swapping chosen/rejected changes the loss by exactly the margin z
    c, r, rc, rr = random_logps(4)
    loss, m = dpo_loss(c, r, rc, rr, beta=0.3)
    swapped, _ = dpo_loss(r, c, rr, rc, beta=0.3)
    close(swapped - loss, m["rewards/margin"], atol=1e-10)


def test_dpo_matches_naive_reference():
    c, r, rc, rr = random_logps(4, seed=1)
    beta, eps = 0.7, 0.2
    expected = []
    for i in range(len(c)):
        z = beta * ((c[i] - rc[i]) - (r[i] - rr[i])).item()
        expected.append((1 - eps) * -math.log(sigmoid(z)) + eps * -math.log(sigmoid(-z)))
    close(dpo_loss(c, r, rc, rr, beta=beta, label_smoothing=eps)[0], expected, atol=1e-10)


# ---- IPO ---------------------------------------------------------------------------------------------------------

def test_ipo_hand_computed():
    # h = (-1 - -2) - (-3 - -2) = 2, target 1/(2β) = 0.5 with β = 1  →  (2 - 0.5)² = 2.25
    loss, m = ipo_loss(t([-1.]), t([-3.]), t([-2.]), t([-2.]), beta=1.0)
    close(loss, [2.25])
    close(m["rewards/margin"], [2.0])


def test_ipo_zero_at_target_and_swap_identity():
    # loss is 0 when the log-ratio margin equals 1/(2β); swapping gives (h + τ)² - (h - τ)² = 4hτ, τ = 1/(2β)
    beta = 0.25
    zero, _ = ipo_loss(t([-1.]), t([-3.]), t([-2.]), t([-2.]), beta=beta)     # h = 2 = 1/(2·0.25)
    close(zero, [0.0])
    c, r, rc, rr = random_logps(4, seed=2)
    loss, _ = ipo_loss(c, r, rc, rr, beta=beta)
    swapped, _ = ipo_loss(r, c, rr, rc, beta=beta)
    h = (c - rc) - (r - rr)
    close(swapped - loss, 4 * h / (2 * beta), atol=1e-10)


def test_ipo_matches_naive_reference():
    c, r, rc, rr = random_logps(4, seed=3)
    expected = [((c[i] - rc[i] - r[i] + rr[i]).item() - 1 / (2 * 0.1)) ** 2 for i in range(len(c))]
    close(ipo_loss(c, r, rc, rr, beta=0.1)[0], expected, atol=1e-9)


# ---- SLiC-HF -----------------------------------------------------------------------------------------------------

def test_slic_hf_hand_computed():
    # hinge = max(0, 5 - (-1 - -3)) = 3;  SFT term -λ·log π(y_sft|x) = -0.1·(-1) = 0.1  →  3.1
    loss, m = slic_hf_loss(t([-1.]), t([-3.]), t([-1.]), delta=5.0, lam=0.1)
    close(loss, [3.1])
    close(m["hinge"], [3.0]), close(m["rewards/margin"], [2.0])


def test_slic_hf_hinge_limits():
    # beyond the margin δ only the SFT term is left and the rejected response gets no gradient;
    # inside (-δ, δ) the hinge is linear, so swapping chosen/rejected changes it by exactly 2·margin
    c, r = t([-1.0]), t([-10.0]).requires_grad_()
    loss, _ = slic_hf_loss(c, r, c, delta=1.0, lam=0.5)
    loss.sum().backward()
    close(loss.detach(), [0.5]), close(r.grad, [0.0])
    a = -torch.rand(64, dtype=torch.float64)
    b = -torch.rand(64, dtype=torch.float64)                                    # |a - b| < 1 < δ
    loss, _ = slic_hf_loss(a, b, a, delta=2.0, lam=0.0)
    swapped, _ = slic_hf_loss(b, a, a, delta=2.0, lam=0.0)
    close(swapped - loss, 2 * (a - b), atol=1e-12)


def test_slic_hf_matches_naive_reference():
    c, r, s = random_logps(3, seed=4, scale=10)
    expected = [max(0.0, 1.5 - c[i].item() + r[i].item()) - 0.2 * s[i].item() for i in range(len(c))]
    close(slic_hf_loss(c, r, s, delta=1.5, lam=0.2)[0], expected, atol=1e-12)


# ---- ORPO --------------------------------------------------------------------------------------------------------

def test_orpo_hand_computed():
    # P_w = 0.5 → odds 1, log odds 0;  P_l = 0.2 → odds 0.25, log odds -1.3862944;  log OR = 1.3862944
    # L_OR = -log σ(1.3862944) = log(1 + 0.25) = 0.2231436;  L_SFT = -log 0.5 = 0.6931472
    # loss = 0.6931472 + 0.1·0.2231436 = 0.7154615
    loss, m = orpo_loss(t([math.log(0.5)]), t([math.log(0.2)]), t([math.log(0.5)]), lam=0.1)
    close(loss, [0.7154615])
    close(m["log_odds_ratio"], [math.log(4.0)]), close(m["nll"], [math.log(2.0)])


def test_orpo_swap_identity_and_certain_chosen_is_finite():
    # with the SFT term held fixed, swapping changes λ·L_OR by exactly λ·log OR (softplus identity);
    # a chosen response the model is all but certain of (mean logp -1e-9, float32 where e^-1e-9 rounds to 1) must
    # still give a finite loss and gradient
    c, r, s = random_logps(3, seed=5, scale=2)
    loss, m = orpo_loss(c, r, s, lam=0.5)
    swapped, _ = orpo_loss(r, c, s, lam=0.5)
    close(swapped - loss, 0.5 * m["log_odds_ratio"], atol=1e-10)
    chosen = torch.tensor([-1e-9], requires_grad=True)
    loss, _ = orpo_loss(chosen, torch.tensor([-1.0]), torch.tensor([-1.0]), lam=1.0)
    loss.sum().backward()
    assert torch.isfinite(loss).all() and torch.isfinite(chosen.grad).all()


def test_orpo_matches_naive_reference():
    c, r, s = random_logps(3, seed=6, scale=4)
    expected = []
    for i in range(len(c)):
        p_w, p_l = math.exp(c[i].item()), math.exp(r[i].item())
        log_or = math.log((p_w / (1 - p_w)) / (p_l / (1 - p_l)))
        expected.append(-s[i].item() + 0.3 * -math.log(sigmoid(log_or)))
    close(orpo_loss(c, r, s, lam=0.3)[0], expected, atol=1e-9)


# ---- SimPO -------------------------------------------------------------------------------------------------------

def test_simpo_hand_computed():
    # rewards 2·(-1) = -2 and 2·(-2) = -4, margin 2, minus γ = 1 → 1  →  -log σ(1) = 0.3132617
    loss, m = simpo_loss(t([-1.]), t([-2.]), beta=2.0, gamma=1.0)
    close(loss, [0.3132617])
    close(m["rewards/chosen"], [-2.0]), close(m["rewards/rejected"], [-4.0])


def test_simpo_margin_at_gamma_is_log2_and_swap_identity():
    # when the reward margin equals γ the loss is log 2; with γ = 0 swapping changes it by the margin
    loss, _ = simpo_loss(t([-1.]), t([-1.5]), beta=2.0, gamma=1.0)
    close(loss, [math.log(2)], atol=1e-12)
    c, r = random_logps(2, seed=7)
    loss, m = simpo_loss(c, r, beta=2.5, gamma=0.0)
    swapped, _ = simpo_loss(r, c, beta=2.5, gamma=0.0)
    close(swapped - loss, m["rewards/margin"], atol=1e-10)


def test_simpo_matches_naive_reference():
    c, r = random_logps(2, seed=8)
    expected = [softplus(-(2.0 * c[i].item() - 2.0 * r[i].item() - 0.5)) for i in range(len(c))]
    close(simpo_loss(c, r, beta=2.0, gamma=0.5)[0], expected, atol=1e-10)


# ---- KTO ---------------------------------------------------------------------------------------------------------

def test_kto_hand_computed():
    # both examples: r = -1 - -2 = 1, z_ref = 0.5, β = 2
    # desirable:   1   - 1·σ(2·(1 - 0.5))   = 1 - σ(1)        = 1 - 0.7310586 = 0.2689414
    # undesirable: 1.5 - 1.5·σ(2·(0.5 - 1)) = 1.5 - 1.5·σ(-1) = 1.5 - 0.4034121 = 1.0965879
    loss, m = kto_loss(t([-1., -1.]), t([-2., -2.]), torch.tensor([True, False]), 0.5,
                       beta=2.0, lambda_d=1.0, lambda_u=1.5)
    close(loss, [0.2689414, 1.0965879])
    close(m["rewards"], [2.0, 2.0]), close(m["desirable"], [1.0, 0.0])


def test_kto_flipped_label_sums_to_lambda_and_policy_at_reference():
    # λ(1 - σ(x)) + λ(1 - σ(-x)) = λ for any x; at π = π_ref and z_ref = 0 every example costs λ_y / 2
    a, b = random_logps(2, seed=9)
    ones = torch.ones_like(a, dtype=torch.bool)
    good, _ = kto_loss(a, b, ones, 0.3, beta=0.7, lambda_d=1.3, lambda_u=1.3)
    bad, _ = kto_loss(a, b, ~ones, 0.3, beta=0.7, lambda_d=1.3, lambda_u=1.3)
    close(good + bad, torch.full_like(a, 1.3), atol=1e-12)
    mixed = torch.arange(len(a)) % 2 == 0
    loss, _ = kto_loss(a, a, mixed, 0.0, beta=0.1, lambda_d=1.0, lambda_u=2.0)
    close(loss, torch.where(mixed, 0.5, 1.0).double(), atol=1e-12)


def test_kto_matches_naive_reference_and_z_ref_gets_no_gradient():
    p, ref = random_logps(2, seed=10)
    desirable = torch.rand(len(p), generator=torch.Generator().manual_seed(0)) > 0.5
    z = torch.tensor(0.4, dtype=torch.float64, requires_grad=True)
    loss, _ = kto_loss(p, ref, desirable, kto_reference_point(p + z, ref), beta=0.5, lambda_d=1.0, lambda_u=1.33)
    expected = []
    z_ref = max(0.0, (p - ref).mean().item() + 0.4)
    for i in range(len(p)):
        r = p[i].item() - ref[i].item()
        if desirable[i]:
            expected.append(1.0 - 1.0 * sigmoid(0.5 * (r - z_ref)))
        else:
            expected.append(1.33 - 1.33 * sigmoid(0.5 * (z_ref - r)))
    close(loss, expected, atol=1e-10)
    assert not loss.requires_grad                                               # z_ref detached; p, ref are leaves


def test_kto_reference_point_hand_computed():
    # mean(-1 - -2, -1 - -3) = 1.5;  mean(-1 - -2, -3 - -2) = 0;  mean(-2 - -1) = -1 → clamped to 0
    close(kto_reference_point(t([-1., -1.]), t([-2., -3.])), 1.5)
    close(kto_reference_point(t([-1., -3.]), t([-2., -2.])), 0.0)
    close(kto_reference_point(t([-2.]), t([-1.])), 0.0)


# ---- the contract the loop relies on -----------------------------------------------------------------------------

HYPERPARAMETERS = {"dpo": {"beta": 0.1}, "ipo": {"beta": 0.1}, "slic_hf": {"delta": 1.0, "lam": 0.1},
                   "simpo": {"beta": 2.0, "gamma": 0.5}, "orpo": {"lam": 0.1}}


PAIRWISE = sorted(name for name, spec in LOSSES.items() if spec.paired)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_the_table_describes_each_signature(name):
    # the loop builds positional inputs from the loss's row of LOSSES; the signature must agree
    spec = LOSSES[name]
    if spec.paired:
        expected = ["chosen_logps", "rejected_logps"]
        expected += ["ref_chosen_logps", "ref_rejected_logps"] if spec.needs_reference else []
        expected += ["sft_logps"] if spec.sft_term else []
    else:
        expected = ["logps", "ref_logps", "desirable", "z_ref"]
    params = inspect.signature(spec.function).parameters.values()
    assert [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD] == expected
    assert {p.name for p in params if p.kind is p.KEYWORD_ONLY} == set(spec.hyperparameters)


def test_every_hyperparameter_is_a_config_field():
    from alignlab.train.dpo import DPOConfig
    fields = set(DPOConfig.__dataclass_fields__)
    assert {h for spec in LOSSES.values() for h in spec.hyperparameters} <= fields


@pytest.mark.parametrize("name", PAIRWISE)
def test_every_pairwise_loss_reports_the_shared_metrics_per_example(name):
    c, r, rc, rr = [x.requires_grad_() for x in random_logps(4, size=5, seed=11)]
    spec = LOSSES[name]
    inputs = [c, r] + ([rc, rr] if spec.needs_reference else []) + ([c] if spec.sft_term else [])
    loss, metrics = spec.function(*inputs, **HYPERPARAMETERS[name])
    assert loss.shape == (5,) and loss.requires_grad
    assert {"rewards/chosen", "rewards/rejected", "rewards/margin", "rewards/accuracy"} <= set(metrics)
    for key, value in metrics.items():
        assert value.shape == (5,) and not value.requires_grad, key

"""GCG's pieces against first principles on the tiny model in float64: the token gradient against finite differences,
the one-hot path against the token path, batched candidate losses against one at a time, and a search whose best
loss never rises and does fall."""

import pytest
import torch

from alignlab.config import ModelConfig
from alignlab.models import load_causal_lm, load_tokenizer
from alignlab.redteam.gcg import (Behaviour, GCGConfig, behaviour_parts, candidate_losses, forbidden_tokens,
                                  relaxed_loss, run_gcg, sample_candidates, token_gradient, with_suffix)

BEHAVIOUR = Behaviour("What is the capital of Veloria?", "Sure, the capital is Dorn")


@pytest.fixture(scope="module")
def tiny64(tiny_lm):
    model = load_causal_lm(ModelConfig(path=str(tiny_lm))).double().eval().requires_grad_(False)
    return model, load_tokenizer(str(tiny_lm))


def suffix_ids(tokenizer, n=6):
    return torch.tensor(tokenizer(" ".join(["x"] * n), add_special_tokens=False)["input_ids"])


@pytest.fixture(scope="module")
def gpt2_64(tiny_lm):
    """A tiny GPT-2 that computes in float64 throughout (Llama's RMSNorm rounds through float32, which would bury a
    finite difference in noise)."""
    from transformers import GPT2Config, GPT2LMHeadModel
    tokenizer = load_tokenizer(str(tiny_lm))
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=256, n_embd=16, n_layer=2, n_head=2,
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    return GPT2LMHeadModel(config).double().eval().requires_grad_(False), tokenizer


def test_token_gradient_matches_finite_differences(gpt2_64):
    model, tokenizer = gpt2_64
    parts = behaviour_parts(tokenizer, BEHAVIOUR, "{request} {suffix}", "cpu")
    ids = suffix_ids(tokenizer)
    vocab = model.get_input_embeddings().weight.shape[0]
    one_hot = torch.nn.functional.one_hot(ids, vocab).double().requires_grad_(True)
    (grad,) = torch.autograd.grad(relaxed_loss(model, parts, one_hot), [one_hot])
    eps = 1e-4
    generator = torch.Generator().manual_seed(0)
    for _ in range(8):
        i = int(torch.randint(len(ids), (1,), generator=generator))
        v = int(torch.randint(vocab, (1,), generator=generator))
        step = torch.zeros_like(one_hot)
        step[i, v] = eps
        with torch.no_grad():
            up, down = relaxed_loss(model, parts, one_hot + step), relaxed_loss(model, parts, one_hot - step)
            numeric = (up - down) / (2 * eps)
        # central differences in float64: truncation ~ eps² · f''' (~1e-8 here), rounding ~ 1e-16 · loss / eps
        assert grad[i, v].item() == pytest.approx(numeric.item(), rel=1e-4, abs=1e-11)
    # the step's gradient is that gradient, unit norm per position (one behaviour)
    step_grad = token_gradient(model, [parts], ids)
    torch.testing.assert_close(step_grad, grad / grad.norm(dim=-1, keepdim=True), rtol=1e-10, atol=1e-12)


def test_one_hot_path_equals_token_path_and_batching_changes_nothing(gpt2_64):
    model, tokenizer = gpt2_64
    parts = behaviour_parts(tokenizer, BEHAVIOUR, "{suffix} {request}", "cpu")
    ids = suffix_ids(tokenizer)
    vocab = model.get_input_embeddings().weight.shape[0]
    relaxed = relaxed_loss(model, parts, torch.nn.functional.one_hot(ids, vocab).double())
    exact = candidate_losses(model, [parts], ids.unsqueeze(0), batch_size=1)[0]
    assert relaxed.item() == pytest.approx(exact.item(), rel=1e-10)
    candidates = torch.randint(5, vocab, (7, len(ids)), generator=torch.Generator().manual_seed(1))
    one_by_one = candidate_losses(model, [parts], candidates, batch_size=1)
    torch.testing.assert_close(candidate_losses(model, [parts], candidates, batch_size=7), one_by_one,
                               rtol=1e-10, atol=1e-10)


def test_candidates_swap_only_allowed_top_k_tokens(tiny64):
    model, tokenizer = tiny64
    ids = suffix_ids(tokenizer)
    grad = torch.randn(len(ids), len(tokenizer), generator=torch.Generator().manual_seed(2))
    forbidden = forbidden_tokens(tokenizer, allow_non_ascii=False)
    candidates = sample_candidates(ids, grad, forbidden, 64, 5, 2, torch.Generator().manual_seed(3))
    masked = grad.clone()
    masked[:, forbidden] = float("inf")
    top = (-masked).topk(5, dim=1).indices
    for cand in candidates:
        changed = (cand != ids).nonzero().flatten().tolist()
        assert len(changed) <= 2
        assert all(int(cand[p]) in top[p].tolist() and int(cand[p]) not in forbidden.tolist() for p in changed)
    assert set(tokenizer.all_special_ids) <= set(forbidden.tolist())


def test_the_best_loss_never_rises_and_falls(tiny_lm):
    model = load_causal_lm(ModelConfig(path=str(tiny_lm))).eval()
    tokenizer = load_tokenizer(str(tiny_lm))
    behaviours = [BEHAVIOUR, Behaviour("How do I stop a process?", "Sure, use kill")]
    result = run_gcg(model, tokenizer, behaviours, GCGConfig(steps=6, search_width=32, topk=16, suffix_length=5))
    assert len(result.losses) == 7 and result.steps == 6
    assert all(b <= a for a, b in zip(result.losses, result.losses[1:]))
    assert result.losses[-1] < result.losses[0]
    messages = with_suffix(behaviours[0], result.suffix, "{request} {suffix}")
    assert messages == [{"role": "user", "content": f"{behaviours[0].request} {result.suffix}"}]


def test_placement_must_name_both_slots(tiny64):
    _, tokenizer = tiny64
    with pytest.raises(ValueError, match="must contain"):
        behaviour_parts(tokenizer, BEHAVIOUR, "{request}", "cpu")

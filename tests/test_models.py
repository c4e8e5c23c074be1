"""Model loading (dropout off, LoRA), log-probs of masked tokens, the disabled-adapter reference, saving."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from peft import PeftModel

from alignlab.config import LoraConfig, ModelConfig
from alignlab import models
from alignlab.models import (
    disabled_adapter, forward_logps, load_causal_lm, load_tokenizer, masked_logps, save_model, sequence_logps,
)


@pytest.fixture
def lm_with_dropout(tiny_lm, tmp_path):
    path = tmp_path / "lm"
    shutil.copytree(tiny_lm, path)
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "attention_dropout": 0.5}))
    return path


def forward_twice(model) -> tuple[torch.Tensor, torch.Tensor]:
    model.train()
    ids = torch.tensor([[1, 7, 9, 11, 13, 2]])
    return model(ids).logits, model(ids).logits


def test_dropout_is_off_unless_kept(lm_with_dropout):
    model = load_causal_lm(ModelConfig(path=str(lm_with_dropout)))
    assert model.config.attention_dropout == 0.0
    a, b = forward_twice(model)
    assert torch.equal(a, b)                               # train mode, yet deterministic: policy == reference
    kept = load_causal_lm(ModelConfig(path=str(lm_with_dropout), keep_dropout=True))
    assert kept.config.attention_dropout == 0.5
    a, b = forward_twice(kept)
    assert not torch.equal(a, b)


def test_sequence_logps_sums_the_masked_next_token_logps(tiny_lm):
    model = load_causal_lm(ModelConfig(path=str(tiny_lm))).eval()
    input_ids = torch.tensor([[1, 5, 6, 7, 2], [1, 8, 2, 0, 0]])
    attention_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    mask = torch.tensor([[0, 0, 1, 1, 1], [0, 1, 1, 0, 0]])
    got = sequence_logps(model, input_ids, attention_mask, mask)
    with torch.no_grad():
        expected = []
        for row in range(2):
            n = int(attention_mask[row].sum())
            logps = torch.log_softmax(model(input_ids[row:row + 1, :n]).logits[0].double(), -1)
            expected.append(sum(logps[t - 1, input_ids[row, t]] for t in range(1, n) if mask[row, t]))
    torch.testing.assert_close(got, torch.stack(expected).float(), atol=1e-5, rtol=0)


# A padded 3-row batch: row 0 counts its last 4 tokens, row 1 one token before its padding, row 2 nothing.
PARITY_IDS = torch.tensor([[1, 5, 6, 7, 8, 9], [1, 10, 11, 12, 0, 0], [1, 13, 14, 0, 0, 0]])
PARITY_ATTENTION = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0]])
PARITY_MASK = torch.tensor([[0, 0, 1, 1, 1, 1], [0, 0, 0, 1, 0, 0], [0, 0, 0, 0, 0, 0]])


def logps_and_grads(model, fn) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """fn(model) → (B, T-1) log-probs; returns them and the gradients of their sum (and of a row-weighted sum, so
    a row mix-up shows) with respect to the trainable parameters."""
    model.zero_grad()
    logps = fn(model)
    (logps.sum() + (logps.sum(-1) * torch.arange(1.0, 1.0 + logps.shape[0])).sum()).backward()
    return logps.detach(), [p.grad.clone() for p in model.parameters() if p.requires_grad]


def plain(model) -> torch.Tensor:
    return forward_logps(model, PARITY_IDS, PARITY_ATTENTION) * PARITY_MASK[:, 1:]


def selective(model) -> torch.Tensor:
    return masked_logps(model, PARITY_IDS, PARITY_ATTENTION, PARITY_MASK)


def assert_same_logps_and_grads(model) -> None:
    (want, want_grads), (got, got_grads) = logps_and_grads(model, plain), logps_and_grads(model, selective)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)
    assert (got[PARITY_MASK[:, 1:] == 0] == 0).all() and got[0, 1:].ne(0).all()
    assert len(got_grads) == len(want_grads) > 0
    for a, b in zip(got_grads, want_grads):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-4)


def head_rows(model, fn) -> int:
    """Rows the LM head saw while fn(model) ran (positions it projected to the vocabulary)."""
    lm = model.get_base_model() if isinstance(model, PeftModel) else model
    seen = []
    handle = lm.get_output_embeddings().register_forward_hook(lambda m, args, out: seen.append(out.shape[:-1].numel()))
    with torch.no_grad():
        fn(model)
    handle.remove()
    return sum(seen)


def test_selective_head_matches_the_full_logits_path(tiny_lm):
    model = load_causal_lm(ModelConfig(path=str(tiny_lm)))
    assert_same_logps_and_grads(model)
    assert head_rows(model, selective) == int(PARITY_MASK[:, 1:].sum()) == 5      # not 3 × 6 positions
    assert head_rows(model, plain) == PARITY_IDS.numel()


def test_selective_head_matches_the_full_logits_path_with_lora(tiny_lm):
    model = load_causal_lm(ModelConfig(path=str(tiny_lm), lora=LoraConfig(enabled=True, r=2)))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_()                                # LoRA starts as a no-op; make the adapter matter
    assert_same_logps_and_grads(model)                     # gradients of the adapter weights only
    assert head_rows(model, selective) == 5
    with disabled_adapter(model):                          # the reference: the base model through the same path
        reference = selective(model).detach()
    base = load_causal_lm(ModelConfig(path=str(tiny_lm)))
    torch.testing.assert_close(reference, plain(base).detach(), atol=1e-6, rtol=1e-5)
    assert (reference - selective(model).detach()).abs().max() > 1e-3


def test_selective_head_on_another_architecture():
    # GPT-2 keeps its body under `transformer` (not `model`) and has absolute position embeddings.
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=32, n_positions=16, n_embd=16, n_layer=2, n_head=2,
                                       resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0))
    assert_same_logps_and_grads(model)
    assert head_rows(model, selective) == 5


def test_other_architectures_fall_back_to_the_full_logits(tiny_lm, monkeypatch):
    monkeypatch.setattr(models, "HEAD_ON_HIDDEN", set())   # as for an architecture that post-processes its logits
    model = load_causal_lm(ModelConfig(path=str(tiny_lm)))
    assert head_rows(model, selective) == PARITY_IDS.numel()
    assert_same_logps_and_grads(model)


def test_disabled_adapter_is_the_base_model(tiny_lm):
    base = load_causal_lm(ModelConfig(path=str(tiny_lm))).eval()
    model = load_causal_lm(ModelConfig(path=str(tiny_lm), lora=LoraConfig(enabled=True, r=2))).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_()                                # LoRA starts as a no-op; make the adapter matter
        ids = torch.tensor([[1, 7, 9, 11, 2]])
        adapted = model(ids).logits
        with disabled_adapter(model) as reference:
            frozen = reference(ids).logits
        after = model(ids).logits
        expected = base(ids).logits
    torch.testing.assert_close(frozen, expected)
    assert (adapted - expected).abs().max() > 1e-3
    torch.testing.assert_close(after, adapted)            # the adapter is back on after the block
    assert {n for n, p in model.named_parameters() if p.requires_grad} == \
           {n for n, _ in model.named_parameters() if "lora_" in n}


def test_save_model_round_trips(tiny_lm, tmp_path):
    from transformers import AutoModelForCausalLM
    model = load_causal_lm(ModelConfig(path=str(tiny_lm))).eval()
    tokenizer = load_tokenizer(str(tiny_lm))
    out = save_model(model, tokenizer, tmp_path / "model")
    ids = torch.tensor([[1, 7, 9, 2]])
    with torch.no_grad():
        torch.testing.assert_close(AutoModelForCausalLM.from_pretrained(out)(ids).logits, model(ids).logits)
    assert load_tokenizer(str(out)).chat_template == tokenizer.chat_template


def test_load_tokenizer_gives_a_pad_token(tiny_lm, tmp_path):
    tokenizer = load_tokenizer(str(tiny_lm))
    tokenizer.pad_token = None
    tokenizer.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    config.pop("pad_token", None)
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    reloaded = load_tokenizer(str(tmp_path))
    assert reloaded.pad_token_id == reloaded.eos_token_id


@pytest.mark.parametrize("lora", [False, True])
def test_gradient_checkpointing_recomputes_blocks_and_gives_the_same_gradients(tiny_lm, lora):
    """model.gradient_checkpointing: each block's forward runs again in the backward (counted), and the loss and
    gradients are those without it (the same float64 operations, recomputed: equal to rounding)."""
    def step(checkpointing: bool):
        cfg = ModelConfig(path=str(tiny_lm), dtype="float64", gradient_checkpointing=checkpointing,
                          lora=LoraConfig(enabled=lora, r=2))
        torch.manual_seed(0)                                        # the same random LoRA initialisation
        model = load_causal_lm(cfg)
        model.train()
        calls = []
        for layer in model.get_base_model().model.layers if lora else model.model.layers:
            # a pre-hook: the recompute stops (torch's early stop) once the last tensor the backward needs is back,
            # inside the MLP, before a forward hook would fire
            layer.mlp.register_forward_pre_hook(lambda *_: calls.append(1))
        logps = masked_logps(model, PARITY_IDS, torch.ones_like(PARITY_IDS), PARITY_MASK)
        logps.sum().backward()
        grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
        return logps.detach(), grads, len(calls)
    plain_logps, plain_grads, plain_calls = step(False)
    logps, grads, calls = step(True)
    assert calls == 2 * plain_calls                                 # every block ran again in the backward
    torch.testing.assert_close(logps, plain_logps, rtol=0, atol=1e-12)
    assert grads.keys() == plain_grads.keys()
    for name in grads:
        torch.testing.assert_close(grads[name], plain_grads[name], rtol=0, atol=1e-12)

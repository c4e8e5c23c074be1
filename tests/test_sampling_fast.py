"""The Llama decode fast path against the HF forward it replaces: per-step logits, greedy tokens, fallbacks."""

from __future__ import annotations

import pytest
import torch
from transformers import (AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM,
                          MistralConfig, MistralForCausalLM, Qwen2Config, Qwen2ForCausalLM)

from alignlab.sampling import HFDecoder, _left_pad, sample_tokens
from alignlab.sampling_fast import LlamaDecoder, llama_decoder

VOCAB = 64
SIZES = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
             max_position_embeddings=128, pad_token_id=0, bos_token_id=1, eos_token_id=2)


def _model(kind: str, seed: int = 0):
    """A tiny random model of one Llama-family variant, in eval mode."""
    torch.manual_seed(seed)
    if kind == "llama":
        return LlamaForCausalLM(LlamaConfig(**SIZES, num_key_value_heads=4)).eval()
    if kind == "llama_gqa":
        return LlamaForCausalLM(LlamaConfig(**SIZES, num_key_value_heads=2)).eval()
    if kind == "llama_biases_tied":   # attention/MLP biases and tied embeddings, the options Llama configs have
        return LlamaForCausalLM(LlamaConfig(**SIZES, num_key_value_heads=2, attention_bias=True, mlp_bias=True,
                                            tie_word_embeddings=True)).eval()
    if kind == "llama3_rope":
        rope = {"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
                "high_freq_factor": 4.0, "original_max_position_embeddings": 16}
        return LlamaForCausalLM(LlamaConfig(**SIZES, num_key_value_heads=2, rope_parameters=rope)).eval()
    if kind == "qwen2":               # q/k/v biases, GQA
        return Qwen2ForCausalLM(Qwen2Config(**SIZES, num_key_value_heads=2)).eval()
    if kind == "mistral":
        return MistralForCausalLM(MistralConfig(**SIZES, num_key_value_heads=2, sliding_window=4096)).eval()
    raise AssertionError(kind)


def _random_weights(model) -> None:
    """Biases and norm weights are initialised to 0 and 1; randomise everything so each term is exercised."""
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)


PROMPTS = [[5, 9, 13, 7, 21, 30, 11], [17, 4], [40, 41, 42, 43, 44], [8]]   # left padding of 0–6 tokens


@pytest.mark.parametrize("onednn", [True, False], ids=["onednn", "f.linear"])
@pytest.mark.parametrize("kind", ["llama", "llama_gqa", "llama_biases_tied", "llama3_rope", "qwen2", "mistral"])
def test_per_step_logits_equal_the_hf_forward(kind, onednn, monkeypatch):
    # f.linear: the path GPUs (and CPU builds without oneDNN) take, checked here on CPU.
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: onednn)
    model = _model(kind)
    _random_weights(model)
    new_tokens = 6
    prompt, mask = _left_pad(PROMPTS, 0, "cpu")                                             # (B, P)
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    capacity = prompt.shape[1] + new_tokens
    fast = llama_decoder(model, capacity)
    assert isinstance(fast, LlamaDecoder), f"{kind} should take the fast path"
    assert fast.lm_head.onednn == onednn
    slow = HFDecoder(model, capacity)
    g = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        expected, got = slow.prefill(prompt, mask, positions), fast.prefill(prompt, mask, positions)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
        next_position = positions[:, -1] + 1
        for t in range(new_tokens - 1):
            tokens = torch.randint(3, VOCAB, (len(next_position),), generator=g)   # the same (teacher-forced) tokens
            if t == 2:   # drop a row mid-way, as the sampler does when a row emits EOS
                keep = torch.tensor([0, 2, 3])
                fast.select(keep)
                slow.select(keep)
                tokens, next_position = tokens[keep], next_position[keep]
            expected, got = slow.step(tokens, next_position), fast.step(tokens, next_position)
            torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5, msg=f"{kind}, step {t}")
            next_position = next_position + 1


@pytest.mark.parametrize("kind", ["llama_gqa", "qwen2"])
def test_greedy_equals_generate(kind):
    model = _model(kind, seed=1)
    _random_weights(model)
    P = max(map(len, PROMPTS))
    input_ids = torch.tensor([[0] * (P - len(p)) + p for p in PROMPTS])
    attention_mask = (input_ids != 0).long()
    hf = model.generate(input_ids=input_ids, attention_mask=attention_mask, do_sample=False, max_new_tokens=12,
                        eos_token_id=-1, pad_token_id=0)[:, P:]
    ours = sample_tokens(model, PROMPTS, max_new_tokens=12, temperature=0.0, eos_token_id=-1, pad_token_id=0,
                         generator=torch.Generator())
    assert llama_decoder(model, P + 12) is not None
    assert torch.equal(ours.response_ids, hf)
    assert len({tuple(row) for row in hf.tolist()}) > 1, "rows differ, so a row mix-up would show"


def test_fast_and_hf_forward_sample_the_same_tokens(tiny_lm):
    # Same generator, same per-step distributions (to float rounding) → the same draws and log-probs, EOS included.
    model = AutoModelForCausalLM.from_pretrained(tiny_lm).eval()
    prompts = [[1, 40, 41, 42], [1, 50], [1, 60, 61, 62, 63, 64, 65]] * 3
    eos = model.config.eos_token_id
    head = torch.nn.Linear(model.config.hidden_size, model.config.vocab_size)   # with a bias, as the bench's
    with torch.no_grad():   # a bias on EOS (p ≈ 0.15 per token) so rows stop at different steps
        head.weight.copy_(model.lm_head.weight)
        head.bias.zero_()
        head.bias[eos] = 4.0
    model.lm_head = head
    kwargs = dict(max_new_tokens=20, temperature=1.0, eos_token_id=eos, pad_token_id=0)
    fast = sample_tokens(model, prompts, generator=torch.Generator().manual_seed(3), **kwargs)
    slow = sample_tokens(model, prompts, generator=torch.Generator().manual_seed(3), fast=False, **kwargs)
    assert torch.equal(fast.response_ids, slow.response_ids)
    assert len(set(fast.response_mask.sum(1).tolist())) > 1, "the test needs rows that stop at different steps"
    torch.testing.assert_close(fast.logps, slow.logps, atol=1e-5, rtol=1e-5)


def test_unhandled_models_fall_back_to_their_own_forward(tiny_lm):
    from peft import LoraConfig, get_peft_model
    llama = AutoModelForCausalLM.from_pretrained(tiny_lm).eval()
    assert llama_decoder(llama, 32) is not None
    # LoRA layers replace the nn.Linear modules: not merged here, so the model's own forward runs them.
    peft = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_lm),
                          LoraConfig(r=2, target_modules=["q_proj", "v_proj"])).eval()
    assert llama_decoder(peft, 32) is None
    assert llama_decoder(peft.get_base_model(), 32) is None
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_embd=16, n_layer=1, n_head=2, n_positions=64)).eval()
    assert llama_decoder(gpt2, 32) is None
    mistral = MistralForCausalLM(MistralConfig(**SIZES, num_key_value_heads=2, sliding_window=16)).eval()
    assert llama_decoder(mistral, 16) is not None and llama_decoder(mistral, 17) is None   # window never binds
    assert llama_decoder(LlamaForCausalLM(LlamaConfig(**SIZES)).to(torch.bfloat16), 32) is None
    training = LlamaForCausalLM(LlamaConfig(**SIZES, attention_dropout=0.1)).train()
    assert llama_decoder(training, 32) is None and llama_decoder(training.eval(), 32) is not None
    # The fallbacks still sample: greedy through a LoRA model's forward equals its generate.
    out = sample_tokens(peft, [[1, 40, 41]], max_new_tokens=5, temperature=0.0, eos_token_id=-1, pad_token_id=0,
                        generator=torch.Generator())
    hf = peft.generate(input_ids=torch.tensor([[1, 40, 41]]), do_sample=False, max_new_tokens=5, eos_token_id=-1,
                       pad_token_id=0)[:, 3:]
    assert torch.equal(out.response_ids, hf)


def test_the_decoder_reads_the_weights_of_the_call():
    # PPO samples from a policy that changed since the last call: a decoder is built per call, never stale.
    model = _model("llama")
    prompts = [[5, 6, 7]]
    kwargs = dict(max_new_tokens=4, temperature=0.0, eos_token_id=-1, pad_token_id=0, generator=torch.Generator())
    before = sample_tokens(model, prompts, **kwargs).response_ids
    with torch.no_grad():
        model.lm_head.weight.zero_()
        model.lm_head.weight[33] = 1.0
        model.model.norm.weight.fill_(1.0)
    after = sample_tokens(model, prompts, **kwargs).response_ids
    assert not torch.equal(before, after)
    assert torch.equal(after, sample_tokens(model, prompts, fast=False, **kwargs).response_ids)

"""The sampler against Hugging Face generate (greedy), against a fresh forward (log-probs), and its bookkeeping."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from alignlab.ops import shifted_token_logps
from alignlab.data.chat import encode_prompt
from alignlab.sampling import SampleBatch, generate, per_sample_uniforms, sample_tokens

PROMPTS = ["What is the capital of Veloria?", "Hi", "How do I kill a stuck process? Use the kill command.",
           "17 + 25 ="]
CHATS = [[{"role": "user", "content": "What is 17 + 25?"}],
         [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of Brava?"}]]


@pytest.fixture(scope="module")
def lm(tiny_lm):
    model = AutoModelForCausalLM.from_pretrained(tiny_lm).eval()
    return model, AutoTokenizer.from_pretrained(tiny_lm)


def _ids(tokenizer, prompts):
    return [encode_prompt(p, tokenizer) for p in prompts]


def _sample(model, prompt_ids, *, eos, temperature=1.0, seed=0, max_new_tokens=12, top_p=1.0) -> SampleBatch:
    return sample_tokens(model, prompt_ids, max_new_tokens=max_new_tokens, temperature=temperature, eos_token_id=eos,
                         pad_token_id=0, generator=torch.Generator().manual_seed(seed), top_p=top_p)


def _rows(batch: SampleBatch) -> list[list[int]]:
    """Each row's generated tokens (up to and including its EOS)."""
    return [ids[:n] for ids, n in zip(batch.response_ids.tolist(), batch.response_mask.sum(1).tolist())]


def _frequent_greedy_token(model, prompt_ids) -> int:
    """A token the greedy model emits mid-sequence in some rows, to serve as EOS (a random model never says <|end|>)."""
    rows = _rows(_sample(model, prompt_ids, eos=-1, temperature=0.0))
    counts = torch.bincount(torch.tensor([tok for r in rows for tok in r[1:-2]]))
    return int(counts.argmax())


def test_greedy_matches_hf_generate(lm):
    model, tokenizer = lm
    prompt_ids = _ids(tokenizer, PROMPTS + CHATS)
    eos = _frequent_greedy_token(model, prompt_ids)
    ours = _rows(_sample(model, prompt_ids, eos=eos, temperature=0.0, max_new_tokens=16))
    assert any(r[-1] == eos and len(r) < 16 for r in ours), "the test needs a row that stops early"
    assert len({len(r) for r in ours}) > 1, "the test needs rows of different lengths"
    assert 2 * sum(len(r) < 16 for r in ours) >= len(ours), "the test needs the batch to shrink (half the rows done)"

    P = max(len(ids) for ids in prompt_ids)
    input_ids = torch.tensor([[0] * (P - len(ids)) + ids for ids in prompt_ids])
    attention_mask = torch.tensor([[0] * (P - len(ids)) + [1] * len(ids) for ids in prompt_ids])
    hf = model.generate(input_ids=input_ids, attention_mask=attention_mask, do_sample=False, max_new_tokens=16,
                        eos_token_id=eos, pad_token_id=0)[:, P:].tolist()
    for row, (mine, theirs) in enumerate(zip(ours, hf)):
        assert mine == theirs[:len(mine)], f"row {row}: {mine} vs HF {theirs}"
        assert all(tok == 0 for tok in theirs[len(mine):]), f"row {row}: HF went on after our stop: {theirs}"


@pytest.mark.parametrize("temperature", [1.0, 0.0])
def test_logps_equal_a_fresh_forward(lm, temperature):
    model, tokenizer = lm
    prompt_ids = _ids(tokenizer, PROMPTS)
    eos = _frequent_greedy_token(model, prompt_ids)
    batch = _sample(model, prompt_ids, eos=eos, temperature=temperature, seed=3)
    tokens = torch.cat([batch.prompt_ids, batch.response_ids], 1)                 # (B, P + A)
    mask = torch.cat([batch.prompt_mask, batch.response_mask], 1)                 # (B, P + A)
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    with torch.no_grad():
        logits = model(input_ids=tokens, attention_mask=mask, position_ids=positions).logits
    P = batch.prompt_ids.shape[1]
    expected = shifted_token_logps(logits, tokens)[:, P - 1:] * batch.response_mask   # (B, A)
    torch.testing.assert_close(batch.logps, expected, atol=1e-5, rtol=1e-5)
    assert (batch.logps[batch.response_mask == 1] < 0).all()


def test_rows_stop_at_eos_and_mask_includes_it(lm):
    model, tokenizer = lm
    prompt_ids = _ids(tokenizer, PROMPTS)
    eos = _frequent_greedy_token(model, prompt_ids)
    batch = _sample(model, prompt_ids, eos=eos, temperature=0.0, max_new_tokens=16)
    stopped = 0
    for ids, mask in zip(batch.response_ids.tolist(), batch.response_mask.tolist()):
        n = sum(mask)
        assert mask == [1] * n + [0] * (len(mask) - n), "the mask is a prefix"
        assert eos not in ids[:n - 1], "no EOS before the last counted token"
        if n < 16:
            assert ids[n - 1] == eos, "a row shorter than max_new_tokens ends with the EOS, which is counted"
            assert all(tok == 0 for tok in ids[n:]), "padding after the EOS"
            stopped += 1
    assert stopped >= 1
    assert (batch.logps[batch.response_mask == 0] == 0).all()


def test_same_seed_same_samples_and_different_seed_differs(lm):
    model, tokenizer = lm
    kwargs = dict(max_new_tokens=10, temperature=1.0, num_samples=3, batch_size=4)
    a = generate(model, tokenizer, PROMPTS, seed=7, **kwargs)
    assert a == generate(model, tokenizer, PROMPTS, seed=7, **kwargs)
    assert a != generate(model, tokenizer, PROMPTS, seed=8, **kwargs)


def test_a_sample_with_its_own_stream_is_the_same_in_any_batch(lm):
    """sample_streams: per_sample (PPO on several processes): a row drawn from its own uniforms is the same whether
    it is sampled with the whole batch or alone (another process's share), and the stream decides it."""
    model, tokenizer = lm
    ids = _ids(tokenizer, PROMPTS)
    eos = list(range(0, model.config.vocab_size, 6))       # rows end at different steps: the batch shrinks
    seeds = list(range(100, 100 + len(ids)))
    uniforms = per_sample_uniforms(seeds, 12)

    def draw(rows, stream):
        return _rows(sample_tokens(model, [ids[i] for i in rows], max_new_tokens=12, temperature=1.0,
                                   eos_token_id=eos, pad_token_id=0, generator=torch.Generator().manual_seed(0),
                                   uniforms=stream))
    whole = draw(range(len(ids)), uniforms)
    assert len({len(r) for r in whole}) > 1                           # some rows ended before others
    for i in range(len(ids)):
        assert draw([i], uniforms[i:i + 1]) == [whole[i]]
    other = draw(range(len(ids)), per_sample_uniforms([s + 1000 for s in seeds], 12))
    assert other != whole
    with pytest.raises(ValueError, match="expected"):
        draw(range(2), uniforms)


def test_num_samples_and_prompt_order(lm):
    model, tokenizer = lm
    # Greedy samples are the same for every copy, and each prompt's answer must not depend on its neighbours.
    out = generate(model, tokenizer, PROMPTS, max_new_tokens=8, temperature=0.0, num_samples=2, seed=0, batch_size=3)
    assert [len(samples) for samples in out] == [2] * len(PROMPTS)
    singles = [generate(model, tokenizer, [p], max_new_tokens=8, temperature=0.0, seed=0, batch_size=1)[0][0]
               for p in PROMPTS]
    assert [samples[0] for samples in out] == singles
    assert all(samples[0] == samples[1] for samples in out)
    assert len(set(singles)) > 1, "prompts give different answers, so an order mix-up would show"
    # At temperature 1 the copies of one prompt are independent samples.
    sampled = generate(model, tokenizer, PROMPTS[:1], max_new_tokens=8, temperature=1.0, num_samples=4, seed=0,
                       batch_size=4)
    assert len(set(sampled[0])) > 1


def test_chat_prompts_use_the_chat_template(lm):
    model, tokenizer = lm
    ids = encode_prompt(CHATS[1], tokenizer)
    assert tokenizer.decode(ids) == "<|bos|><|system|>Be brief.<|end|><|user|>Capital of Brava?<|end|><|assistant|>"
    assert encode_prompt("Hi there", tokenizer) == tokenizer("Hi there")["input_ids"]
    # generate on a chat prompt equals sampling its rendered ids directly.
    text = generate(model, tokenizer, CHATS[1:], max_new_tokens=8, temperature=0.0, seed=0, batch_size=1)[0][0]
    batch = sample_tokens(model, [ids], max_new_tokens=8, temperature=0.0, eos_token_id=tokenizer.eos_token_id,
                          pad_token_id=tokenizer.pad_token_id, generator=torch.Generator().manual_seed(0))
    assert text == tokenizer.decode(_rows(batch)[0], skip_special_tokens=True)


def test_top_p_keeps_only_the_nucleus(lm):
    model, tokenizer = lm
    # A tiny nucleus keeps only the most likely token, so sampling at any temperature is greedy.
    prompt_ids = _ids(tokenizer, PROMPTS)
    greedy = _sample(model, prompt_ids, eos=-1, temperature=0.0)
    nucleus = _sample(model, prompt_ids, eos=-1, temperature=1.0, top_p=1e-6, seed=5)
    assert torch.equal(greedy.response_ids, nucleus.response_ids)


def test_generate_strips_eos_from_text(lm, tiny_lm):
    _, tokenizer = lm
    # An output layer that always says <|end|>: every row stops at its first step and its text is empty.
    model = AutoModelForCausalLM.from_pretrained(tiny_lm).eval()
    model.lm_head = torch.nn.Linear(model.config.hidden_size, model.config.vocab_size)
    with torch.no_grad():
        model.lm_head.weight.zero_()
        model.lm_head.bias.zero_()
        model.lm_head.bias[tokenizer.eos_token_id] = 1.0
    assert generate(model, tokenizer, PROMPTS, max_new_tokens=6, temperature=0.0, seed=0, batch_size=2) == [[""]] * 4
    batch = sample_tokens(model, _ids(tokenizer, PROMPTS), max_new_tokens=6, temperature=0.0,
                          eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                          generator=torch.Generator())
    assert batch.response_ids.tolist() == [[tokenizer.eos_token_id]] * 4
    assert batch.response_mask.tolist() == [[1]] * 4


def test_categorical_draws_follow_the_probabilities():
    from alignlab.sampling import _categorical
    # Unnormalised weights with zeros in the middle and at both ends: zeros must never be drawn, and 40k draws put
    # each frequency within ±0.01 of its probability (4+ standard deviations of a binomial at p=0.5, n=40k is 0.01).
    weights = torch.tensor([0.0, 2.0, 0.0, 1.2, 0.8, 0.0])
    draws = _categorical(weights.expand(40_000, -1), torch.Generator().manual_seed(0))
    freq = torch.bincount(draws, minlength=6).double() / 40_000
    torch.testing.assert_close(freq, (weights / weights.sum()).double(), atol=0.01, rtol=0)
    assert freq[[0, 2, 5]].sum() == 0


def test_top_p_filter_hand_computed():
    from alignlab.sampling import _top_p_filter
    # Sorted: 0.5, 0.3, 0.15, 0.05. Mass before each: 0, 0.5, 0.8, 0.95. top_p=0.8 keeps those with mass before < 0.8.
    probs = torch.tensor([[0.15, 0.5, 0.05, 0.3]])
    assert torch.equal(_top_p_filter(probs, 0.8), torch.tensor([[0.0, 0.5, 0.0, 0.3]]))
    assert torch.equal(_top_p_filter(probs, 0.81), torch.tensor([[0.15, 0.5, 0.0, 0.3]]))


def test_unknown_backend_is_a_user_error(lm):
    model, tokenizer = lm
    with pytest.raises(ValueError, match="unknown backend 'vlm'"):
        generate(model, tokenizer, PROMPTS, max_new_tokens=2, temperature=0.0, seed=0, batch_size=2, backend="vlm")


def test_vllm_backend_without_vllm_says_how_to_get_it(lm):
    import importlib.util
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed: this checks the message given where it is absent")
    model, tokenizer = lm
    with pytest.raises(ImportError, match=r"pip install 'alignlab\[vllm\]'"):
        generate(model, tokenizer, PROMPTS, max_new_tokens=2, temperature=0.0, seed=0, batch_size=2, backend="vllm")


def test_vllm_generate_has_the_same_signature():
    import inspect

    from alignlab import sampling
    sampling_vllm = pytest.importorskip("alignlab.sampling_vllm", reason="vLLM not installed (GPU-only extra)")
    ours = dict(inspect.signature(sampling.generate).parameters)
    del ours["backend"]
    assert ours == dict(inspect.signature(sampling_vllm.generate).parameters)


def test_sampled_tensors_can_enter_a_training_graph(lm):
    model, tokenizer = lm
    batch = _sample(model, _ids(tokenizer, PROMPTS), eos=-1)
    # Sampling runs under inference mode; its outputs must still be usable as indices/constants in a loss.
    weights = torch.randn(model.config.vocab_size, 3, requires_grad=True)
    loss = (torch.nn.functional.embedding(batch.response_ids, weights).sum(-1) * batch.logps.exp()).sum()
    loss.backward()
    assert weights.grad is not None

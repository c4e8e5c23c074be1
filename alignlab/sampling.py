"""KV-cached batched sampling with per-sequence early stop: the sampler for rollouts, evaluation and preference data.

`generate` maps prompts (text or chat messages) to decoded responses; `sample_tokens` works on token ids and returns
the tensors an RL rollout needs (ids, masks, sampling-time log-probs) so nothing is re-tokenised.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor
from transformers.cache_utils import Cache, DynamicLayer

from alignlab.data.chat import encode_prompt, stop_token_ids
from alignlab.data.records import Prompt
from alignlab.ops import token_logps
from alignlab.sampling_fast import llama_decoder


@dataclass
class SampleBatch:
    """Prompts and their sampled responses. B = sequences, P = longest prompt, A = longest response.

    Positions of the full sequence prompt ‖ response are `(cat([prompt_mask, response_mask], 1).cumsum(1) - 1)`,
    which is what `sample_tokens` used, so a training forward over the concatenation reproduces `logps`.
    """
    prompt_ids: Tensor     # (B, P) left-padded with pad_token_id
    prompt_mask: Tensor    # (B, P) 1 on prompt tokens, 0 on left padding
    response_ids: Tensor   # (B, A) right-padded with pad_token_id after the EOS (or after max_new_tokens)
    response_mask: Tensor  # (B, A) 1 on generated tokens up to and including the EOS
    logps: Tensor          # (B, A) log-prob of each generated token at sampling time (see sample_tokens); 0 on padding


def sequence_inputs(batch) -> tuple[Tensor, Tensor, Tensor]:
    """ids, attention mask and position ids of prompt ‖ response, (B, P + A) each, with the positions the sampler
    used (left padding does not shift them). `batch`: a SampleBatch, or anything with its four id/mask fields."""
    input_ids = torch.cat([batch.prompt_ids, batch.response_ids], dim=1)
    attention_mask = torch.cat([batch.prompt_mask, batch.response_mask], dim=1)
    positions = (attention_mask.cumsum(1) - 1).clamp(min=0)
    return input_ids, attention_mask, positions


def response_forward(model, batch) -> tuple[Tensor, Tensor]:
    """log-probs under `model` of the sampled response tokens (B, A), 0 on padding, and the logits that predicted
    them (B, A, V): one forward over prompt ‖ response with the sampler's positions, so for the sampling model at
    temperature 1 it reproduces `batch.logps`. Rollouts (π_old, π_ref, the PPO update) and the KL of
    `alignlab.eval.divergence` all use it."""
    input_ids, attention_mask, positions = sequence_inputs(batch)
    P, A = batch.prompt_ids.shape[1], batch.response_ids.shape[1]
    logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions).logits
    logits = logits[:, P - 1:P - 1 + A].float()                                          # (B, A, V)
    return token_logps(logits, batch.response_ids) * batch.response_mask, logits


def generate(model, tokenizer, prompts: list[Prompt], *, max_new_tokens: int, temperature: float,
             num_samples: int = 1, seed: int, batch_size: int, top_p: float = 1.0,
             backend: Literal["torch", "vllm"] = "torch") -> list[list[str]]:
    """`num_samples` decoded responses per prompt, in prompt order; temperature 0 is greedy.

    A str prompt is tokenised as raw text; a list of messages is rendered with the tokenizer's chat template and a
    generation prompt. Each sequence stops at the end of its turn (`alignlab.data.chat.stop_token_ids`: the
    template's end-of-turn token, the EOS, the model's generation_config; the gym's `<|end|>`), which is not part of
    the returned text; special tokens are dropped from it. Sequences are sorted by prompt length before batching
    (less padding) and put back in order afterwards.
    Determinism: the same seed, prompts and batch_size give the same samples. A different batch_size gives
    different (equally valid) samples: the random stream is shared by the rows of a batch.
    backend="vllm" hands the same call to `alignlab.sampling_vllm.generate` (GPU; reads the weights from disk).
    """
    if backend == "vllm":
        try:
            from alignlab import sampling_vllm   # heavy and GPU-only: imported where it is asked for, never at the top
        except ImportError as e:
            raise ImportError(f"backend='vllm' needs vLLM ({e}): pip install 'alignlab[vllm]' on a CUDA machine, "
                              "or use backend='torch'") from e
        return sampling_vllm.generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens,
                                      temperature=temperature, num_samples=num_samples, seed=seed,
                                      batch_size=batch_size, top_p=top_p)
    if backend != "torch":
        raise ValueError(f"generate: unknown backend {backend!r}; use 'torch' or 'vllm'")
    if tokenizer.pad_token_id is None:
        raise ValueError("generate: the tokenizer has no pad token; set tokenizer.pad_token before sampling")
    encoded = [encode_prompt(p, tokenizer) for p in prompts]
    stops = stop_token_ids(tokenizer, model)
    flat = [ids for ids in encoded for _ in range(num_samples)]                    # prompt i → rows i*n .. i*n+n-1
    order = sorted(range(len(flat)), key=lambda i: len(flat[i]))
    generator = torch.Generator(device=model.device).manual_seed(seed)
    texts: list[str] = [""] * len(flat)
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        batch = sample_tokens(model, [flat[i] for i in rows], max_new_tokens=max_new_tokens, temperature=temperature,
                              eos_token_id=stops, pad_token_id=tokenizer.pad_token_id,
                              generator=generator, top_p=top_p)
        lengths = batch.response_mask.sum(1).tolist()
        for row, ids, n in zip(rows, batch.response_ids.tolist(), lengths):
            ids = ids[:n]
            if ids and ids[-1] in stops:
                ids = ids[:-1]
            texts[row] = tokenizer.decode(ids, skip_special_tokens=True)
    return [texts[i * num_samples:(i + 1) * num_samples] for i in range(len(prompts))]


def sample_tokens(model, prompt_ids: list[list[int]], *, max_new_tokens: int, temperature: float,
                  eos_token_id: int | list[int],
                  pad_token_id: int, generator: torch.Generator, top_p: float = 1.0,
                  fast: bool = True, uniforms: Tensor | None = None) -> SampleBatch:
    """Sample up to `max_new_tokens` per prompt with a KV cache; a row stops at its first `eos_token_id` (one id, or
    a list of ids any of which ends a turn).

    One prefill forward over the left-padded prompts, then one-token decode steps. Finished rows are dropped from
    the batch (and from the cache), so short answers do not pay for long ones.
    `logps` are log softmax(logits / temperature) of the taken token before top-p truncation: the policy's own
    log-probs at temperature 1 (and at temperature 0, where tokens are the argmax of the unscaled logits).
    The model is used as given: put it in eval mode first if it has dropout.
    fast: fp32 Llama-family models (Llama, Mistral, Qwen2) decode through `sampling_fast.LlamaDecoder` (weights
    read once per call, fused and prepacked for oneDNN on CPU; no per-step framework work), ~1.4× faster than their
    own forward on the benchmark model; anything else, and fast=False, goes through the model's own forward.
    uniforms: (B, max_new_tokens) numbers in [0, 1), row i's draw at each step (see `per_sample_uniforms`), instead
    of drawing from `generator`: a row's sample then does not depend on which other rows share its batch.
    """
    if uniforms is not None and tuple(uniforms.shape) != (len(prompt_ids), max_new_tokens):
        raise ValueError(f"uniforms has shape {tuple(uniforms.shape)}; expected ({len(prompt_ids)}, {max_new_tokens})")
    with torch.inference_mode():
        batch = _decode(model, prompt_ids, max_new_tokens, temperature, eos_token_id, pad_token_id, generator, top_p,
                        fast, uniforms)
    # Inference tensors cannot be saved for backward (e.g. as gather/embedding indices in a PPO loss): hand out
    # ordinary copies.
    return SampleBatch(*(t.clone() for t in (batch.prompt_ids, batch.prompt_mask, batch.response_ids,
                                             batch.response_mask, batch.logps)))


def _decode(model, prompt_ids: list[list[int]], max_new_tokens: int, temperature: float, eos_token_id: int | list[int],
            pad_token_id: int, generator: torch.Generator, top_p: float, fast: bool,
            uniforms: Tensor | None = None) -> SampleBatch:
    """The prefill and decode loop of `sample_tokens` (under inference mode)."""
    assert max_new_tokens >= 1 and len(prompt_ids) >= 1, (max_new_tokens, len(prompt_ids))
    device = model.device
    stops = torch.tensor([eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id), device=device)
    prompt, prompt_mask = _left_pad(prompt_ids, pad_token_id, device)              # (B, P), (B, P)
    uniforms = None if uniforms is None else uniforms.to(device)                  # indexed by rows on `device`
    positions = (prompt_mask.cumsum(1) - 1).clamp(min=0)                            # (B, P)
    capacity = prompt.shape[1] + max_new_tokens
    decoder = (llama_decoder(model, capacity) if fast else None) or HFDecoder(model, capacity)
    logits = decoder.prefill(prompt, prompt_mask, positions)                        # (B, V)

    B = prompt.shape[0]
    response = torch.full((B, max_new_tokens), pad_token_id, dtype=torch.long, device=device)  # (B, A)
    logps = torch.zeros(B, max_new_tokens, device=device)                                      # (B, A)
    lengths = torch.zeros(B, dtype=torch.long, device=device)                                  # (B,)
    active = torch.arange(B, device=device)          # rows of the full batch still generating
    next_position = positions[:, -1] + 1             # (b,)
    for t in range(max_new_tokens):
        drawn = None if uniforms is None else uniforms[active, t:t + 1]                     # (b, 1)
        tokens, token_logps = _sample(logits, temperature, top_p, generator, drawn)  # (b,), (b,)
        response[active, t] = tokens
        logps[active, t] = token_logps
        lengths[active] += 1
        if t == max_new_tokens - 1:
            break
        finished = torch.isin(tokens, stops)
        if finished.any():
            keep = (~finished).nonzero().squeeze(1)
            if keep.numel() == 0:
                break
            active, tokens, next_position = active[keep], tokens[keep], next_position[keep]
            decoder.select(keep)
        logits = decoder.step(tokens, next_position)
        next_position = next_position + 1

    A = int(lengths.max())
    response_mask = (torch.arange(A, device=device)[None, :] < lengths[:, None]).long()   # (B, A)
    return SampleBatch(prompt_ids=prompt, prompt_mask=prompt_mask, response_ids=response[:, :A],
                       response_mask=response_mask, logps=logps[:, :A] * response_mask)


class HFDecoder:
    """Prefill and decode steps through the model's own forward (any Hugging Face causal LM, PEFT included), with
    a PreallocatedLayer cache; the same interface as `sampling_fast.LlamaDecoder`."""

    def __init__(self, model, capacity: int):
        self.model = model
        self.cache = Cache(layers=[PreallocatedLayer(capacity) for _ in range(model.config.num_hidden_layers)])
        self.attention_mask = torch.empty(0)     # (b, P + t) for the b active rows

    def prefill(self, prompt: Tensor, prompt_mask: Tensor, positions: Tensor) -> Tensor:
        self.attention_mask = prompt_mask
        return self.model(input_ids=prompt, attention_mask=prompt_mask, position_ids=positions,
                          past_key_values=self.cache, use_cache=True, logits_to_keep=1).logits[:, -1]   # (B, V)

    def step(self, tokens: Tensor, positions: Tensor) -> Tensor:
        mask = self.attention_mask
        self.attention_mask = torch.cat([mask, mask.new_ones(len(tokens), 1)], dim=1)
        return self.model(input_ids=tokens[:, None], attention_mask=self.attention_mask,
                          position_ids=positions[:, None], past_key_values=self.cache,
                          use_cache=True).logits[:, -1]                                            # (b, V)

    def select(self, rows: Tensor) -> None:
        self.attention_mask = self.attention_mask[rows]
        self.cache.batch_select_indices(rows)


def _left_pad(prompt_ids: list[list[int]], pad_token_id: int, device) -> tuple[Tensor, Tensor]:
    """Left-pad token lists to one (B, P) tensor and its attention mask."""
    P = max(len(ids) for ids in prompt_ids)
    ids = torch.full((len(prompt_ids), P), pad_token_id, dtype=torch.long)
    mask = torch.zeros(len(prompt_ids), P, dtype=torch.long)
    for row, prompt in enumerate(prompt_ids):
        assert prompt, "empty prompt: there is no token to condition on"
        ids[row, P - len(prompt):] = torch.tensor(prompt)
        mask[row, P - len(prompt):] = 1
    return ids.to(device), mask.to(device)


def _sample(logits: Tensor, temperature: float, top_p: float, generator: torch.Generator,
            drawn: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Next tokens and their log-probs from the last-position logits (b, V) → (b,), (b,); `drawn` (b, 1): the
    rows' uniforms for this step, or None to draw them from `generator`."""
    logits = logits.float()
    scaled = logits if temperature in (0, 1) else logits / temperature            # (b, V)
    # One exp over the vocabulary serves both the normaliser and the draw (logsumexp and then softmax took two).
    top = scaled.amax(-1, keepdim=True)                                            # (b, 1)
    weights = (scaled - top).exp()                                                 # (b, V) unnormalised probs
    total = weights.sum(-1, keepdim=True)                                          # (b, 1)
    if temperature == 0:
        tokens = scaled.argmax(-1)
    elif top_p < 1.0:
        tokens = _categorical(_top_p_filter(weights / total, top_p), generator, drawn)
    else:
        tokens = _categorical(weights, generator, drawn)
    return tokens, (scaled.gather(1, tokens[:, None]) - top - total.log()).squeeze(1)


def _categorical(probs: Tensor, generator: torch.Generator, drawn: Tensor | None = None) -> Tensor:
    """One draw per row from non-negative, unnormalised probs (b, V) → (b,), by inverting the CDF.

    torch.multinomial draws V exponentials per row on CPU (3.6 ms for 16 × 8192, a tenth of a decode step of the
    benchmark model); this draws one uniform per row (0.65 ms). With u in (0, 1] and the left-side search, a token
    of probability 0 (a flat step of the CDF) is never the first index whose CDF reaches u · total.
    """
    cdf = probs.cumsum(-1)                                                         # (b, V), non-decreasing
    if drawn is None:
        drawn = torch.rand(probs.shape[0], 1, generator=generator, device=probs.device)   # (b, 1) in [0, 1)
    u = 1 - drawn                                                                  # (b, 1) in (0, 1]
    return torch.searchsorted(cdf, u * cdf[:, -1:]).squeeze(1)


def per_sample_uniforms(seeds: list[int], max_new_tokens: int) -> Tensor:
    """(len(seeds), max_new_tokens) uniforms in [0, 1), row i from its own generator seeded with seeds[i]: what
    `sample_tokens(uniforms=...)` draws from, so a sample is a function of its seed alone, whichever process or
    batch draws it."""
    return torch.stack([torch.rand(max_new_tokens, generator=torch.Generator().manual_seed(seed)) for seed in seeds])


def _top_p_filter(probs: Tensor, top_p: float) -> Tensor:
    """Nucleus sampling (Holtzman et al. 2020): zero every token outside the smallest set whose mass reaches top_p."""
    sorted_probs, order = probs.sort(dim=-1, descending=True)                     # (b, V)
    # A token is dropped when the mass strictly before it already reaches top_p, so the top token always stays.
    drop = (sorted_probs.cumsum(-1) - sorted_probs) >= top_p
    sorted_probs = sorted_probs.masked_fill(drop, 0.0)
    return torch.zeros_like(probs).scatter(-1, order, sorted_probs)


class PreallocatedLayer(DynamicLayer):
    """One attention layer's keys and values in a buffer sized for the whole generation, written in place.

    DynamicLayer grows by torch.cat, which allocates and copies the whole cache for every token and layer (a fifth
    of decode time on the benchmark model, more with glibc malloc); here a step writes one slot and returns views.
    """

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = capacity
        self.length = 0

    def lazy_initialization(self, key_states: Tensor, value_states: Tensor) -> None:
        batch, heads, _, head_dim = key_states.shape
        self.dtype, self.device = key_states.dtype, key_states.device
        self.key_buffer = key_states.new_empty(batch, heads, self.capacity, head_dim)       # (B, H, capacity, D)
        self.value_buffer = value_states.new_empty(batch, heads, self.capacity, value_states.shape[-1])
        self.is_initialized = True

    def update(self, key_states: Tensor, value_states: Tensor, *args, **kwargs) -> tuple[Tensor, Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.length + key_states.shape[-2]
        assert end <= self.capacity, f"cache of {self.capacity} tokens is full"
        self.key_buffer[:, :, self.length:end] = key_states
        self.value_buffer[:, :, self.length:end] = value_states
        self.length = end
        self.keys, self.values = self.key_buffer[:, :, :end], self.value_buffer[:, :, :end]
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def batch_select_indices(self, indices: Tensor) -> None:
        self.key_buffer, self.value_buffer = self.key_buffer[indices], self.value_buffer[indices]
        self.keys, self.values = self.key_buffer[:, :, :self.length], self.value_buffer[:, :, :self.length]

"""A decode fast path for Llama-family causal LMs (Llama, Mistral, Qwen2): the sampler's forward without Hugging Face's.

Sampling a batch of 16 from the benchmark model is bound by the model's linear layers (16 rows against every
weight, each step). `LlamaDecoder` reads the weights once per `sample_tokens` call from the HF modules: q/k/v fused
into one matrix and gate/up into another, prepacked for oneDNN on CPU (`Linear`: most of the gain); it keeps keys
and values in preallocated buffers, looks the rotary cos/sin up in a table, runs the prefill's linear layers on the
prompt tokens only (no padded rows), and runs a decode step as a plain loop of tensor ops (no per-step 4-D mask,
cache objects or output dataclasses). It computes what the HF forward computes, in fp32, up to summation order;
`tests/test_sampling_fast.py` checks per-step logits, greedy tokens and sampled tokens against the HF forward.

`llama_decoder` returns None for anything it does not handle — another architecture, PEFT-wrapped or quantised
linear layers, weights other than fp32, attention dropout in training mode, rotary scalings that depend on the
sequence length, sliding windows shorter than the generation — and the sampler then uses the model's own forward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

FAMILIES = {"llama", "mistral", "qwen2"}
"""config.model_type values whose decoder layer is Llama's: pre-norm RMSNorm (weight · x̂), rotary attention with
optional q/k/v bias, SiLU-gated MLP. The module check below cannot tell e.g. Gemma's (1 + weight) norm apart."""
STATIC_ROPE = {"default", "linear", "llama3"}
"""Rotary types whose inverse frequencies do not depend on the sequence length: read once from the model."""

_LAYER_PARTS = {"self_attn", "mlp", "input_layernorm", "post_attention_layernorm"}
_ATTENTION_PARTS = {"q_proj", "k_proj", "v_proj", "o_proj"}
_MLP_PARTS = {"gate_proj", "up_proj", "down_proj", "act_fn"}


def llama_decoder(model, capacity: int) -> LlamaDecoder | None:
    """A LlamaDecoder over `model`'s current weights for up to `capacity` tokens per row, or None if the model is
    not one it reproduces exactly."""
    config = model.config
    if config.model_type not in FAMILIES or config.hidden_act != "silu" or type(model.lm_head) is not nn.Linear:
        return None
    if model.dtype != torch.float32:   # HF upcasts norms and rotary to fp32 in bf16/fp16 models; not reproduced here
        return None
    if model.training and config.attention_dropout > 0:
        return None
    body = model.model
    if set(dict(body.named_children())) != {"embed_tokens", "layers", "norm", "rotary_emb"}:
        return None
    if type(body.embed_tokens) is not nn.Embedding or body.rotary_emb.rope_type not in STATIC_ROPE:
        return None
    window = config.sliding_window if config.model_type != "llama" else None
    if window is not None and config.model_type == "qwen2" and not config.use_sliding_window:
        window = None
    if window is not None and capacity > window:
        return None
    for layer in body.layers:
        attention, mlp = layer.self_attn, layer.mlp
        if (set(dict(layer.named_children())) != _LAYER_PARTS
                or set(dict(attention.named_children())) != _ATTENTION_PARTS
                or set(dict(mlp.named_children())) != _MLP_PARTS
                or any(type(m) is not nn.Linear for m in (*attention.children(), mlp.gate_proj, mlp.up_proj,
                                                         mlp.down_proj))):
            return None
    return LlamaDecoder(model, capacity)


class Linear:
    """y = x·Wᵀ + b for one or several nn.Linear of the same input (fused: their outputs side by side).

    On CPU in fp32 the weight is prepacked once for oneDNN (its blocked layout, as torch.compile's freezing pass
    does): PyTorch's default CPU fp32 matmul is MKL, and with the 16 rows of a decode step on this machine's AMD
    EPYC (AVX-512) MKL took 0.70 ms for a 1536 × 512 weight not in cache where prepacked oneDNN took 0.40 ms; the
    linear layers are most of a decode step. Elsewhere (GPU, no oneDNN) it is F.linear on the concatenated weight.
    """

    def __init__(self, *linears: nn.Linear):
        weight = torch.cat([m.weight.detach() for m in linears])                           # (out, in)
        self.bias = (None if all(m.bias is None for m in linears) else
                     torch.cat([m.bias.detach() if m.bias is not None else m.weight.new_zeros(m.out_features)
                                for m in linears]))
        self.onednn = (weight.device.type == "cpu" and weight.dtype == torch.float32
                       and torch.backends.mkldnn.is_available())
        self.weight = torch.ops.mkldnn._reorder_linear_weight(weight, 16) if self.onednn else weight

    def __call__(self, x: Tensor) -> Tensor:
        if self.onednn:
            return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [], "")
        return F.linear(x, self.weight, self.bias)


class LlamaDecoder:
    """Prefill and one-token decode steps of a Llama-family model with its own KV buffers.

    Shapes: B rows at prefill, b ≤ B rows still generating, P prompt length, C capacity (P + new tokens),
    H query heads, G = H / Hkv query heads per key/value head, D head dim, V vocab.
    """

    def __init__(self, model, capacity: int):
        config, body = model.config, model.model
        self.capacity = capacity
        self.heads, self.kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.head_dim = body.layers[0].self_attn.head_dim
        self.eps = config.rms_norm_eps
        self.embed = body.embed_tokens.weight.detach()
        self.final_norm = body.norm.weight.detach()
        self.lm_head = Linear(model.lm_head)
        self.layers = [dict(in_norm=layer.input_layernorm.weight.detach(),
                            qkv=Linear(layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj),
                            out=Linear(layer.self_attn.o_proj),
                            mlp_norm=layer.post_attention_layernorm.weight.detach(),
                            gate_up=Linear(layer.mlp.gate_proj, layer.mlp.up_proj),
                            down=Linear(layer.mlp.down_proj))
                       for layer in body.layers]
        # cos/sin as LlamaRotaryEmbedding computes them (fp32 position · inv_freq, duplicated halves, scaled), for
        # every position up to the capacity; sin carries rotate_half's sign so that rotation = x·cos + roll(x)·sin.
        rotary = body.rotary_emb
        freqs = torch.arange(capacity, dtype=torch.float, device=self.embed.device)[:, None] * rotary.inv_freq.float()
        angles = torch.cat([freqs, freqs], dim=-1)                                         # (C, D)
        self.cos = (angles.cos() * rotary.attention_scaling).to(self.embed.dtype)
        sin = angles.sin() * rotary.attention_scaling
        self.sin = torch.cat([-sin[:, :self.head_dim // 2], sin[:, self.head_dim // 2:]], -1).to(self.embed.dtype)
        self.keys: list[Tensor] = []      # per layer (b, Hkv, C, D)
        self.values: list[Tensor] = []    # per layer (b, Hkv, C, D)
        self.key_bias = torch.empty(0)    # (b, C) 0 where a key may be attended, -inf on left padding
        self.length = 0                   # filled cache slots (the same for every row)

    def _norm(self, x: Tensor, weight: Tensor) -> Tensor:
        return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))

    def _rotate(self, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        """Rotary embedding of x (..., D) with cos/sin broadcastable to it."""
        return x * cos + x.roll(self.head_dim // 2, -1) * sin

    def _qkv(self, layer: dict, x: Tensor, cos: Tensor, sin: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Rotated queries (..., H, D), rotated keys and values (..., Hkv, D) of hidden states x (..., hidden)."""
        qkv = layer["qkv"](self._norm(x, layer["in_norm"]))
        qk = qkv[..., :(self.heads + self.kv_heads) * self.head_dim].unflatten(-1, (-1, self.head_dim))
        qk = self._rotate(qk, cos, sin)
        v = qkv[..., (self.heads + self.kv_heads) * self.head_dim:].unflatten(-1, (self.kv_heads, self.head_dim))
        return qk[..., :self.heads, :], qk[..., self.heads:, :], v

    def _rest_of_layer(self, layer: dict, x: Tensor, attended: Tensor) -> Tensor:
        """The residual stream after attention output `attended` (..., H·D) and the MLP."""
        x = x + layer["out"](attended)
        gate, up = layer["gate_up"](self._norm(x, layer["mlp_norm"])).chunk(2, -1)
        return x + layer["down"](F.silu(gate) * up)

    def _logits(self, x: Tensor) -> Tensor:
        return self.lm_head(self._norm(x, self.final_norm))

    def prefill(self, prompt: Tensor, prompt_mask: Tensor, positions: Tensor) -> Tensor:
        """Run the left-padded prompts (B, P) through the model, fill the cache, and return the logits (B, V) of
        each row's next token."""
        B, P = prompt.shape
        assert P < self.capacity, (P, self.capacity)
        valid = prompt_mask.bool()                                                          # (B, P)
        self.key_bias = torch.zeros(B, self.capacity, dtype=self.embed.dtype, device=prompt.device)
        self.key_bias[:, :P].masked_fill_(~valid, float("-inf"))
        # A query sees earlier non-padding keys; a padding query also sees itself, so its softmax has a term
        # (its output is never used, and its key is masked for everyone else).
        causal = torch.ones(P, P, dtype=torch.bool, device=prompt.device).tril()
        mask = (causal & valid[:, None, :]) | torch.eye(P, dtype=torch.bool, device=prompt.device)   # (B, P, P)
        # The linear layers run on the N prompt tokens only, not on B·P padded positions (a third fewer rows for
        # the benchmark's prompts of 19–48 tokens); attention runs in the padded layout the cache keeps.
        where = valid.flatten().nonzero().squeeze(1)                                        # (N,) into B·P
        cos, sin = self.cos[positions.flatten()[where]][:, None], self.sin[positions.flatten()[where]][:, None]
        x = self.embed[prompt.flatten()[where]]                                             # (N, hidden)

        def padded(t: Tensor) -> Tensor:          # (N, heads, D) → (B, heads, P, D), zeros on padding
            return t.new_zeros(B * P, *t.shape[1:]).index_copy_(0, where, t).view(B, P, *t.shape[1:]).transpose(1, 2)

        self.keys, self.values = [], []
        for layer in self.layers:
            q, k, v = (padded(t) for t in self._qkv(layer, x, cos, sin))                   # (B, *, P, D)
            keys = k.new_empty(B, self.kv_heads, self.capacity, self.head_dim)
            values = v.new_empty(B, self.kv_heads, self.capacity, self.head_dim)
            keys[:, :, :P], values[:, :, :P] = k, v
            self.keys.append(keys)
            self.values.append(values)
            attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None],
                                                      enable_gqa=self.heads != self.kv_heads)  # (B, H, P, D)
            x = self._rest_of_layer(layer, x, attended.transpose(1, 2).reshape(B * P, -1)[where])
        self.length = P
        return self._logits(x[prompt_mask.sum(1).cumsum(0) - 1])       # each row's last token (left padding)

    def step(self, tokens: Tensor, positions: Tensor) -> Tensor:
        """Append one token per row (b,) at positions (b,) and return the next-token logits (b, V)."""
        b, t = tokens.shape[0], self.length
        assert t < self.capacity, f"cache of {self.capacity} tokens is full"
        cos, sin = self.cos[positions][:, None], self.sin[positions][:, None]              # (b, 1, D)
        bias = self.key_bias[:, None, :t + 1, None]                                        # (b, 1, t+1, 1)
        x = self.embed[tokens]                                                              # (b, hidden)
        for layer, keys, values in zip(self.layers, self.keys, self.values):
            q, k, v = self._qkv(layer, x, cos, sin)                                         # (b, H|Hkv, D)
            keys[:, :, t], values[:, :, t] = k, v
            # One query per row: group the H query heads by the key/value head they share (GQA without copies).
            # Reading the cache dominates here; K·q and a weighted sum over V stream it in its memory order
            # (q·Kᵀ and p·V as batched matmuls were 1.5× slower on the benchmark model).
            q = q.view(b, self.kv_heads, self.heads // self.kv_heads, self.head_dim)       # (b, Hkv, G, D)
            scores = keys[:, :, :t + 1] @ q.transpose(2, 3) * self.head_dim ** -0.5        # (b, Hkv, t+1, G)
            weights = (scores + bias).softmax(2)                                            # (b, Hkv, t+1, G)
            attended = (values[:, :, :t + 1, None] * weights[..., None]).sum(2)            # (b, Hkv, G, D)
            x = self._rest_of_layer(layer, x, attended.reshape(b, -1))
        self.length = t + 1
        return self._logits(x)

    def select(self, rows: Tensor) -> None:
        """Keep only these rows (indices into the current rows) in the cache."""
        self.keys = [k[rows] for k in self.keys]
        self.values = [v[rows] for v in self.values]
        self.key_bias = self.key_bias[rows]

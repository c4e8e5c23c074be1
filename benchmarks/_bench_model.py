"""The benchmark model: a random-weight Llama of ~28M parameters (hidden 512, 6 layers, vocab 8192), and prompts for it.

Shared by every benchmark under benchmarks/ so their figures are about the same model. Random weights are enough:
speed does not depend on what the weights say. Prompts are random token ids (no tokenizer needed).
`SHAPES["gym"]` is the shape of the gym's ~1M-parameter base model, where per-step overhead rather than matmuls
dominates.
"""

from __future__ import annotations

import math

import torch
from transformers import LlamaConfig, LlamaForCausalLM

SHAPES = {   # name → (hidden, layers, heads, intermediate, vocab)
    "bench": (512, 6, 8, 1408, 8192),
    "gym": (128, 4, 4, 384, 2048),
    "1b": (2048, 16, 16, 5632, 32000),     # ~1.1B parameters (TinyLlama's shape): the GPU check (scripts/gpu_check.sh)
}
VOCAB = SHAPES["bench"][4]
PAD_ID, BOS_ID, EOS_ID = 0, 1, 2   # ids reserved for special tokens; prompts never contain them


def bench_model(seed: int = 0, eos_rate: float | None = None, shape: str = "bench") -> LlamaForCausalLM:
    """The fp32 Llama of `SHAPES[shape]` (default: ~28M parameters) in eval mode, random init from `seed`.

    A random model almost never samples EOS (p ≈ 1/8192). `eos_rate` gives the output layer a bias so that each
    sampled token is EOS with about that probability, i.e. response lengths are geometric with mean 1/eos_rate:
    the realistic case where rows stop at different times.
    """
    hidden, layers, heads, intermediate, vocab = SHAPES[shape]
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
                         num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=512,
                         pad_token_id=PAD_ID, bos_token_id=BOS_ID, eos_token_id=EOS_ID, tie_word_embeddings=False)
    model = LlamaForCausalLM(config).eval()
    if eos_rate is not None:
        # Logits of a random model are ≈ 0, so a bias b on EOS gives p(EOS) ≈ e^b / (V - 1 + e^b).
        head = torch.nn.Linear(config.hidden_size, vocab, bias=True)
        with torch.no_grad():
            head.weight.copy_(model.lm_head.weight)
            head.bias.zero_()
            head.bias[EOS_ID] = math.log(eos_rate * (vocab - 1) / (1 - eos_rate))
        model.lm_head = head
    return model


def bench_prompt_ids(n: int, min_len: int = 16, max_len: int = 48, seed: int = 0,
                     shape: str = "bench") -> list[list[int]]:
    """`n` prompts of random non-special token ids of the shape's vocabulary, lengths uniform in [min_len, max_len]."""
    vocab = SHAPES[shape][4]
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(min_len, max_len + 1, (n,), generator=g).tolist()
    return [torch.randint(3, vocab, (length,), generator=g).tolist() for length in lengths]


def allocator() -> str:
    """Which malloc this process uses, read from its memory map: 'tcmalloc', 'jemalloc' or 'glibc'."""
    with open("/proc/self/maps") as f:
        maps = f.read()
    for name in ("tcmalloc", "jemalloc"):
        if name in maps:
            return name
    return "glibc"

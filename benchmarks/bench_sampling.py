"""Sampling throughput: alignlab.sampling.sample_tokens against Hugging Face `generate(do_sample=True)`.

Both sides sample the same prompts from the same ~28M random Llama (benchmarks/_bench_model.py) at the same settings
(temperature 1, no top-k, top-p 1, fp32, KV cache), alternating ours/HF within each round of one process, because
the machine drifts by tens of percent over minutes: only the per-round ratios are meaningful.

Two cases:
- forced: every row generates all `--new-tokens` (the EOS id is outside the vocabulary on both sides), so both sides
  produce exactly the same number of tokens;
- early stop: the model emits EOS with probability `--eos-rate` per token (geometric lengths); throughput counts
  the tokens each side actually kept (up to and including each row's EOS).

Our sampler runs twice: as shipped ("ours": the Llama decode fast path of alignlab/sampling_fast.py for this
model) and through the model's own Hugging Face forward ("ours_hf_forward", fast=False: what any other model gets).

Run:  .venv/bin/python benchmarks/bench_sampling.py
      LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 .venv/bin/python benchmarks/bench_sampling.py
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass

import torch
from _bench_model import EOS_ID, PAD_ID, SHAPES, allocator, bench_model, bench_prompt_ids

from alignlab.sampling import sample_tokens


@dataclass
class Timing:
    tokens: int      # generated tokens kept (up to and including each row's EOS)
    wall_s: float
    cpu_s: float     # process CPU time: less disturbed by other jobs on a shared machine than wall time


def run_ours(model, prompts: list[list[int]], new_tokens: int, eos: int, seed: int, fast: bool = True) -> int:
    batch = sample_tokens(model, prompts, max_new_tokens=new_tokens, temperature=1.0, eos_token_id=eos,
                          pad_token_id=PAD_ID, generator=torch.Generator().manual_seed(seed), fast=fast)
    return int(batch.response_mask.sum())


def run_ours_hf_forward(model, prompts: list[list[int]], new_tokens: int, eos: int, seed: int) -> int:
    """The same sampler through the model's own Hugging Face forward (fast=False): what the fast path adds."""
    return run_ours(model, prompts, new_tokens, eos, seed, fast=False)


def run_hf(model, prompts: list[list[int]], new_tokens: int, eos: int, seed: int) -> int:
    P = max(len(p) for p in prompts)
    input_ids = torch.tensor([[PAD_ID] * (P - len(p)) + p for p in prompts])        # (B, P) left-padded
    attention_mask = (torch.arange(P)[None, :] >= torch.tensor([P - len(p) for p in prompts])[:, None]).long()
    torch.manual_seed(seed)
    out = model.generate(input_ids=input_ids, attention_mask=attention_mask, do_sample=True, temperature=1.0,
                         top_k=0, top_p=1.0, max_new_tokens=new_tokens, eos_token_id=eos, pad_token_id=PAD_ID)
    response = out[:, P:]                                                            # (B, A)
    # HF pads finished rows with pad; count each row up to and including its first EOS.
    is_eos = response == eos
    lengths = torch.where(is_eos.any(1), is_eos.int().argmax(1) + 1, response.shape[1])
    return int(lengths.sum())


def timed(fn, *args) -> Timing:
    wall, cpu = time.perf_counter(), time.process_time()
    tokens = fn(*args)
    return Timing(tokens, time.perf_counter() - wall, time.process_time() - cpu)


def bench_case(model, prompts, new_tokens: int, eos: int, rounds: int) -> dict[str, list[Timing]]:
    """Run the sides in turn `rounds` times (after one warm-up each); the order within a round is reversed every
    other round."""
    sides = {"ours": run_ours, "ours_hf_forward": run_ours_hf_forward, "hf": run_hf}
    timings: dict[str, list[Timing]] = {name: [] for name in sides}
    for name in sides:
        sides[name](model, prompts, new_tokens, eos, 0)
    for r in range(rounds):
        order = list(sides) if r % 2 == 0 else list(sides)[::-1]
        for name in order:
            timings[name].append(timed(sides[name], model, prompts, new_tokens, eos, r + 1))
        print(f"  round {r + 1}: " + "  ".join(f"{name} {timings[name][-1].tokens} tokens in "
                                              f"{timings[name][-1].wall_s:.1f}s (cpu {timings[name][-1].cpu_s:.1f}s)"
                                              for name in sides), flush=True)
    return timings


def summary_row(case: str, timings: dict[str, list[Timing]], ours: str = "ours") -> str:
    """One table row: side `ours` against HF generate."""
    tps = {name: [t.tokens / t.wall_s for t in ts] for name, ts in timings.items()}
    cpu_tps = {name: [t.tokens / t.cpu_s for t in ts] for name, ts in timings.items()}
    ratios = [o / h for o, h in zip(tps[ours], tps["hf"])]
    cpu_ratios = [o / h for o, h in zip(cpu_tps[ours], cpu_tps["hf"])]
    tokens = {name: statistics.median(t.tokens for t in ts) for name, ts in timings.items()}
    return (f"| {case} | {ours} | {statistics.median(tps[ours]):.0f} | {statistics.median(tps['hf']):.0f} | "
            f"**{statistics.median(ratios):.2f}×** ({min(ratios):.2f}–{max(ratios):.2f}) | "
            f"{statistics.median(cpu_ratios):.2f}× ({min(cpu_ratios):.2f}–{max(cpu_ratios):.2f}) | "
            f"{tokens[ours]:.0f} / {tokens['hf']:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="bench",
                        help="bench: the ~28M model of the issue; gym: the gym's ~1M base-model shape")
    parser.add_argument("--eos-rate", type=float, default=1 / 32, help="P(EOS) per token in the early-stop case")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    prompts = bench_prompt_ids(args.batch, shape=args.shape)
    never = SHAPES[args.shape][4]     # an EOS id outside the vocabulary: no row stops early
    with torch.inference_mode():
        forced = bench_case(bench_model(shape=args.shape), prompts, args.new_tokens, eos=never, rounds=args.rounds)
        early = bench_case(bench_model(eos_rate=args.eos_rate, shape=args.shape), prompts, args.new_tokens,
                           eos=EOS_ID, rounds=args.rounds)
    print(f"model: {args.shape} {SHAPES[args.shape]} (hidden, layers, heads, intermediate, vocab)")
    print(f"allocator: {allocator()}   torch {torch.__version__}   threads {torch.get_num_threads()}   "
          f"batch {args.batch} × {args.new_tokens} new tokens   {args.rounds} alternating rounds   "
          f"prompt lengths {min(map(len, prompts))}–{max(map(len, prompts))}")
    print("| case | sampler | ours tok/s | HF generate tok/s | ours / HF (wall; min–max over rounds) "
          "| ours / HF (CPU time; min–max) | tokens kept ours / HF |")
    print("|---|---|---|---|---|---|---|")
    for case, timings in ((f"forced {args.new_tokens} tokens", forced),
                          (f"early stop (p(EOS) = {args.eos_rate:.3g})", early)):
        for ours in ("ours", "ours_hf_forward"):
            print(summary_row(case, timings, ours))


if __name__ == "__main__":
    main()

"""Training throughput of alignlab against TRL: SFT, reward model, DPO (TRL default and TRL with its fast options).

Both sides train the same ~28M random Llama (benchmarks/_bench_model.py) on the same generated files (prompts of
30–100 tokens, responses of 15–130, a word-level tokenizer so that one word is one token), fp32, batch 8, max
length 256, `--threads` threads, the same malloc (LD_PRELOAD, `--allocator`). Every run is a fresh subprocess; the
runs of one round alternate alignlab/TRL (the order flips every round) and the table reports the median over rounds
of the per-round ratio, because this shared machine drifts by tens of percent over an hour.

Measured identically on both sides, by hooks installed in the child before either library runs:
- tokens: non-padding tokens of the *trained* model's forward passes (the Llama body's forward with grad enabled:
  reference and precompute forwards run without grad and are not counted; checkpointed recomputation happens
  inside the layers and is not counted twice);
- steps: a global optimizer step post-hook; throughput = tokens of steps 3..N / their wall time (first 2 excluded);
- peak memory: the child's peak resident set size (getrusage);
- MFU: 6 × parameters × tokens/s over the fp32 matmul peak (2 × 2048³ FLOPs per torch.mm, best of several),
  measured in each round of the same invocation.

GPU:      --device cuda --precision bf16 --shape 1b (a ~1.1B Llama; bf16 autocast over fp32 weights on both sides,
          peak memory = torch.cuda.max_memory_allocated, MFU over the measured bf16 matmul peak): scripts/gpu_check.sh

Run:      .venv/bin/python benchmarks/bench_training.py                  (3 rounds, every case; ~30 min idle)
Smoke:    .venv/bin/python benchmarks/bench_training.py --quick          (1 round, 4 steps)
Subset:   .venv/bin/python benchmarks/bench_training.py --cases dpo --rounds 3 --runs alignlab:dpo: trl:dpo:fast
Needs TRL: pip install -e .[bench]   (or pip install trl)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"

# Each row of the table: (loop, alignlab run, other run), a run being "side:loop:variant" (the variants are described
# in _alignlab_side.py and _trl_side.py). alignlab's '' variant is the shipped defaults (length-grouped batches, the
# LM head only where a counted token is predicted, DPO: cached reference log-probs). TRL: "fast" = precomputed
# reference log-probs; "nogc" = without its default gradient checkpointing. The alignlab-vs-alignlab rows switch one
# fast path off ("ungrouped", "full_head") to show what it is worth.
ROWS = [
    ("sft", "alignlab:sft:", "trl:sft:"),
    ("rm", "alignlab:rm:", "trl:rm:"),
    ("dpo", "alignlab:dpo:", "trl:dpo:"),
    ("dpo", "alignlab:dpo:", "trl:dpo:fast"),
    ("dpo", "alignlab:dpo:", "trl:dpo:fast_nogc"),
    ("dpo", "alignlab:dpo:", "alignlab:dpo:ungrouped"),
    ("dpo", "alignlab:dpo:", "alignlab:dpo:full_head"),
]
# --extra: the other fast paths switched off and TRL's other settings, each against the same round's alignlab
# default run.
EXTRA_ROWS = [
    ("sft", "alignlab:sft:", "trl:sft:gc"),
    ("sft", "alignlab:sft:", "alignlab:sft:ungrouped"),
    ("sft", "alignlab:sft:", "alignlab:sft:full_head"),
    ("rm", "alignlab:rm:", "trl:rm:gc"),
    ("rm", "alignlab:rm:", "alignlab:rm:ungrouped"),
    ("dpo", "alignlab:dpo:", "alignlab:dpo:no_cache"),
    ("dpo", "alignlab:dpo:", "trl:dpo:nogc"),
]
LOOPS = ["dpo", "sft", "rm"]


# ---------------------------------------------------------------------------------------------------------------
# The benchmark files


def word_tokenizer(shape: str = "bench"):
    """A word-level tokenizer of the benchmark vocabulary: "t5 t17" → [BOS, 5, 17], so one word is one token and
    both libraries see exactly the lengths the generator drew."""
    from _bench_model import BOS_ID, EOS_ID, PAD_ID, SHAPES
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = {"<pad>": PAD_ID, "<s>": BOS_ID, "</s>": EOS_ID}
    vocab = specials | {f"t{i}": i for i in range(len(specials), SHAPES[shape][4])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    # A fresh sequence starts with BOS, as a Llama tokenizer's does.
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B",
                                                       special_tokens=[("<s>", BOS_ID)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


def write_workdir(work: Path, n_examples: int, seed: int = 0, shape: str = "bench") -> None:
    """model/ (weights + word-level tokenizer), sft.jsonl and pairs.jsonl with `n_examples` lines each."""
    import torch
    from _bench_model import SHAPES, bench_model

    vocab = SHAPES[shape][4]
    tokenizer = word_tokenizer(shape)
    with torch.no_grad():
        model = bench_model(seed, shape=shape)
    model.save_pretrained(work / "model")
    tokenizer.save_pretrained(work / "model")

    rng = random.Random(seed)
    text = lambda lo, hi: " ".join(f"t{rng.randrange(3, vocab)}" for _ in range(rng.randint(lo, hi)))  # noqa: E731
    with open(work / "sft.jsonl", "w") as sft, open(work / "pairs.jsonl", "w") as pairs:
        for _ in range(n_examples):
            prompt = text(30, 100)
            sft.write(json.dumps({"prompt": prompt, "completion": " " + text(15, 130)}) + "\n")
            pairs.write(json.dumps({"prompt": prompt, "chosen": " " + text(15, 130),
                                    "rejected": " " + text(15, 130)}) + "\n")


# ---------------------------------------------------------------------------------------------------------------
# The child: one run, measured by hooks


@dataclass
class Meter:
    tokens: int = 0                       # trained-model tokens since the last optimizer step
    params: int = 0                       # parameters of the trained model (the largest body seen with grad)

    def __post_init__(self):
        self.steps: list[tuple[float, int, float, float]] = []   # (wall, tokens, user cpu, system cpu) per step

    def install(self) -> None:
        import torch
        from torch.optim.optimizer import register_optimizer_step_post_hook
        from transformers.models.llama.modeling_llama import LlamaModel

        forward = LlamaModel.forward
        meter = self

        def counted_forward(model, *args, **kwargs):
            if torch.is_grad_enabled():
                mask, ids = kwargs.get("attention_mask"), kwargs.get("input_ids", args[0] if args else None)
                meter.tokens += int(mask.sum()) if mask is not None and mask.dim() == 2 else ids.numel()
                meter.params = sum(p.numel() for p in model.parameters())
            return forward(model, *args, **kwargs)

        LlamaModel.forward = counted_forward

        def on_step(optimizer, args, kwargs):
            times = os.times()
            self.steps.append((time.perf_counter(), self.tokens, times.user, times.system))
            self.tokens = 0

        register_optimizer_step_post_hook(on_step)

    def result(self, skip: int = 2) -> dict:
        assert len(self.steps) > skip + 1, f"only {len(self.steps)} optimizer steps were seen"
        (t0, _, u0, s0), (t1, _, u1, s1) = self.steps[skip - 1], self.steps[-1]
        tokens = sum(n for _, n, _, _ in self.steps[skip:])
        return {"tokens_per_s": tokens / (t1 - t0), "step_s": (t1 - t0) / (len(self.steps) - skip),
                "tokens_per_step": tokens / (len(self.steps) - skip), "user_s": u1 - u0, "system_s": s1 - s0,
                "steps": len(self.steps)}


def child(run: str, work: Path, steps: int, threads: int) -> None:
    import torch
    from _bench_model import SHAPES
    torch.set_num_threads(threads)
    side, loop, variant = run.split(":")
    meter = Meter()
    meter.install()
    module = __import__("_alignlab_side" if side == "alignlab" else "_trl_side")
    with tempfile.TemporaryDirectory(dir=work) as out_dir:
        module.CASES[loop](work, Path(out_dir) / "run", steps, variant)
    from _bench_model import allocator
    # Parameters of the trained model: the body, plus the LM head for the loops that train one (not the RM's 1-wide
    # head, which is negligible).
    shape = os.environ.get("BENCH_SHAPE", "bench")
    hidden, vocab = SHAPES[shape][0], SHAPES[shape][4]
    params = meter.params + (0 if loop == "rm" else hidden * vocab)
    result = meter.result() | {"params": params, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                               "allocator": allocator(), "threads": torch.get_num_threads()}
    if torch.cuda.is_available() and os.environ.get("BENCH_DEVICE") == "cuda":
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
    print("RESULT " + json.dumps(result), flush=True)


def matmul_peak(threads: int) -> None:
    """Best GFLOP/s of torch.mm in the benchmark's precision (fp32, or bf16: on a GPU the tensor cores' peak as it
    reaches it), on 2048×2048 matrices on the CPU, 8192×8192 on a GPU (--device cuda)."""
    import torch
    torch.set_num_threads(threads)
    cuda = os.environ.get("BENCH_DEVICE") == "cuda"
    n = 8192 if cuda else 2048
    dtype = torch.bfloat16 if os.environ.get("BENCH_PRECISION") == "bf16" else torch.float32
    a, b = (torch.randn(n, n, device="cuda" if cuda else "cpu", dtype=dtype) for _ in range(2))
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    torch.mm(a, b)
    sync()
    best = 0.0
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(3):
            torch.mm(a, b)
        sync()
        best = max(best, 3 * 2 * n ** 3 / (time.perf_counter() - start) / 1e9)
    print("RESULT " + json.dumps({"gflops": best}), flush=True)


# ---------------------------------------------------------------------------------------------------------------
# The parent: rounds of alternating runs, then the table


def launch(argv: list[str], env: dict[str, str], log: Path, script: Path = Path(__file__)) -> dict | None:
    """Run one child (of `script`, this file by default); its RESULT line, or None (and its output's tail on
    stderr) when it failed."""
    out = subprocess.run([sys.executable, str(script.resolve()), *argv], env=env, capture_output=True, text=True)
    log.write_text(out.stdout + out.stderr)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode or not lines:
        print(f"FAILED: {' '.join(argv)} (exit {out.returncode}):\n{(out.stdout + out.stderr)[-3000:]}",
              file=sys.stderr, flush=True)
        return None
    return json.loads(lines[-1].removeprefix("RESULT "))


def child_env(allocator: str, threads: int, device: str = "cpu", precision: str = "fp32",
              shape: str = "bench") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    env |= {"BENCH_DEVICE": device, "BENCH_PRECISION": precision, "BENCH_SHAPE": shape}
    if allocator == "tcmalloc":
        if not Path(TCMALLOC).exists():
            raise SystemExit(f"{TCMALLOC} is missing: apt-get install -y libtcmalloc-minimal4, or --allocator glibc")
        env["LD_PRELOAD"] = TCMALLOC
    return env | {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "ALIGNLAB_TCMALLOC": "0",
                  "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                  "TRANSFORMERS_VERBOSITY": "error", "PYTHONWARNINGS": "ignore"}


def allocators(results: list[dict[str, dict]], side: str) -> str:
    """The malloc(s) the runs of one side ('alignlab' or 'trl') used, as their children reported it."""
    return "/".join(sorted({res["allocator"] for rr in results for run, res in rr.items()
                            if res is not None and run.startswith(side + ":")})) or "-"


def table(results: list[dict[str, dict]], peaks: list[float], rows: list[tuple[str, str, str]]) -> str:
    """One line per row: medians over rounds of each run, and the median (min–max) of the per-round ratios."""
    peak = statistics.median(peaks)

    def med(run: str, key: str) -> float:
        return statistics.median(r[run][key] for r in results)

    def cpu_tps(result: dict) -> float:
        return result["tokens_per_s"] * result["step_s"] * (result["steps"] - 2) / (result["user_s"] + result["system_s"])

    memory = ("peak_gpu_mb" if any(res and "peak_gpu_mb" in res for rr in results for res in rr.values())
              else "peak_rss_mb")
    precision = os.environ.get("BENCH_PRECISION", "fp32")

    def mfu(run: str) -> str:
        return f"{100 * 6 * results[0][run]['params'] * med(run, 'tokens_per_s') / (peak * 1e9):.1f}%"

    def sys_share(run: str) -> str:
        return f"{100 * statistics.median(r[run]['system_s'] / (r[run]['user_s'] + r[run]['system_s']) for r in results):.0f}%"

    rows = [row for row in rows if all(r[run] is not None for r in results for run in row[1:])]
    lines = [f"| loop | alignlab run (malloc: {allocators(results, 'alignlab')}) | vs run (malloc: TRL "
             f"{allocators(results, 'trl')}) | alignlab tok/s | other tok/s | **ratio, wall** (min–max) | "
             f"ratio, CPU time | {'peak GPU MB' if memory == 'peak_gpu_mb' else 'peak RSS MB'} | MFU ({precision} "
             f"matmul peak {peak:.1f} GFLOP/s) | kernel share of CPU time |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for loop, a, b in rows:
        wall = [r[a]["tokens_per_s"] / r[b]["tokens_per_s"] for r in results]
        cpu = [cpu_tps(r[a]) / cpu_tps(r[b]) for r in results]
        lines.append(f"| {loop} | `{a}` | `{b}` | {med(a, 'tokens_per_s'):.0f} | {med(b, 'tokens_per_s'):.0f} | "
                     f"**{statistics.median(wall):.2f}×** ({min(wall):.2f}–{max(wall):.2f}) | "
                     f"{statistics.median(cpu):.2f}× | {med(a, memory):.0f} / {med(b, memory):.0f} | "
                     f"{mfu(a)} / {mfu(b)} | {sys_share(a)} / {sys_share(b)} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", nargs="+", choices=LOOPS, default=LOOPS, help="loops to benchmark")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8, help="optimizer steps per run (the first 2 are not timed)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--allocator", choices=["tcmalloc", "glibc"], default="tcmalloc")
    parser.add_argument("--runs", nargs="+", metavar="SIDE:LOOP:VARIANT",
                        help="keep only the rows whose two runs are both among these (e.g. alignlab:dpo: trl:dpo:fast)")
    parser.add_argument("--extra", action="store_true", help="also alignlab's slow paths and TRL's other settings")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 round of 4 steps")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                        help="bf16: autocast over fp32 weights on both sides (TRL's bf16=True)")
    parser.add_argument("--shape", choices=["bench", "1b"], default="bench", help="the model (_bench_model.SHAPES)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when any run failed (the GPU check)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.steps = 1, 4
    return args


def main() -> None:
    args = parse_args()
    if args.child == "peak":
        return matmul_peak(args.threads)
    if args.child:
        return child(args.child, args.work, args.steps, args.threads)

    env = child_env(args.allocator, args.threads, args.device, args.precision, args.shape)
    os.environ["BENCH_PRECISION"] = args.precision          # the table's label
    with tempfile.TemporaryDirectory(prefix="alignlab-bench-") as tmp:
        work = Path(tmp)
        write_workdir(work, n_examples=args.steps * 8, shape=args.shape)
        rows = [row for case in args.cases for row in ROWS + (EXTRA_ROWS if args.extra else []) if row[0] == case
                and (args.runs is None or set(row[1:]) <= set(args.runs))]
        if not rows:
            raise SystemExit(f"no table row compares two of --runs {args.runs}; see ROWS in {__file__}")
        runs = list(dict.fromkeys(run for row in rows for run in row[1:]))
        results, peaks = [], []
        started = time.time()
        for r in range(args.rounds):
            peaks.append(launch(["--child", "peak", "--threads", str(args.threads)], env, work / "peak.log")["gflops"])
            order = runs if r % 2 == 0 else runs[::-1]
            round_results = {}
            for run in order:
                round_results[run] = launch(["--child", run, "--work", str(work), "--steps", str(args.steps),
                                             "--threads", str(args.threads)], env, work / "child.log")
                if round_results[run] is not None:
                    print(f"round {r + 1} {run}: {round_results[run]['tokens_per_s']:.0f} tok/s, "
                          f"{round_results[run].get('peak_gpu_mb', round_results[run]['peak_rss_mb']):.0f} MB",
                          file=sys.stderr, flush=True)
            results.append(round_results)
            report(args, results, peaks, rows, runs, started)    # after every round: a cut-off run still reports
        failed = [run for rr in results for run, res in rr.items() if res is None]
        if failed and args.strict:
            raise SystemExit(f"{len(failed)} run(s) failed: {', '.join(failed)} (their output is above)")


def report(args, results: list[dict], peaks: list[float], rows, runs: list[str], started: float) -> None:
    import torch
    import transformers
    import trl
    params = {res["params"] for rr in results for res in rr.values() if res is not None}
    print(f"\n## after {len(results)} of {args.rounds} rounds\nallocator: alignlab {allocators(results, 'alignlab')}, "
          f"TRL {allocators(results, 'trl')}   threads "
          f"{args.threads}   torch {torch.__version__}   transformers {transformers.__version__}   trl "
          f"{trl.__version__}   {args.steps} steps per run (2 not timed)   {time.time() - started:.0f} s so far   "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{args.precision} matmul peak on {args.device}: {statistics.median(peaks):.1f} GFLOP/s (per round: "
          f"{', '.join(f'{p:.1f}' for p in peaks)}); trained parameters: "
          f"{', '.join(f'{p / 1e6:.1f}M' for p in sorted(params))}")
    print(table(results, peaks, rows))
    print("per-round tokens/s: " + json.dumps({run: [round(r[run]["tokens_per_s"]) if r[run] else None
                                                     for r in results] for run in runs}), flush=True)


if __name__ == "__main__":
    main()

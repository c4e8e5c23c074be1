"""One RLOO iteration: alignlab's PPO loop in RLOO mode against TRL's RLOOTrainer, on CPU, in the same invocation.

Both sides train the ~28M random Llama of benchmarks/_bench_model.py (fp32, `--threads` threads, the same malloc)
on the same 16 prompts (random word tokens, 16–48 tokens, one word = one token: bench_training's word tokenizer),
2 samples per prompt, 64 new tokens at temperature 1 (the random model never emits EOS, so every response is 64
tokens on both sides), reward = a deterministic function of the response tokens (`reward`: the share of even token
ids; no reward model on either side), KL coefficient β = 0.05 to a frozen reference (fixed, not adaptive), one
policy-gradient pass over the 32 samples per iteration in micro-batches of 16 (one optimizer step), clip ε = 0.2,
lr 1e-6 linear, clipping at 1, no advantage whitening (TRL's default), no saving or logging integrations.

An iteration is what happens between two optimizer steps: sample 32 responses, score them, the reference's (and,
alignlab, the old policy's) log-probs, forward/backward, the step. It is timed by a global optimizer step post-hook
installed in each fresh child process; seconds per iteration = (last step − first step) / (iterations − 1), so the
first iteration (allocation, warm-up) is not timed. The time spent sampling (alignlab.rollout's sample_tokens, TRL's
model.generate) is measured by wrapping those calls. Peak memory is the child's peak resident set size.

What differs by design: alignlab recomputes the old policy's log-probs with a training-style forward (so the first
ratio is exactly 1); TRL with one pass per generation (num_iterations=1) reuses the current policy's detached
log-probs instead, one forward fewer. TRL turns gradient checkpointing on by default ('trl:' runs it so; 'trl:nogc'
switches it off). 'alignlab:hf_forward' samples through the Hugging Face forward instead of the Llama fast path;
'alignlab:proposed' patches in two changes proposed for the loop (see _proposed_fast_paths).

Run:      .venv/bin/python benchmarks/bench_rl.py                     (2 rounds, 4 iterations per run)
Smoke:    .venv/bin/python benchmarks/bench_rl.py --quick             (1 round, tiny model, 2 iterations)
Needs TRL: pip install -e .[bench]   (or pip install trl)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench_training import child_env, launch, word_tokenizer

RUNS = ["alignlab:", "trl:", "trl:nogc", "alignlab:hf_forward", "alignlab:proposed"]
ROWS = [("alignlab:", "trl:"), ("alignlab:", "trl:nogc"), ("alignlab:", "alignlab:hf_forward"),
        ("alignlab:proposed", "trl:"), ("alignlab:proposed", "trl:nogc")]
LR, BETA, CLIP = 1e-6, 0.05, 0.2


@dataclass
class Setting:
    shape: str = "bench"          # _bench_model.SHAPES key
    prompts: int = 16             # prompts per iteration (= the whole prompt set)
    samples: int = 2              # samples per prompt (RLOO's group)
    new_tokens: int = 64          # response length (no EOS from a random model)
    micro_batch: int = 16         # sequences per forward/backward

    @property
    def batch(self) -> int:
        return self.prompts * self.samples


def reward(responses: list[str]) -> list[float]:
    """The share of even token ids in each response ("t4 t9" → 0.5): cheap, deterministic, the same on both sides."""
    ids = [[int(word[1:]) for word in text.split()] for text in responses]
    return [sum(i % 2 == 0 for i in row) / max(len(row), 1) for row in ids]


def token_reward(prompts, responses: list[str], metas) -> list[float]:
    """`reward` as an alignlab reward function (`reward=benchmarks/bench_rl.py:token_reward`)."""
    return reward(responses)


def write_workdir(work: Path, setting: Setting) -> None:
    """model/ (random weights + word tokenizer) and prompts.jsonl (prompt lines; chosen/rejected only so that
    alignlab's preference reader takes the file as a prompt source)."""
    import torch
    from _bench_model import bench_model, bench_prompt_ids
    with torch.no_grad():
        model = bench_model(0, shape=setting.shape)
    model.save_pretrained(work / "model")
    word_tokenizer().save_pretrained(work / "model")
    with open(work / "prompts.jsonl", "w") as f:
        for ids in bench_prompt_ids(setting.prompts, shape=setting.shape):
            f.write(json.dumps({"prompt": " ".join(f"t{i}" for i in ids), "chosen": " t3", "rejected": " t4"}) + "\n")


# ---------------------------------------------------------------------------------------------------------------
# The two sides


def run_alignlab(work: Path, out_dir: Path, iterations: int, setting: Setting, variant: str) -> None:
    """alignlab.train.ppo.train with advantage=rloo, `reward` given as a reward function (no reward model)."""
    from alignlab import rollout
    from alignlab.config import ModelConfig, OptimConfig, RunConfig
    from alignlab.train import ppo

    if variant == "proposed":
        _proposed_fast_paths(ppo, rollout)
    if variant == "hf_forward":
        sample = rollout.sample_tokens
        rollout.sample_tokens = lambda *args, **kwargs: sample(*args, **kwargs, fast=False)
    cfg = ppo.PPOConfig(
        model=ModelConfig(path=str(work / "model")), reward=f"{Path(__file__).resolve()}:token_reward",
        data=ppo.PromptSourceConfig(source="files", files=[str(work / "prompts.jsonl")]),
        iterations=iterations, prompts_per_iteration=setting.prompts, samples_per_prompt=setting.samples,
        max_new_tokens=setting.new_tokens, advantage="rloo", kl=ppo.KLConfig(adaptive=False, beta=BETA),
        clip_eps=CLIP, ppo_epochs=1, minibatch_size=setting.batch, micro_batch_size=setting.micro_batch,
        whiten_advantages=False, optim=OptimConfig(lr=LR, lr_schedule="linear", max_grad_norm=1.0),
        run=RunConfig(out_dir=str(out_dir), tensorboard=False, progress=False))
    ppo.train(cfg)


def _proposed_fast_paths(ppo, rollout) -> None:
    """Two changes proposed for alignlab/rollout.py and train/ppo.py, measured by patching them in (variant
    'proposed'):
    - π_old: the sampler's own log-probs (the fast path's equal a training forward's within 1e-5) instead of a second
      full policy forward in collect_rollout — the policy is the model whose parameters require grad;
    - entropy: only logged when entropy_coef = 0, so computed without a backward through a (b, A, V) softmax."""
    import torch
    forward, entropy = rollout.response_forward, ppo.entropy_from_logits

    def response_forward(model, batch):
        if not torch.is_grad_enabled() and next(model.parameters()).requires_grad:
            return batch.logps, None
        return forward(model, batch)

    rollout.response_forward = response_forward
    ppo.entropy_from_logits = lambda logits: entropy(logits.detach())


def run_trl(work: Path, out_dir: Path, iterations: int, setting: Setting, variant: str) -> None:
    """TRL's RLOOTrainer: one generation of `batch` samples per optimizer step (steps_per_generation =
    gradient_accumulation_steps), one pass over it (num_iterations=1)."""
    from datasets import Dataset
    from trl import RLOOConfig, RLOOTrainer

    def trl_reward(prompts, completions, **kwargs) -> list[float]:
        return reward(completions)

    args = RLOOConfig(
        output_dir=str(out_dir), per_device_train_batch_size=setting.micro_batch,
        gradient_accumulation_steps=setting.batch // setting.micro_batch, num_generations=setting.samples,
        max_completion_length=setting.new_tokens, temperature=1.0, top_k=0, top_p=1.0, max_steps=iterations,
        learning_rate=LR, lr_scheduler_type="linear", warmup_steps=0, max_grad_norm=1.0, beta=BETA, epsilon=CLIP,
        num_iterations=1, bf16=False, use_cpu=True, gradient_checkpointing=variant != "nogc", save_strategy="no",
        report_to="none", logging_steps=10_000, disable_tqdm=True, dataloader_num_workers=0, seed=0,
        model_init_kwargs={"dtype": "float32"})
    prompts = [json.loads(line)["prompt"] for line in (work / "prompts.jsonl").read_text().splitlines()]
    trainer = RLOOTrainer(model=str(work / "model"), reward_funcs=trl_reward, args=args,
                          train_dataset=Dataset.from_list([{"prompt": p} for p in prompts]),
                          processing_class=word_tokenizer())
    trainer.train()


SIDES = {"alignlab": run_alignlab, "trl": run_trl}


# ---------------------------------------------------------------------------------------------------------------
# The child: one run, timed by hooks


class Clock:
    """Optimizer steps (wall, CPU) and sampling calls (start, seconds), recorded by hooks."""

    def __init__(self):
        self.steps: list[tuple[float, float]] = []          # (wall, user + system CPU) at each optimizer step
        self.sampling: list[tuple[float, float]] = []       # (wall at start, wall seconds) of each sampling call

    def install(self) -> None:
        from torch.optim.optimizer import register_optimizer_step_post_hook
        from transformers.generation.utils import GenerationMixin

        from alignlab import rollout

        def on_step(optimizer, args, kwargs):
            times = os.times()
            self.steps.append((time.perf_counter(), times.user + times.system))

        register_optimizer_step_post_hook(on_step)
        GenerationMixin.generate = self.timed(GenerationMixin.generate)
        rollout.sample_tokens = self.timed(rollout.sample_tokens)

    def timed(self, fn):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            out = fn(*args, **kwargs)
            self.sampling.append((start, time.perf_counter() - start))
            return out
        return wrapper

    def result(self) -> dict:
        """Seconds per iteration after the first, and the share of it spent sampling."""
        assert len(self.steps) >= 2, f"only {len(self.steps)} optimizer steps were seen"
        (t0, c0), (t1, c1) = self.steps[0], self.steps[-1]
        n = len(self.steps) - 1
        sampling = sum(s for start, s in self.sampling if t0 < start < t1)
        return {"iteration_s": (t1 - t0) / n, "iteration_cpu_s": (c1 - c0) / n, "sampling_s": sampling / n,
                "iterations": len(self.steps)}


def child(run: str, work: Path, iterations: int, threads: int, setting: Setting) -> None:
    import torch
    from _bench_model import allocator
    torch.set_num_threads(threads)
    side, variant = run.split(":")
    clock = Clock()
    clock.install()
    with tempfile.TemporaryDirectory(dir=work) as out_dir:
        SIDES[side](work, Path(out_dir) / "run", iterations, setting, variant)
    result = clock.result() | {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                               "allocator": allocator(), "threads": torch.get_num_threads()}
    print("RESULT " + json.dumps(result), flush=True)


# ---------------------------------------------------------------------------------------------------------------
# The parent: alternating rounds of fresh processes, then the table


def table(results: list[dict[str, dict]], rows: list[tuple[str, str]]) -> str:
    """Medians over rounds of each run; ratio = other's seconds per iteration / alignlab's (> 1: alignlab faster)."""
    def med(run: str, key: str) -> float:
        return statistics.median(r[run][key] for r in results)

    rows = [row for row in rows if all(r.get(run) is not None for r in results for run in row)]
    lines = ["| alignlab run | vs run | alignlab s/iteration (sampling) | other s/iteration (sampling) | "
             "**speed-up, wall** (min–max) | speed-up, CPU time | peak RSS MB |", "|---|---|---|---|---|---|---|"]
    for a, b in rows:
        wall = [r[b]["iteration_s"] / r[a]["iteration_s"] for r in results]
        cpu = [r[b]["iteration_cpu_s"] / r[a]["iteration_cpu_s"] for r in results]
        lines.append(f"| `{a}` | `{b}` | {med(a, 'iteration_s'):.1f} ({med(a, 'sampling_s'):.1f}) | "
                     f"{med(b, 'iteration_s'):.1f} ({med(b, 'sampling_s'):.1f}) | **{statistics.median(wall):.2f}×** "
                     f"({min(wall):.2f}–{max(wall):.2f}) | {statistics.median(cpu):.2f}× | "
                     f"{med(a, 'peak_rss_mb'):.0f} / {med(b, 'peak_rss_mb'):.0f} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=4, help="iterations per run (the first is not timed)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--allocator", choices=["tcmalloc", "glibc"], default="tcmalloc")
    parser.add_argument("--runs", nargs="+", choices=RUNS, default=RUNS[:4],
                        help="runs to alternate (default: all but alignlab:proposed)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 round, gym-shape model, 4 prompts × 2 "
                        "samples × 8 tokens, 2 iterations")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--setting", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.setting = Setting(**json.loads(args.setting)) if args.setting else Setting()
    if args.quick:
        args.rounds, args.iterations = 1, 2
        args.setting = Setting(shape="gym", prompts=4, samples=2, new_tokens=8, micro_batch=4)
    return args


def main() -> None:
    args = parse_args()
    if args.child:
        return child(args.child, args.work, args.iterations, args.threads, args.setting)
    env = child_env(args.allocator, args.threads)
    rows = [row for row in ROWS if set(row) <= set(args.runs)]
    with tempfile.TemporaryDirectory(prefix="alignlab-bench-rl-") as tmp:
        work = Path(tmp)
        write_workdir(work, args.setting)
        results = []
        started = time.time()
        for r in range(args.rounds):
            order = args.runs if r % 2 == 0 else args.runs[::-1]
            round_results = {}
            for run in order:
                round_results[run] = launch(["--child", run, "--work", str(work), "--iterations",
                                             str(args.iterations), "--threads", str(args.threads), "--setting",
                                             json.dumps(asdict(args.setting))], env, work / "child.log", Path(__file__))
                if round_results[run] is not None:
                    print(f"round {r + 1} {run}: {round_results[run]['iteration_s']:.1f} s/iteration "
                          f"(sampling {round_results[run]['sampling_s']:.1f} s), "
                          f"{round_results[run]['peak_rss_mb']:.0f} MB", file=sys.stderr, flush=True)
            results.append(round_results)
            report(args, results, rows, started)


def report(args, results: list[dict], rows, started: float) -> None:
    import torch
    import transformers
    import trl
    allocators = sorted({res["allocator"] for rr in results for res in rr.values() if res is not None})
    print(f"\n## after {len(results)} of {args.rounds} rounds\nallocator: {'/'.join(allocators)}   threads "
          f"{args.threads}   torch {torch.__version__}   transformers {transformers.__version__}   trl "
          f"{trl.__version__}   {args.setting}   {args.iterations} iterations per run (the first not timed)   "
          f"{time.time() - started:.0f} s so far   load average {os.getloadavg()[0]:.1f}")
    print(table(results, rows), flush=True)


if __name__ == "__main__":
    main()

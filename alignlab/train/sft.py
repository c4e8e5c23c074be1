"""Supervised fine-tuning: `alignlab sft CONFIG [key=value ...]` (also `python -m alignlab.train.sft`).

Loss = negative log-likelihood of the completion tokens (assistant turns and the EOS closing each), summed over the
whole optimizer step and divided by the step's number of completion tokens, so grad_accum × micro-batch gives the
same update as one large batch even when micro-batches hold different numbers of tokens.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from alignlab.command import run_cli
from alignlab.config import ConfigError, ModelConfig, OptimConfig, RunConfig
from alignlab.data.batching import collate, micro_batches, step_batches
from alignlab.data.chat import Encoded, encode_sft
from alignlab.data.io import DataError, read_sft
from alignlab.losses.sft import sft_loss
from alignlab.models import MaskedLogps, check_max_length, check_mixed_precision, load_causal_lm, load_tokenizer
from alignlab.train.distributed import check_shardable, processes
from alignlab.train.run import Run, count_steps, make_optimizer, optimizer_step, setup_run


@dataclass
class SFTDataConfig:
    train_files: list[str]
    """JSONL files (.jsonl or .jsonl.gz) of {"prompt", "completion"} or {"messages"} lines, read in this order."""
    max_length: int = 1024
    """Tokens per example. A longer prompt/completion example keeps the end of its prompt and as much of the
    completion as fits (alignlab.data.chat.encode_completion); a longer conversation is cut on the right. Cut
    examples are counted in the log; one left with no trained token is dropped (and counted)."""
    max_prompt_length: int = 0
    """Prompt tokens kept when a prompt/completion example does not fit (its end); 0 = half of max_length."""
    mask_prompt: bool = True
    """Train only on completion/assistant tokens (and their EOS); false = on every token."""
    group_by_length: bool = True
    """Put examples of similar length in the same optimizer step (less padding; the order stays a function of
    the seed and epoch); false = uniformly shuffled batches."""
    eval_files: list[str] = field(default_factory=list)
    """Held-out examples (same forms): their token-mean NLL is logged as eval_loss (empty = none)."""
    eval_every: int = 0
    """Log eval_loss every this many optimizer steps (a multiple of run.log_every), and at the last step; 0 = at
    the last step only."""


@dataclass
class SFTConfig:
    model: ModelConfig
    """The model (and tokenizer) to fine-tune."""
    data: SFTDataConfig
    """Training files and tokenisation."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """Optimizer, batch sizes and schedule."""
    run: RunConfig = field(default_factory=RunConfig)
    """Output directory, logging, checkpoints."""


def load_examples(cfg: SFTDataConfig, tokenizer, run: Run) -> list[Encoded]:
    """Read and tokenize every training file; report how many examples were truncated, and drop (and count) those
    left with no trained token."""
    if not cfg.train_files:
        raise ConfigError("data.train_files is empty; give at least one JSONL file, e.g. data.train_files=[a.jsonl]")
    encoded = [encode_sft(example, tokenizer, cfg.max_length, cfg.max_prompt_length)
               for path in cfg.train_files for example in read_sft(path)]
    if not cfg.mask_prompt:
        encoded = [Encoded(e.input_ids, [1] * len(e.input_ids), e.truncated) for e in encoded]
    truncated = sum(e.truncated for e in encoded)
    kept = [e for e in encoded if any(e.completion_mask[1:])]        # position 0 is never predicted
    if not kept:
        raise DataError(f"{cfg.train_files}: no example keeps a trained token at data.max_length={cfg.max_length} "
                        "(every completion lies past it); raise data.max_length or shorten the examples")
    run.note(f"{len(encoded)} examples from {len(cfg.train_files)} file(s); {truncated} truncated to "
             f"max_length={cfg.max_length}" + (f"; {len(encoded) - len(kept)} dropped: no completion token left"
                                                if len(kept) < len(encoded) else ""))
    return kept


@torch.no_grad()
def eval_loss(policy: MaskedLogps, examples: list[Encoded], batch_size: int, pad_token_id: int, device) -> float:
    """Token-mean NLL of held-out examples (the training loss's definition), the model left in train mode.
    `policy`: the model's masked_logps (as wrapped by the engine: a sharded model is gathered by its wrapper)."""
    policy.eval()
    total, tokens = 0.0, 0
    for start in range(0, len(examples), batch_size):
        batch = {k: v.to(device) for k, v in collate(examples[start:start + batch_size], pad_token_id).items()}
        logps = policy(batch["input_ids"], batch["attention_mask"], batch["completion_mask"])
        nll, _ = sft_loss(logps, batch["completion_mask"][:, 1:])
        total += nll.sum().item()
        tokens += int(batch["completion_mask"][:, 1:].sum())
    policy.train()
    return total / max(tokens, 1)


def train(cfg: SFTConfig) -> Path:
    """Fine-tune cfg.model on cfg.data; returns out_dir/model (Hugging Face format)."""
    check_max_length(cfg.model.path, cfg.data.max_length, "data.max_length")
    check_mixed_precision(cfg.model, cfg.optim.mixed_precision)
    procs = processes()
    check_shardable(cfg.model, procs)
    micro_size = procs.per_device(cfg.optim.batch_size)
    run = setup_run(cfg.run, cfg, procs, procs.launch_facts(cfg.optim.batch_size, cfg.optim.grad_accum))
    tokenizer = load_tokenizer(cfg.model.path, cfg.model.chat_template)
    examples = load_examples(cfg.data, tokenizer, run)
    held_out = (load_examples(replace(cfg.data, train_files=cfg.data.eval_files), tokenizer, run)
                if cfg.data.eval_files else [])
    lengths = [len(e.input_ids) for e in examples]
    model = load_causal_lm(cfg.model).to(run.device)
    model.train()
    # one process: masked_logps itself; several: DDP or FSDP2 around it
    policy = procs.wrap(MaskedLogps(model, cfg.optim.mixed_precision))
    total_steps = count_steps(cfg.optim, len(examples))
    optimizer, scheduler = make_optimizer(model, cfg.optim, total_steps)
    start_step = run.start(model, optimizer, scheduler, total_steps)
    batches = step_batches(lengths, cfg.optim.batch_size * cfg.optim.grad_accum, cfg.run.seed, start_step,
                           cfg.data.group_by_length)

    for step, indices in zip(range(start_step + 1, total_steps + 1), batches):
        # This process's share of the step's examples (all of them with one process).
        mine = procs.share(indices)
        micro = [collate([examples[i] for i in chunk], tokenizer.pad_token_id)
                 for chunk in micro_batches(mine or indices[:1], lengths, micro_size)]
        # Count the step's target tokens first (over every process): each micro-batch's summed NLL is divided by
        # this one number, so the summed gradient is the step's token mean whatever the split.
        n_tokens = int(procs.sum(sum(int(b["completion_mask"][:, 1:].sum()) for b in micro) if mine else 0))
        processed = procs.sum(sum(int(b["attention_mask"].sum()) for b in micro) if mine else 0)
        # Every process runs as many passes as the busiest (FSDP2 gathers the parameters in each); a process with
        # no example, or fewer micro-batches, joins with zero-weight passes.
        counted = [bool(mine)] * len(micro) + [False] * (procs.most(len(micro)) - len(micro))
        micro += [micro[0]] * (len(counted) - len(micro))
        step_nll = 0.0
        for k, batch in enumerate(micro):
            batch = {key: v.to(run.device) for key, v in batch.items()}
            with procs.no_sync(policy, last=k == len(micro) - 1):
                logps = policy(batch["input_ids"], batch["attention_mask"], batch["completion_mask"])   # (B, T-1)
                nll, _ = sft_loss(logps, batch["completion_mask"][:, 1:])                           # (B,)
                loss = nll.sum() / max(n_tokens, 1)
                if procs.world_size > 1:
                    loss = loss * procs.world_size      # the engine averages gradients over the processes
                if not counted[k]:
                    loss = loss * 0.0                   # a stand-in pass: joins the average with nothing
                loss.backward()
            step_nll += nll.sum().item() if counted[k] else 0.0
        step_nll = procs.sum(step_nll)
        lr = scheduler.get_last_lr()[0]                     # the lr of this update (the step below advances it)
        grad_norm = optimizer_step(model, optimizer, scheduler, cfg.optim.max_grad_norm)
        evaluated = {}
        if held_out and (step == total_steps or (cfg.data.eval_every and step % cfg.data.eval_every == 0)):
            evaluated["eval_loss"] = eval_loss(policy, held_out, cfg.optim.batch_size, tokenizer.pad_token_id,
                                               run.device)
        run.log(step, loss=step_nll / max(n_tokens, 1), lr=lr, grad_norm=grad_norm,
                tokens=n_tokens, tokens_per_s=processed / run.elapsed(), **evaluated)
        run.checkpoint(step, model, optimizer, scheduler)
    return run.finish(model, tokenizer)


USAGE = """usage: alignlab sft CONFIG [key=value ...]

Supervised fine-tuning. CONFIG is a YAML file (e.g. configs/sft/example_chat.yaml); key=value pairs override it
with dotted keys, e.g.  optim.lr=2e-5 data.train_files=[a.jsonl,b.jsonl] run.out_dir=runs/sft1 run.resume=true"""


def main(argv: list[str]) -> int:
    return run_cli("sft", SFTConfig, train, USAGE, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Preference optimisation: `alignlab dpo CONFIG [key=value ...]` (also `python -m alignlab.train.dpo`).

One loop for every loss of `alignlab.losses.preference`: the pairwise family (DPO, conservative DPO, IPO, SLiC-HF,
SimPO, ORPO) and unpaired KTO. The loop asks the loss what it needs through its row of the table
`alignlab.losses.preference.LOSSES` instead of branching on its name.

Every example is two sequences — (chosen, rejected) for a pair, (completion, mismatched completion) for KTO, whose
second row only serves KTO's KL reference point — and a micro-batch of B examples is one forward pass over 2B rows,
first rows then second rows, so `chunk(2)` splits them.

Reference log-probs, for losses that have a reference: either computed once before training and cached next to the
run in out_dir/ref_logps.pt (`ref_cache: true`, the default: no reference model is held during training, and for
full fine-tuning the policy before its first step *is* the reference; a run shorter than an epoch scores only the
examples its steps visit), or on the fly each step. With LoRA the
reference is the same model with its adapter disabled, never a second copy.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import Tensor

from alignlab.command import run_cli
from alignlab.config import ConfigError, LoraConfig, ModelConfig, OptimConfig, RunConfig, at_least, positive
from alignlab.data.batching import collate, epoch_batches, micro_batches, step_batches
from alignlab.data.chat import Encoded, encode_completion
from alignlab.data.io import DataError, read_feedback, read_preferences
from alignlab.losses.preference import LOSSES, kto_reference_point
from alignlab.models import (MaskedLogps, autocast, check_max_length, check_mixed_precision, disabled_adapter,
                             load_causal_lm, load_tokenizer, sequence_logps)
from alignlab.train.distributed import check_shardable, processes
from alignlab.train.run import Run, count_steps, make_optimizer, optimizer_step, setup_run



@dataclass
class PreferenceDataConfig:
    train_files: list[str]
    """JSONL files read in this order: preference pairs / K-way rankings (any form alignlab.data.io reads), or,
    with unpaired=true, KTO feedback lines {"prompt", "completion", "label"}."""
    max_length: int = 512
    """Tokens per sequence (prompt + response). A longer one keeps the end of its prompt and as much of the
    response as fits (alignlab.data.chat.encode_completion), counted in the log; a pair left with no response
    token on either side is dropped (and counted)."""
    max_prompt_length: int = 0
    """Prompt tokens kept when prompt and response do not fit together (its end); 0 = half of max_length."""
    unpaired: bool = False
    """The files hold unpaired feedback (KTO only). With pair files, KTO trains on each chosen response as
    desirable and each rejected one as undesirable."""
    group_by_length: bool = True
    """Put examples of similar length in the same optimizer step (less padding; the order stays a function of
    the seed and epoch); false = uniformly shuffled batches."""
    eval_files: list[str] = field(default_factory=list)
    """Held-out files of the same kind: the loss and reward accuracy on them are logged as eval_loss and
    eval_accuracy (empty = none); their reference log-probs are computed once before training."""
    eval_every: int = 0
    """Log them every this many optimizer steps (a multiple of run.log_every), and at the last step; 0 = at the
    last step only."""


@dataclass
class DPOConfig:
    model: ModelConfig
    """The policy to train (normally the SFT model); also the reference, frozen at its starting weights."""
    data: PreferenceDataConfig
    """Preference files and tokenisation."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """Optimizer, batch sizes (in pairs / unpaired examples) and schedule."""
    run: RunConfig = field(default_factory=RunConfig)
    """Output directory, logging, checkpoints."""
    loss: str = "dpo"
    """Which loss of alignlab.losses.preference.LOSSES: dpo, ipo, slic_hf, simpo, orpo, kto (docs/papers.md has
    the paper of each)."""
    beta: float = 0.1
    """DPO/IPO/KTO: weight of the implicit KL anchor to the reference (larger = stay closer); IPO's τ.
    SimPO: scale of the length-normalised reward (its paper uses 2-2.5)."""
    label_smoothing: float = 0.0
    """DPO only: assumed probability that a preference label is flipped (conservative DPO); 0 = plain DPO."""
    gamma: float = 0.5
    """SimPO only: target reward margin γ."""
    delta: float = 1.0
    """SLiC-HF only: hinge margin δ on the log-likelihood difference, in nats."""
    lam: float = 0.1
    """SLiC-HF: weight of its SFT term on the chosen response; ORPO: weight of the odds-ratio term."""
    lambda_d: float = 1.0
    """KTO only: weight of desirable examples."""
    lambda_u: float = 1.0
    """KTO only: weight of undesirable examples."""
    rpo_alpha: float = 0.0
    """Any pairwise loss: add α × the chosen response's mean per-token NLL (RPO, Pang et al. 2024), which keeps
    the chosen likelihood from falling — a guard against collapse; 0 = off."""
    ref_cache: bool = True
    """Compute the reference log-probs once before training and cache them in out_dir/ref_logps.pt; false =
    compute them every step (full fine-tuning then holds a frozen copy of the model)."""

    def problems(self) -> list[tuple[str, str]]:
        out = [] if self.loss in LOSSES else [("loss", f"must be one of {', '.join(LOSSES)}")]
        out += positive(self, "beta", "lambda_d", "lambda_u") + at_least(self, delta=0, lam=0, rpo_alpha=0)
        return out + ([("label_smoothing", "must be in [0, 0.5)")] if not 0 <= self.label_smoothing < 0.5 else [])

    @property
    def spec(self):
        if self.loss not in LOSSES:
            raise ConfigError(f"loss={self.loss!r} is not a preference loss; use one of {', '.join(LOSSES)}")
        return LOSSES[self.loss]

    def loss_kwargs(self) -> dict[str, float]:
        """The keyword hyper-parameters of the chosen loss function."""
        return {name: getattr(self, name) for name in self.spec.hyperparameters}

    @property
    def needs_reference(self) -> bool:
        return self.spec.needs_reference


# ---------------------------------------------------------------------------------------------------------------
# Data


@dataclass
class PreferenceData:
    """N examples of two rows each. Pairs: (chosen, rejected). KTO: (completion, the same prompt with another
    example's completion, for the KL reference point) and `desirable`."""
    rows: list[tuple[Encoded, Encoded]]
    desirable: list[bool] | None = None       # KTO labels, None for pairs

    def lengths(self) -> list[int]:
        """Padded width of each example: both rows are padded to the longest row of the forward batch."""
        return [max(len(a.input_ids), len(b.input_ids)) for a, b in self.rows]


def load_data(cfg: DPOConfig, tokenizer, run: Run) -> PreferenceData:
    """Read and tokenize the training files into the two-row examples the loss needs."""
    data = cfg.data
    if not data.train_files:
        raise ConfigError("data.train_files is empty; give at least one JSONL file, e.g. data.train_files=[a.jsonl]")
    if data.unpaired and cfg.spec.paired:
        raise ConfigError(f"data.unpaired=true gives unpaired feedback, which only loss=kto trains on "
                          f"(loss={cfg.loss} needs preference pairs); set loss=kto or give pair files")
    def enc(prompt, text):
        return encode_completion(prompt, text, tokenizer, data.max_length, data.max_prompt_length)
    if cfg.spec.paired:
        pairs = [p for path in data.train_files for p in read_preferences(path)]
        result = PreferenceData([(enc(p.prompt, p.chosen), enc(p.prompt, p.rejected)) for p in pairs])
    else:
        if data.unpaired:
            items = [(f.prompt, f.completion, f.desirable) for path in data.train_files for f in read_feedback(path)]
        else:
            items = [(p.prompt, text, good) for path in data.train_files for p in read_preferences(path)
                     for text, good in ((p.chosen, True), (p.rejected, False))]
        if len(items) < 2:
            raise DataError(f"{data.train_files}: KTO needs at least 2 examples (its KL estimate pairs each prompt "
                            "with another example's completion)")
        # The mismatched completion is fixed per example (the next one in file order), not drawn per batch, so
        # its reference log-prob can be cached like every other.
        result = PreferenceData([(enc(prompt, text), enc(prompt, items[(i + 1) % len(items)][1]))
                                 for i, (prompt, text, _) in enumerate(items)], [good for _, _, good in items])
    truncated = sum(a.truncated or b.truncated for a, b in result.rows)
    kept = [i for i, (a, b) in enumerate(result.rows) if any(a.completion_mask) and any(b.completion_mask)]
    if not kept:
        raise DataError(f"{data.train_files}: no example keeps a response token at data.max_length="
                        f"{data.max_length}; raise data.max_length or lower data.max_prompt_length")
    dropped = len(result.rows) - len(kept)
    if dropped:
        result = PreferenceData([result.rows[i] for i in kept],
                                None if result.desirable is None else [result.desirable[i] for i in kept])
    what = "pairs" if cfg.spec.paired else "unpaired examples"
    run.note(f"{len(result.rows) + dropped} {what} from {len(data.train_files)} file(s); {truncated} with a sequence "
             f"truncated to max_length={data.max_length}" + (f"; {dropped} dropped: no response token left"
                                                               if dropped else ""))
    return result


def collate_rows(data: PreferenceData, indices: list[int], pad_id: int) -> dict[str, Tensor]:
    """One forward batch of 2B rows: the first row of each example, then the second. Each tensor (2B, T)."""
    return collate([data.rows[i][0] for i in indices] + [data.rows[i][1] for i in indices], pad_id)


def completion_logps(model, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """Summed log-probs of each row's completion tokens and their number: (N,), (N,)."""
    mask = batch["completion_mask"]                                                      # (N, T)
    logps = sequence_logps(model, batch["input_ids"], batch["attention_mask"], mask)     # (N,)
    return logps, mask[:, 1:].sum(-1).float()


# ---------------------------------------------------------------------------------------------------------------
# Reference


def load_reference(cfg: ModelConfig):
    """A frozen copy of the starting model, for on-the-fly reference log-probs of full fine-tuning."""
    reference = load_causal_lm(dataclasses.replace(cfg, lora=LoraConfig()))
    reference.eval().requires_grad_(False)
    return reference


def _fingerprint(cfg: DPOConfig) -> str:
    """What the cached reference log-probs depend on: the model, the data files' bytes and the tokenisation."""
    settings = [cfg.model.path, cfg.model.dtype, cfg.data.max_length, cfg.data.unpaired, not cfg.spec.paired,
                cfg.data.max_prompt_length] + ([cfg.optim.mixed_precision] if cfg.optim.mixed_precision != "no" else [])
    digest = hashlib.sha256(json.dumps(settings).encode())
    for path in cfg.data.train_files:
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()


@torch.no_grad()
def cached_reference_logps(cfg: DPOConfig, policy, data: PreferenceData, pad_id: int, run: Run,
                           name: str = "ref_logps.pt", rows: list[int] | None = None) -> Tensor:
    """Reference log-probs, (N, 2), of the rows the run will train on (`rows`, default every row; the others stay
    NaN), read from out_dir/NAME or computed with the policy as it is before training (LoRA: with the adapter
    disabled) and written there."""
    path = run.out_dir / name
    fingerprint = _fingerprint(cfg)
    wanted = torch.zeros(len(data.rows), dtype=torch.bool)
    wanted[list(range(len(data.rows))) if rows is None else rows] = True
    if path.exists():
        cached = torch.load(path, weights_only=True)
        if cached["fingerprint"] == fingerprint and not (wanted & cached["logps"].isnan().any(1)).any():
            run.note(f"reference log-probs read from {path}")
            return cached["logps"]
    if run.resume_from is not None:
        raise ConfigError(f"{path} is missing or was made for other data/model settings, and the policy resumed "
                          f"from {run.resume_from} is no longer the reference; resume with the original config, "
                          "or start a new run.out_dir")
    todo = wanted.nonzero().flatten().tolist()
    procs = run.processes
    run.note(f"computing reference log-probs of the {len(todo)} of {len(data.rows)} examples this run trains on, "
             f"once (cached in {path})" + (f", split over {procs.world_size} processes" if procs.world_size > 1 else ""))
    # log-probs are at least float32 (alignlab.models): float64 for a float64 model, float32 otherwise
    dtype = torch.float64 if next(policy.parameters()).dtype == torch.float64 else torch.float32
    out = torch.full((len(data.rows), 2), float("nan"), dtype=dtype)
    mine = procs.share(todo)                      # several processes: each scores its share, then all of them meet
    policy.eval()
    for start in range(0, len(mine), cfg.optim.batch_size):
        indices = mine[start:start + cfg.optim.batch_size]
        batch = {k: v.to(run.device) for k, v in collate_rows(data, indices, pad_id).items()}
        with autocast(cfg.optim.mixed_precision, run.device):      # the policy's precision: a zero margin at step 0
            logps = _reference_forward(policy, batch, cfg.model.lora.enabled)
        out[indices] = torch.stack(logps.chunk(2), 1).cpu()
    if procs.world_size > 1:
        gathered = torch.zeros((len(data.rows), 2), dtype=out.dtype, device=procs.device)
        gathered[mine] = out[mine].to(gathered.device)
        torch.distributed.all_reduce(gathered)     # each row is filled by exactly one process
        out[todo] = gathered[todo].cpu()
    if procs.main:
        torch.save({"fingerprint": fingerprint, "logps": out}, path)
    procs.barrier()
    return out


def rows_trained(lengths: list[int], batch_size: int, seed: int, total_steps: int,
                 group_by_length: bool) -> list[int]:
    """Every example index the run's `total_steps` optimizer steps will visit (the order is a function of the seed),
    so a short run scores only the references it uses."""
    seen: set[int] = set()
    epoch, steps_left = 0, total_steps
    while steps_left > 0 and len(seen) < len(lengths):
        for indices in epoch_batches(lengths, batch_size, seed, epoch, group_by_length)[:steps_left]:
            seen.update(indices)
        steps_left -= math.ceil(len(lengths) / batch_size)
        epoch += 1
    return sorted(seen)


def _reference_forward(model, batch: dict[str, Tensor], lora: bool) -> Tensor:
    """Summed completion log-probs (2B,) under the reference: the model itself (a frozen copy, or the policy before
    training), or the LoRA policy with its adapter disabled."""
    if lora:
        with disabled_adapter(model):
            return completion_logps(model, batch)[0]
    return completion_logps(model, batch)[0]


def reference_source(cfg: DPOConfig, policy, data: PreferenceData, pad_id: int, run: Run,
                     rows: list[int] | None = None) -> Callable[[list[int], dict[str, Tensor]], Tensor] | None:
    """fn(example indices, batch, halves=(0, 1)) → reference summed log-probs of the examples' rows of those halves
    ((2B,) for both, the batch holding them in that order; KTO scores its own completions and the mismatched ones
    apart), or None for a reference-free loss. With the cache, only `rows` (default all) are scored."""
    if not cfg.needs_reference:
        return None
    if cfg.ref_cache:
        cache = cached_reference_logps(cfg, policy, data, pad_id, run, rows=rows).to(run.device)     # (N, 2)
        return lambda indices, batch, halves=(0, 1): torch.cat([cache[indices, h] for h in halves])
    reference = policy if cfg.model.lora.enabled else load_reference(cfg.model).to(run.device)

    @torch.no_grad()
    def on_the_fly(indices: list[int], batch: dict[str, Tensor], halves=(0, 1)) -> Tensor:
        with autocast(cfg.optim.mixed_precision, run.device):
            return _reference_forward(reference, batch, cfg.model.lora.enabled)
    return on_the_fly


# ---------------------------------------------------------------------------------------------------------------
# Losses on a micro-batch


def pairwise_loss(cfg: DPOConfig, logps: Tensor, counts: Tensor,
                  ref_logps: Tensor | None) -> tuple[Tensor, dict[str, Tensor]]:
    """Per-pair loss (B,) and metrics from summed log-probs of 2B rows (chosen rows first) and their token counts."""
    per_token = cfg.spec.length_normalised
    policy = logps / counts if per_token else logps                                     # (2B,)
    chosen, rejected = policy.chunk(2)
    inputs = [chosen, rejected]
    if cfg.needs_reference:
        inputs += list((ref_logps / counts if per_token else ref_logps).chunk(2))
    if cfg.spec.sft_term:
        inputs.append(chosen)                           # the SFT target is the chosen response
    losses, metrics = cfg.spec.function(*inputs, **cfg.loss_kwargs())
    chosen_sum, rejected_sum = logps.detach().chunk(2)
    metrics |= {"logps/chosen": chosen_sum, "logps/rejected": rejected_sum}
    if cfg.rpo_alpha:
        chosen_nll = -(logps.chunk(2)[0] / counts.chunk(2)[0])                       # (B,) mean per token
        losses = losses + cfg.rpo_alpha * chosen_nll
        metrics["nll/chosen"] = chosen_nll.detach()
    return losses, metrics


def unpaired_loss(cfg: DPOConfig, own: Tensor, ref_own: Tensor, desirable: Tensor,
                  z_ref: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """KTO loss (B,) and metrics of B examples' own completions, given the reference point z_ref (the KL estimate
    from mismatched completions: `step_reference_point`)."""
    losses, metrics = cfg.spec.function(own, ref_own, desirable, z_ref, **cfg.loss_kwargs())
    rewards, good = metrics["rewards"], desirable.bool()
    out = {"kl": z_ref, "logps/chosen": own.detach()[good], "logps/rejected": own.detach()[~good],
           "rewards/chosen": rewards[good], "rewards/rejected": rewards[~good]}
    return losses, out


@torch.no_grad()
def step_reference_point(policy, reference, data: PreferenceData, chunks: list[list[int]], counted: list[bool],
                         pad_id: int, device, procs) -> Tensor:
    """KTO's z_ref for one optimizer step: max(0, mean log π/π_ref) over the mismatched completions of every example
    of the step, on every process, so the update is the same whatever the micro-batch or process split (the paper
    does not back-propagate through z_ref: a no-grad pass over those rows is all it needs). `policy`: the wrapped
    masked_logps module, called for every chunk, stand-ins included (FSDP2 gathers parameters in each call)."""
    total, count, dtype = torch.zeros((), dtype=torch.float64, device=device), 0, None
    for chunk, real in zip(chunks, counted):
        batch = {k: v.to(device) for k, v in collate([data.rows[i][1] for i in chunk], pad_id).items()}
        logps = policy(batch["input_ids"], batch["attention_mask"], batch["completion_mask"]).sum(-1)     # (B,)
        dtype = logps.dtype
        if real:
            total += (logps - reference(chunk, batch, halves=(1,))).double().sum()
            count += len(chunk)
    mean = procs.sum_tensor(total) / max(procs.sum(count), 1)
    return mean.clamp(min=0).to(dtype)


def step_metrics(collected: dict[str, list[Tensor]]) -> dict[str, Tensor]:
    """Concatenate each metric over the step's micro-batches; drop empty ones (e.g. no undesirable example)."""
    metrics = {k: torch.cat([v.reshape(-1) for v in vs]) for k, vs in collected.items()}
    metrics = {k: v for k, v in metrics.items() if v.numel()}
    if "rewards/margin" not in metrics and {"rewards/chosen", "rewards/rejected"} <= metrics.keys():
        metrics["rewards/margin"] = metrics["rewards/chosen"].mean() - metrics["rewards/rejected"].mean()
    return metrics


# ---------------------------------------------------------------------------------------------------------------
# The loop


def held_out_data(cfg: DPOConfig, policy, tokenizer, run: Run) -> tuple[PreferenceData, Tensor | None] | None:
    """The eval files' examples and their reference log-probs (N, 2), computed before training; None without."""
    if not cfg.data.eval_files:
        return None
    eval_cfg = replace(cfg, data=replace(cfg.data, train_files=cfg.data.eval_files))
    data = load_data(eval_cfg, tokenizer, run)
    ref = (cached_reference_logps(eval_cfg, policy, data, tokenizer.pad_token_id, run, "ref_logps_eval.pt")
           if cfg.needs_reference else None)
    return data, ref


@torch.no_grad()
def evaluate_held_out(cfg: DPOConfig, policy, data: PreferenceData, ref: Tensor | None, pad_id: int,
                      device) -> dict[str, float]:
    """The training loss (and pairs' reward accuracy) on held-out examples, the policy left in train mode.
    `policy`: its masked_logps module (models.MaskedLogps, as wrapped by the engine)."""
    policy.eval()
    losses, accuracy = [], []
    for start in range(0, len(data.rows), cfg.optim.batch_size):
        indices = list(range(start, min(start + cfg.optim.batch_size, len(data.rows))))
        batch = {k: v.to(device) for k, v in collate_rows(data, indices, pad_id).items()}
        mask = batch["completion_mask"]                                                  # (N, T)
        logps, counts = policy(batch["input_ids"], batch["attention_mask"], mask).sum(-1), mask[:, 1:].sum(-1).float()
        ref_logps = None if ref is None else torch.cat([ref[indices, 0], ref[indices, 1]]).to(device)
        if data.desirable is None:
            loss, metrics = pairwise_loss(cfg, logps, counts, ref_logps)
            accuracy.append(metrics["rewards/accuracy"].float())
        else:
            desirable = torch.tensor([data.desirable[i] for i in indices], device=device)
            (own, mismatched), (ref_own, ref_mismatched) = logps.chunk(2), ref_logps.chunk(2)
            loss, _ = unpaired_loss(cfg, own, ref_own, desirable, kto_reference_point(mismatched, ref_mismatched))
        losses.append(loss)
    policy.train()
    out = {"eval_loss": torch.cat(losses).mean().item()}
    if accuracy:
        out["eval_accuracy"] = torch.cat(accuracy).mean().item()
    return out


def train(cfg: DPOConfig) -> Path:
    """Train cfg.model on cfg.data with cfg.loss; returns out_dir/model (Hugging Face format; LoRA: + merged/)."""
    check_max_length(cfg.model.path, cfg.data.max_length, "data.max_length")
    check_mixed_precision(cfg.model, cfg.optim.mixed_precision)
    procs = processes()
    check_shardable(cfg.model, procs)
    micro_size = procs.per_device(cfg.optim.batch_size)
    run = setup_run(cfg.run, cfg, procs, procs.launch_facts(cfg.optim.batch_size, cfg.optim.grad_accum))
    started = time.perf_counter()
    tokenizer = load_tokenizer(cfg.model.path, cfg.model.chat_template)
    data = load_data(cfg, tokenizer, run)
    lengths = data.lengths()
    policy = load_causal_lm(cfg.model).to(run.device)
    total_steps = count_steps(cfg.optim, len(data.rows))
    trained = rows_trained(lengths, cfg.optim.batch_size * cfg.optim.grad_accum, cfg.run.seed, total_steps,
                           cfg.data.group_by_length)
    reference = reference_source(cfg, policy, data, tokenizer.pad_token_id, run, rows=trained)
    held_out = held_out_data(cfg, policy, tokenizer, run)
    policy.train()
    # one process: masked_logps itself; several: DDP or FSDP2 around it
    wrapped = procs.wrap(MaskedLogps(policy, cfg.optim.mixed_precision))
    optimizer, scheduler = make_optimizer(policy, cfg.optim, total_steps)
    start_step = run.start(policy, optimizer, scheduler, total_steps)
    batches = step_batches(lengths, cfg.optim.batch_size * cfg.optim.grad_accum, cfg.run.seed, start_step,
                           cfg.data.group_by_length)

    for step, indices in zip(range(start_step + 1, total_steps + 1), batches):
        collected: dict[str, list[Tensor]] = defaultdict(list)
        mine = procs.share(indices)                 # this process's share of the step (all of it with one)
        chunks = micro_batches(mine or indices[:1], lengths, micro_size)
        # Every process runs as many passes as the busiest (FSDP2 gathers the parameters in each); a process with
        # no example, or fewer micro-batches, joins with zero-weight passes.
        counted = [bool(mine)] * len(chunks) + [False] * (procs.most(len(chunks)) - len(chunks))
        chunks += [chunks[0]] * (len(counted) - len(chunks))
        # KTO: the reference point of the whole step first (from its mismatched completions); then its own ones.
        z_ref = (step_reference_point(wrapped, reference, data, chunks, counted, tokenizer.pad_token_id, run.device,
                                      procs) if data.desirable is not None else None)
        for n, chunk in enumerate(chunks):
            rows = (collate_rows(data, chunk, tokenizer.pad_token_id) if z_ref is None
                    else collate([data.rows[i][0] for i in chunk], tokenizer.pad_token_id))
            batch = {k: v.to(run.device) for k, v in rows.items()}
            with procs.no_sync(wrapped, last=n == len(chunks) - 1):
                mask = batch["completion_mask"]
                logps = wrapped(batch["input_ids"], batch["attention_mask"], mask).sum(-1)      # (2B,) | KTO (B,)
                counts = mask[:, 1:].sum(-1).float()                                            # (2B,) | KTO (B,)
                if data.desirable is None:
                    ref_logps = reference(chunk, batch) if reference is not None else None      # (2B,) | None
                    losses, metrics = pairwise_loss(cfg, logps, counts, ref_logps)
                else:
                    desirable = torch.tensor([data.desirable[i] for i in chunk], device=run.device)
                    ref_logps = reference(chunk, batch, halves=(0,))                            # (B,)
                    losses, metrics = unpaired_loss(cfg, logps, ref_logps, desirable, z_ref)
                # Each example weighs 1 / (examples in the step), whatever the micro-batch or process split.
                loss = losses.sum() / len(indices)
                if procs.world_size > 1:
                    loss = loss * procs.world_size   # the engine averages gradients over the processes
                if not counted[n]:
                    loss = loss * 0.0                # a stand-in pass: joins the average with nothing
                loss.backward()
            if counted[n]:
                for key, value in {"loss": losses.detach(), **metrics}.items():
                    collected[key].append(value)
        lr = scheduler.get_last_lr()[0]
        grad_norm = optimizer_step(policy, optimizer, scheduler, cfg.optim.max_grad_norm)
        evaluated = {}
        if held_out is not None and (step == total_steps or (cfg.data.eval_every and step % cfg.data.eval_every == 0)):
            evaluated = evaluate_held_out(cfg, wrapped, *held_out, tokenizer.pad_token_id, run.device)
        # time_s: wall seconds since this process started, reference log-probs included (the cost to compare).
        metrics = step_metrics(collected)
        if procs.world_size > 1:                    # every process's examples, not the main one's share
            unpaired_margin = data.desirable is not None        # KTO's margin: a difference of the global means
            metrics = procs.means({k: v for k, v in metrics.items()
                                   if not (unpaired_margin and k == "rewards/margin")})
            if unpaired_margin and {"rewards/chosen", "rewards/rejected"} <= metrics.keys():
                metrics["rewards/margin"] = metrics["rewards/chosen"] - metrics["rewards/rejected"]
        run.log(step, **metrics, lr=lr, grad_norm=grad_norm,
                examples_per_s=len(indices) / run.elapsed(), time_s=time.perf_counter() - started, **evaluated)
        run.checkpoint(step, policy, optimizer, scheduler)
    return run.finish(policy, tokenizer)


USAGE = """usage: alignlab dpo CONFIG [key=value ...]

Preference optimisation with loss=dpo|ipo|slic_hf|simpo|orpo|kto. CONFIG is a YAML file (e.g. configs/dpo/gym.yaml);
key=value pairs override it with dotted keys, e.g.  loss=ipo beta=0.5 optim.lr=5e-6 data.train_files=[prefs.jsonl]
run.out_dir=runs/dpo1 run.resume=true"""


def main(argv: list[str]) -> int:
    return run_cli("dpo", DPOConfig, train, USAGE, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

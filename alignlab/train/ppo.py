"""RLHF: `alignlab ppo CONFIG [key=value ...]` (also `python -m alignlab.train.ppo`).

Each iteration (Ziegler et al. 2019; InstructGPT, Ouyang et al. 2022):
1. sample k responses to each of a batch of prompts from the policy (`alignlab.rollout.collect_rollout`);
2. score each response: the normalised reward-model score, or (reward: spo) its win rate against the other samples
   of the same prompt under the reward model's Bradley–Terry preferences (Swamy et al. 2024);
3. shape the reward with the KL penalty −β·log π/ρ to the frozen initial model, β fixed or steered towards a target
   KL by the adaptive controller (Ziegler §2.2);
4. advantages: GAE over per-token rewards with a separate critic (PPO), or critic-free per-sequence RLOO / GRPO
   advantages of score − β·KL (Ahmadian et al. 2024; Shao et al. 2024);
5. several epochs of shuffled minibatches of the clipped policy loss (+ clipped value loss, + the PPO-ptx term
   γ·NLL on pretraining text, InstructGPT Eq. 2).
Optionally (online:) every N iterations fresh comparisons of the current policy's samples are collected from
annotators and the reward model continues training on them (Ziegler's online data collection).

Losses are token means over a minibatch: each micro-batch's summed loss is divided by the minibatch's token count,
so micro-batching (grad accumulation) leaves the update unchanged.
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from alignlab.advantages import ADVANTAGES
from alignlab.annotators import load_annotators
from alignlab.command import run_cli
from alignlab.config import ConfigError, ModelConfig, OptimConfig, RunConfig, at_least, positive
from alignlab.data.batching import step_batches
from alignlab.data.chat import encode_prompt
from alignlab.data.io import read_preferences, read_texts, to_json, write_jsonl
from alignlab.data.prompts import PromptSourceConfig, load_prompts
from alignlab.data.records import PreferencePair, PromptRecord
from alignlab.losses.kl import AdaptiveKLController, FixedKLController, kl_shaped_rewards
from alignlab.losses.ppo import entropy_from_logits, policy_loss, value_loss
from alignlab.losses.sft import sft_loss
from alignlab.models import forward_logps, load_causal_lm, load_tokenizer
from alignlab.ops import gae, masked_whiten
from alignlab.reward_model import (META_FILE, RewardModel, critic_from, load_reward_model, pad_right,
                                   save_reward_model)
from alignlab.rewards import (RewardFunction, call_reward, check_reward_functions, load_reward_function,
                              reward_metric_key, reward_model_reward, self_play_reward)
from alignlab.rollout import Rollout, collect_rollout, critic_values, response_forward
from alignlab.sampling import SampleBatch, per_sample_uniforms
from alignlab.train.comparisons import RewardModelTrainer
from alignlab.train.distributed import Processes, processes, refuse_sharding
from alignlab.train.run import Run, make_optimizer, optimizer_step, setup_run


@dataclass
class RewardModelRef:
    path: str | None = None
    """A reward model directory written by `alignlab rm` (out_dir/model), normalisation statistics included. Needed
    by reward=rm|spo, critic_init=reward_model and the online loop."""


@dataclass
class KLConfig:
    adaptive: bool = True
    """Steer β towards `target` (Ziegler's controller) instead of keeping it fixed."""
    beta: float = 0.05
    """(Initial) coefficient of the KL penalty, per nat."""
    target: float = 2.0
    """Target KL(π‖ρ) per response in nats (adaptive only)."""
    horizon: float = 10000.0
    """Controller horizon in episodes (adaptive only; Ziegler uses 10 000)."""

    def problems(self) -> list[tuple[str, str]]:
        return at_least(self, beta=0) + positive(self, "target", "horizon")


@dataclass
class PtxConfig:
    coef: float = 0.0
    """γ of PPO-ptx: weight of the pretraining NLL added to each minibatch's loss; 0 = off."""
    batch_size: int = 8
    """Pretraining documents per minibatch."""
    max_length: int = 128
    """Tokens per pretraining document (cut on the right)."""
    source: str = "files"
    """files: the documents of `files`; or a registered text source (gym: the gym's corpus) or module:function."""
    files: list[str] = field(default_factory=list)
    """Text files (.txt: documents separated by a blank line) or JSONL files with a "text" column."""
    options: dict = field(default_factory=dict)
    """Keyword arguments of a named text source, e.g. {per_family: 40} for the gym."""


@dataclass
class OnlineConfig:
    every: int = 0
    """Collect fresh comparisons every this many iterations (0 = off) and continue training the reward model."""
    prompts: int = 32
    """Prompts per collection (drawn from PPO's own); two samples each are compared by an annotator."""
    annotator: str = "gym"
    """Who compares: gym (simulated annotators, gym prompts only), platform (people in a running `alignlab
    annotate serve` project), or a factory module:function / file.py:function returning annotators."""
    annotator_options: dict = field(default_factory=dict)
    """Keyword arguments of the annotator factory. gym: {n: 4, agreement: 0.9}; platform: {url, project,
    token_env: ALIGNLAB_ANNOTATE_TOKEN, criterion: helpful, min_labels: 1, timeout_s: 600, poll_s: 2}."""
    rm_steps: int = 20
    """Reward-model optimizer steps after each collection, on all comparisons gathered so far."""
    rm_batch_size: int = 16
    """Comparisons per reward-model step."""
    rm_lr: float = 1.0e-4
    """Reward-model learning rate (constant AdamW)."""
    rm_data_files: list[str] = field(default_factory=list)
    """The reward model's original comparisons, mixed into its continued training (empty = only new ones)."""
    against: Literal["policy", "reference"] = "policy"
    """What each policy sample is compared with: a second policy sample (Ziegler's collection), or a sample of the
    frozen reference (SFT) model — where the policy's samples have all drifted to the same answer (a refusal, an
    "I don't know") two of them are a tie and teach nothing; against the reference they carry the signal."""
    ties: bool = True
    """Drop a pair the annotator calls equally good (annotators with an `equally_good(item, a, b)` method, as the
    gym's simulated ones and people on the platform can say); False = every pair gets a strict verdict, coin flips
    on ties included (noise pairs)."""


@dataclass
class PPOConfig:
    model: ModelConfig
    """The policy's initial model (the SFT model); the frozen reference is a second copy of it."""
    reward_model: RewardModelRef = field(default_factory=RewardModelRef)
    """The reward model."""
    data: PromptSourceConfig = field(default_factory=PromptSourceConfig)
    """Where prompts come from (alignlab.data.prompts): files, a Hugging Face dataset, or a named source (gym)."""
    iterations: int = 20
    """Rollout batches to collect (the run's length)."""
    prompts_per_iteration: int = 16
    """Prompts per rollout batch."""
    samples_per_prompt: int = 4
    """Responses per prompt (≥ 2 for rloo/grpo/spo: the group baselines compare a prompt's samples)."""
    max_new_tokens: int = 48
    """Response length limit in tokens."""
    missing_eos_penalty: float = 0.0
    """Subtracted from the score of responses cut at max_new_tokens (Ziegler penalised unfinished answers)."""
    reward: str = "rm"
    """What is optimised (alignlab.rewards): rm, the normalised reward-model score; spo, each sample's win rate
    against the prompt's other samples (Swamy et al. 2024); gold, the gym's gold judge (the ceiling of a perfect
    reward model, Gao et al. 2022; gym prompts only); or a function module:function / path/to/file.py:function
    called as f(prompts, responses, metas) -> one reward per response."""
    reward_options: dict = field(default_factory=dict)
    """Keyword arguments of a registered reward (e.g. {world_seed: 0} for gold)."""
    reward_scale: float = 1.0
    """The optimised score is reward_scale·(reward − reward_shift): puts a function's rewards on a normalised reward
    model's scale so that kl.beta means the same (gold: 3 and 0.5 map the judge's [−1, 1], ½ at SFT, to ±3)."""
    reward_shift: float = 0.0
    """See reward_scale."""
    log_rewards: list[str] = field(default_factory=list)
    """Reward functions measured on every rollout batch and logged as <name>_reward, not optimised (e.g. [gold]:
    the gym's gold reward of PPO's own rollouts)."""
    advantage: Literal["gae", "rloo", "grpo"] = "gae"
    """gae: PPO with a critic; rloo/grpo: critic-free group baselines on score − β·KL per sequence."""
    critic_init: Literal["reward_model", "policy"] = "reward_model"
    """Initialise the critic from the reward model (Ziegler/InstructGPT) or the policy body with a zero head."""
    kl: KLConfig = field(default_factory=KLConfig)
    """KL penalty to the reference."""
    gamma: float = 1.0
    """GAE discount per token."""
    lam: float = 0.95
    """GAE λ."""
    clip_eps: float = 0.2
    """PPO ratio clip ε."""
    value_clip_eps: float = 0.2
    """Value clip around the rollout-time values."""
    vf_coef: float = 0.1
    """Weight of the value loss (the critic shares the optimizer, not the weights)."""
    entropy_coef: float = 0.0
    """Weight of an entropy bonus (0 = none; the KL penalty already keeps the policy spread)."""
    ppo_epochs: int = 4
    """Passes over each rollout batch."""
    minibatch_size: int = 16
    """Sequences per optimizer step."""
    micro_batch_size: int = 16
    """Sequences per forward/backward (minibatch_size must be a multiple); smaller = less memory, same update."""
    sample_streams: Literal["auto", "batch", "per_sample"] = "auto"
    """Random numbers of the rollouts. batch: one stream per iteration for the whole batch; per_sample: each sample
    draws from its own stream, seeded by (run.seed, iteration, its row in the iteration's batch), so a run draws
    the same samples on 1 or N processes; auto: batch on one process, per_sample on several."""
    whiten_advantages: bool = True
    """Normalise advantages to mean 0, std 1 over the rollout batch's tokens."""
    ptx: PtxConfig = field(default_factory=PtxConfig)
    """InstructGPT's pretraining-loss mix."""
    online: OnlineConfig = field(default_factory=OnlineConfig)
    """Ziegler's online reward-model training: fresh comparisons of the policy's samples during the run."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """Optimizer of policy and critic (lr, schedule, max_grad_norm; batch sizes are set above)."""
    run: RunConfig = field(default_factory=RunConfig)
    """Output directory, logging, checkpoints (save_every counts iterations)."""

    def problems(self) -> list[tuple[str, str]]:
        return (at_least(self, iterations=1, prompts_per_iteration=1, samples_per_prompt=1, max_new_tokens=1,
                         ppo_epochs=1, minibatch_size=1, micro_batch_size=1, missing_eos_penalty=0, vf_coef=0)
                + positive(self, "clip_eps", "value_clip_eps", "gamma", "lam"))


# -- rewards, pretraining text ------------------------------------------------------------------------------


def reward_function(cfg: PPOConfig, reward_model: RewardModel | None,
                    function: RewardFunction | None) -> RewardFunction:
    """What the rollouts are scored with: the reward model, SPO on it, or `function` (cfg.reward, already loaded)
    on cfg.reward_scale·(reward − cfg.reward_shift)."""
    if cfg.reward == "rm":
        return reward_model_reward(reward_model)
    if cfg.reward == "spo":
        return self_play_reward(reward_model, cfg.samples_per_prompt)
    if (cfg.reward_scale, cfg.reward_shift) == (1.0, 0.0):
        return function

    def scaled(prompts, responses, metas) -> Tensor:
        return cfg.reward_scale * (call_reward(function, cfg.reward, prompts, responses, metas) - cfg.reward_shift)
    return scaled


def pretraining_texts(cfg: PtxConfig, seed: int) -> list[str]:
    if cfg.source == "files":
        if not cfg.files:
            raise ConfigError("ptx.coef > 0 needs pretraining text: set ptx.files (text or JSONL files) or "
                              "ptx.source (e.g. gym)")
        return [doc for path in cfg.files for doc in read_texts(path)]
    from alignlab.plugins import resolve
    return list(resolve("texts", cfg.source)(seed=seed, **cfg.options))


def pretraining_batches(cfg: PtxConfig, tokenizer, seed: int, start: int):
    """Endless (input_ids, attention_mask) batches of pretraining documents, resumable at update `start`."""
    docs = pretraining_texts(cfg, seed)
    encoded = [tokenizer(d, add_special_tokens=False)["input_ids"][:cfg.max_length] for d in docs]
    for indices in step_batches([len(e) for e in encoded], cfg.batch_size, seed, start):
        yield pad_right([encoded[i] for i in indices], tokenizer.pad_token_id)


# -- one minibatch --------------------------------------------------------------------------------------------


class PolicyAndCritic(nn.Module):
    """One PPO micro-batch's forward: the policy's log-probs and logits of the response tokens, and the critic's
    values (None without a critic). With several processes the data-parallel engine synchronises the gradients of
    what runs inside the forward of the module it wraps, so both models run in this one."""

    def __init__(self, policy: nn.Module, critic: RewardModel | None):
        super().__init__()
        self.policy, self.critic = policy, critic

    def forward(self, prompt_ids: Tensor, prompt_mask: Tensor, response_ids: Tensor, response_mask: Tensor):
        batch = SampleBatch(prompt_ids, prompt_mask, response_ids, response_mask, logps=None)
        logps, logits = response_forward(self.policy, batch)                             # (b, A), (b, A, V)
        return logps, logits, None if self.critic is None else critic_values(self.critic, batch)


def minibatch_backward(forward: nn.Module, rollout: Rollout, advantages: Tensor, returns: Tensor | None,
                       cfg: PPOConfig, procs: Processes | None = None, weight: float = 1.0) -> dict[str, float]:
    """Forward/backward of one minibatch in micro-batches of cfg.micro_batch_size; gradients accumulate, each
    micro-batch's summed per-token loss divided by the minibatch's token count (a token mean, however split).
    `forward`: a PolicyAndCritic (wrapped by the engine with several processes). With several processes `rollout`
    holds this process's rows of the minibatch, the token count is the whole minibatch's, and the loss is scaled
    by the number of processes (the engine averages the gradients); `weight` 0 is a process with no row in this
    minibatch, joining the average with nothing."""
    procs = procs or Processes()
    mine = rollout.response_mask.sum() if weight else torch.zeros_like(rollout.response_mask.sum())   # stand-in: 0
    n_tokens = procs.sum_tensor(mine).clamp(min=1)
    scale = weight * procs.world_size
    totals: dict[str, float] = {}
    starts = range(0, rollout.response_ids.shape[0], cfg.micro_batch_size)
    for start in starts:
        index = torch.arange(start, min(start + cfg.micro_batch_size, rollout.response_ids.shape[0]))
        micro, mask = rollout.rows(index), rollout.response_mask[index]
        with procs.no_sync(forward, last=start == starts[-1]):
            logps, logits, values = forward(micro.prompt_ids, micro.prompt_mask, micro.response_ids, mask)
            loss, metrics = policy_loss(logps, micro.logps, advantages[index], mask, cfg.clip_eps)
            with torch.set_grad_enabled(cfg.entropy_coef != 0):    # only logged when it has no weight: no backward
                entropy = entropy_from_logits(logits) * mask                                   # (b, A)
            total = loss.sum() - cfg.entropy_coef * entropy.sum()
            parts = {"policy_loss": loss.sum(), "clipfrac": metrics["clipfrac"].sum(),
                     "approx_kl": metrics["approx_kl"].sum(), "ratio": metrics["ratio"].sum(),
                     "entropy": entropy.sum()}
            if values is not None:
                vloss, vmetrics = value_loss(values, micro.values, returns[index], mask, cfg.value_clip_eps)
                total = total + cfg.vf_coef * vloss.sum()
                parts.update(value_loss=vloss.sum(), vf_clipfrac=vmetrics["vf_clipfrac"].sum())
            (total / n_tokens * scale if scale != 1 else total / n_tokens).backward()
        for key, value in parts.items():
            totals[key] = totals.get(key, 0.0) + weight * value.item() / n_tokens.item()
    return totals


def ptx_backward(policy, batch: tuple[Tensor, Tensor], coef: float, device,
                 procs: Processes | None = None) -> float:
    """PPO-ptx: γ·(token-mean NLL of a pretraining batch), backpropagated into the policy. Returns the NLL.
    Several processes: each takes its share of the batch's rows, divides by the whole batch's token count and scales
    by the number of processes; call it before the minibatch's last (synchronised) backward, whose all-reduce then
    averages these gradients too (the raw policy's backward does not synchronise by itself)."""
    procs = procs or Processes()
    input_ids, attention_mask = batch[0].to(device), batch[1].to(device)
    weight = 1.0
    if procs.world_size > 1:
        # an epoch's last pretraining batch may have fewer rows than processes: those join with a zero-weight row
        share = procs.share(list(range(input_ids.shape[0])))
        weight = 1.0 if share else 0.0
        rows = torch.tensor(share or [0], dtype=torch.long, device=device)
        input_ids, attention_mask = input_ids[rows], attention_mask[rows]
    logps = forward_logps(policy, input_ids, attention_mask)                               # (B, T-1)
    nll, _ = sft_loss(logps, attention_mask[:, 1:])                                        # (B,) summed per row
    tokens = attention_mask[:, 1:].sum() if weight else torch.zeros_like(attention_mask[:, 1:].sum())
    mean_nll = nll.sum() / procs.sum_tensor(tokens).clamp(min=1)
    (coef * mean_nll * procs.world_size * weight if procs.world_size > 1 else coef * mean_nll).backward()
    return procs.sum(weight * mean_nll.item())


# -- the loop -------------------------------------------------------------------------------------------------


def train(cfg: PPOConfig, annotators: list | None = None) -> Path:
    """Run PPO (or RLOO/GRPO/SPO) from cfg.model against cfg.reward; returns out_dir/model (HF format).
    `annotators` (alignlab.annotators.Annotator) serve the online loop instead of those cfg.online.annotator names."""
    check(cfg)
    procs = processes()
    refuse_sharding(procs, "ppo")
    check_processes(cfg, procs)
    records = load_prompts(cfg.data, cfg.run.seed)
    if cfg.prompts_per_iteration > len(records):
        raise ConfigError(f"prompts_per_iteration={cfg.prompts_per_iteration} but there are only {len(records)} "
                          "prompts; lower it or add prompts")
    user_rewards = {} if cfg.reward in ("rm", "spo") else {cfg.reward: load_reward_function(cfg.reward,
                                                                                            cfg.reward_options)}
    logged = {spec: load_reward_function(spec) for spec in cfg.log_rewards}
    check_reward_functions(user_rewards | logged, records[0])
    if cfg.online.every and annotators is None:
        annotators = load_annotators(cfg.online.annotator, cfg.online.annotator_options, cfg.run.seed, records)

    B = cfg.prompts_per_iteration * cfg.samples_per_prompt
    run = setup_run(cfg.run, cfg, procs, procs.launch_facts(B, 1))      # the rollout batch: B samples, N shares
    device = run.device
    tokenizer = load_tokenizer(cfg.model.path, cfg.model.chat_template)
    policy = load_causal_lm(cfg.model).to(device)
    positions = getattr(policy.config, "max_position_embeddings", None) or getattr(policy.config, "n_positions", None)
    if positions is not None:
        too_long = sum(len(encode_prompt(r.prompt, tokenizer)) + cfg.max_new_tokens > positions for r in records)
        if too_long:
            run.note(f"warning: {too_long} of {len(records)} prompts leave fewer than max_new_tokens="
                     f"{cfg.max_new_tokens} of the model's {positions} positions; their samples run past them")
    reference = load_causal_lm(ModelConfig(path=cfg.model.path, dtype=cfg.model.dtype)).to(device).eval()
    reference.requires_grad_(False)
    reward_model = None
    if cfg.reward_model.path is not None:
        reward_model = load_reward_model(cfg.reward_model.path).to(device)
        reward_model.requires_grad_(False)
    critic = make_critic(cfg, reward_model, tokenizer, device)
    trained = nn.ModuleDict({"policy": policy} | ({"critic": critic} if critic is not None else {}))
    score = reward_function(cfg, reward_model, user_rewards.get(cfg.reward))
    kl_ctl = (AdaptiveKLController(cfg.kl.beta, cfg.kl.target, cfg.kl.horizon) if cfg.kl.adaptive
              else FixedKLController(cfg.kl.beta))
    k = cfg.samples_per_prompt
    per_sample = cfg.sample_streams == "per_sample" or (cfg.sample_streams == "auto" and procs.world_size > 1)
    # This process's prompts of each iteration's batch, and their samples' rows in the whole batch (all with one).
    mine = procs.share(list(range(cfg.prompts_per_iteration)))
    my_rows = [j * k + s for j in mine for s in range(k)]
    forward = procs.wrap(PolicyAndCritic(policy, critic))
    updates_per_iteration = cfg.ppo_epochs * -(-B // cfg.minibatch_size)
    optimizer, scheduler = make_optimizer(trained, cfg.optim, cfg.iterations * updates_per_iteration)
    online = Online(cfg, records, reward_model, annotators, run) if cfg.online.every else None
    start = run.start(trained, optimizer, scheduler, cfg.iterations)
    if run.resumed_extra is not None:
        kl_ctl.value = run.resumed_extra["beta"]
        # the streams the run drew from (checkpoints before sample_streams existed: one process, batch)
        drawn = run.resumed_extra.get("sample_streams", "batch")
        if drawn == "batch" and per_sample:
            raise ConfigError(f"{run.resume_from} was drawn with one random stream per batch (sample_streams=batch, "
                              "one process): resume it on one process with sample_streams=auto or batch; per-sample "
                              "streams would draw other samples from here on")
        per_sample = drawn == "per_sample"     # started on several processes (or per_sample): keep drawing so
        if online is not None:
            online.load_state_dict(run.resumed_extra["online"])
    ptx = (pretraining_batches(cfg.ptx, tokenizer, cfg.run.seed, start * updates_per_iteration)
           if cfg.ptx.coef > 0 else None)

    for iteration in range(start + 1, cfg.iterations + 1):
        # Every batch is full and a function of (seed, iteration) alone, so a resumed run draws the same prompts.
        indices = random.Random(f"prompts/{cfg.run.seed}/{iteration}").sample(range(len(records)),
                                                                            cfg.prompts_per_iteration)
        batch = [records[indices[j]] for j in mine]
        generator = torch.Generator(device=device).manual_seed(cfg.run.seed * 1_000_003 + iteration)
        uniforms = (per_sample_uniforms([sample_seed(cfg.run.seed, iteration, row) for row in my_rows],
                                        cfg.max_new_tokens) if per_sample else None)
        policy.eval()
        rollout = collect_rollout(policy, reference, score, critic, tokenizer, [r.prompt for r in batch],
                                  [r.meta for r in batch], samples_per_prompt=k, max_new_tokens=cfg.max_new_tokens,
                                  generator=generator, reward_name=cfg.reward, uniforms=uniforms)
        policy.train()
        mask = rollout.response_mask.float()                                               # (b, A)
        seq_kl = ((rollout.logps - rollout.ref_logps) * mask).sum(1)                       # (b,) k1 per response
        scores = rollout.scores - cfg.missing_eos_penalty * (~rollout.ended).float()       # (b,)
        beta = kl_ctl.value
        if cfg.advantage == "gae":
            rewards = kl_shaped_rewards(scores, rollout.logps, rollout.ref_logps, mask, beta)   # (b, A)
            advantages, returns = gae(rewards, rollout.values, mask, cfg.gamma, cfg.lam)        # (b, A), (b, A)
        else:
            # Critic-free: the KL penalty joins the sequence reward (RLOO's form), then the group baseline (a
            # prompt's samples are all on one process).
            sequence_advantages = ADVANTAGES[cfg.advantage](scores - beta * seq_kl, k)           # (b,)
            advantages, returns = sequence_advantages.unsqueeze(1) * mask, None
        if cfg.whiten_advantages:      # over the whole batch's tokens, on every process
            advantages = masked_whiten(advantages, mask, total=procs.sum_tensor if procs.world_size > 1 else None)

        sums: dict[str, float] = {}
        local = {row: i for i, row in enumerate(my_rows)}        # row of the whole batch → row of this rollout
        for _ in range(cfg.ppo_epochs):
            order = torch.randperm(B, generator=generator, device=device)      # the same on every process
            for mb in order.split(cfg.minibatch_size):
                rows = torch.tensor([local[row] for row in mb.tolist() if row in local], dtype=torch.long)
                weight = 1.0 if len(rows) else 0.0               # no row here: a zero-weight pass keeps step
                rows = rows if len(rows) else torch.zeros(1, dtype=torch.long)
                # PPO-ptx on several processes goes first: the minibatch's last backward then averages it too
                ptx_first = ptx_backward(policy, next(ptx), cfg.ptx.coef, device, procs) \
                    if ptx is not None and procs.world_size > 1 else None
                parts = minibatch_backward(forward, rollout.rows(rows), advantages[rows],
                                           None if returns is None else returns[rows], cfg, procs, weight)
                parts = procs.sum_each(parts)                            # minibatch token means
                if ptx is not None:
                    parts["ptx_loss"] = (ptx_first if ptx_first is not None
                                         else ptx_backward(policy, next(ptx), cfg.ptx.coef, device))
                parts["grad_norm"] = optimizer_step(trained, optimizer, scheduler, cfg.optim.max_grad_norm).item()
                for key, value in parts.items():
                    sums[key] = sums.get(key, 0.0) + value / updates_per_iteration
        # The whole batch's per-sample values (every process's rows; the same ones with one process).
        seq_kl, batch_scores = procs.gather(seq_kl), procs.gather(rollout.scores)
        shaped, lengths, ended = procs.gather(scores) - beta * seq_kl, procs.gather(mask.sum(1)), procs.gather(
            rollout.ended.float())
        kl_ctl.update(seq_kl.mean().item(), B)

        measured = {reward_metric_key(spec): procs.sum(call_reward(function, spec, rollout.prompts, rollout.responses,
                                                                   rollout.metas).mean().item()) / procs.world_size
                    for spec, function in logged.items()}
        if online is not None and iteration % cfg.online.every == 0:
            measured.update(online.collect_and_train(policy, reference, tokenizer, iteration))
        run.log(iteration, kl=seq_kl.mean(), beta=beta, rm_score=batch_scores.mean(), reward=shaped,
                response_length=lengths, ended=ended, lr=scheduler.get_last_lr()[0],
                episodes_per_s=B / run.elapsed(), **sums, **measured)
        run.checkpoint(iteration, trained, optimizer, scheduler,
                       extra={"beta": kl_ctl.value, "online": online.state_dict() if online is not None else None,
                              "sample_streams": "per_sample" if per_sample else "batch"})

    if online is not None:
        save_reward_model(reward_model, run.out_dir / "reward_model")
    return run.finish(policy, tokenizer)


def sample_seed(seed: int, iteration: int, row: int) -> int:
    """The seed of one sample's random stream (sample_streams: per_sample): a function of the run's seed, the
    iteration and the sample's row in that iteration's batch only."""
    return random.Random(f"sample/{seed}/{iteration}/{row}").getrandbits(63)


def check_processes(cfg: PPOConfig, procs: Processes) -> None:
    """What several processes cannot run yet, refused before anything loads rather than computed differently."""
    if procs.world_size == 1:
        return
    if cfg.prompts_per_iteration % procs.world_size:
        raise ConfigError(f"prompts_per_iteration={cfg.prompts_per_iteration} must divide by the {procs.world_size} "
                          "processes: each samples the same number of prompts")
    if cfg.sample_streams == "batch":
        raise ConfigError("sample_streams=batch draws one stream over the whole batch; on several processes use "
                          "per_sample (or auto), which draws the same samples on any number of processes")
    if cfg.ptx.coef > 0 and cfg.ptx.batch_size % procs.world_size:
        raise ConfigError(f"ptx.batch_size={cfg.ptx.batch_size} must divide by the {procs.world_size} processes: each "
                          "takes its share of every pretraining batch")
    if cfg.online.every > 0:
        raise ConfigError("online.every is not supported on several processes yet (issue 17); run the online loop "
                          "on one process or set online.every=0")


def check(cfg: PPOConfig) -> None:
    """Config combinations that cannot work, reported before anything loads."""
    if cfg.optim.mixed_precision != "no":
        raise ConfigError("optim.mixed_precision=bf16 runs in sft and dpo; ppo trains in model.dtype for now "
                          "(issue 17): set optim.mixed_precision=no")
    if cfg.minibatch_size % cfg.micro_batch_size:
        raise ConfigError(f"minibatch_size={cfg.minibatch_size} must be a multiple of "
                          f"micro_batch_size={cfg.micro_batch_size}")
    if (cfg.advantage != "gae" or cfg.reward == "spo") and cfg.samples_per_prompt < 2:
        raise ConfigError(f"advantage={cfg.advantage} / reward={cfg.reward} compare the samples of a prompt: set "
                          f"samples_per_prompt ≥ 2 (it is {cfg.samples_per_prompt})")
    needs_rm = [why for why, needed in [(f"reward={cfg.reward}", cfg.reward in ("rm", "spo")),
                                        ("critic_init=reward_model", cfg.advantage == "gae"
                                         and cfg.critic_init == "reward_model"),
                                        ("online.every > 0 (it trains the reward model)", cfg.online.every > 0)]
                if needed]
    if cfg.reward_model.path is not None and not (Path(cfg.reward_model.path) / META_FILE).is_file():
        raise ConfigError(f"reward_model.path={cfg.reward_model.path} is not a reward model directory (no "
                          f"{META_FILE}); train one with `alignlab rm CONFIG` and pass its out_dir/model")
    if needs_rm and cfg.reward_model.path is None:
        raise ConfigError(f"reward_model.path is not set, and {', '.join(needs_rm)} needs a reward model: give one "
                          "written by `alignlab rm`" + (", or set critic_init=policy" if "critic_init" in needs_rm[0]
                                                        and len(needs_rm) == 1 else ""))


def make_critic(cfg: PPOConfig, reward_model: RewardModel | None, tokenizer, device) -> RewardModel | None:
    if cfg.advantage != "gae":
        return None
    if cfg.critic_init == "policy":
        return critic_from(cfg.model.path, zero_head=True).to(device).train()
    if reward_model.pooling != "last" or reward_model.tokenizer.get_vocab() != tokenizer.get_vocab():
        raise ConfigError(f"critic_init=reward_model needs a causal reward model on the policy's tokenizer; "
                          f"{cfg.reward_model.path} is not one: set critic_init=policy")
    critic = critic_from(reward_model).to(device).train()
    critic.requires_grad_(True)
    return critic


# -- the online loop ------------------------------------------------------------------------------------------


class Online:
    """Ziegler's online data collection: sample pairs from the current policy (or one policy sample and one of the
    reference model, `online.against`) on PPO's prompts, have annotators compare them, add the comparisons to the
    reward model's data and continue training it (Bradley–Terry). The reward model's normalisation statistics are
    kept, so scores stay on the scale β was tuned for. The comparisons gathered so far are written to
    out_dir/online_comparisons.jsonl after each collection."""

    def __init__(self, cfg: PPOConfig, records: list[PromptRecord], reward_model: RewardModel, annotators: list,
                 run: Run):
        self.cfg, self.records, self.run = cfg.online, records, run
        self.seed, self.max_new_tokens = cfg.run.seed, cfg.max_new_tokens
        self.annotators = annotators
        self.pairs: list[PreferencePair] = [p for path in cfg.online.rm_data_files for p in read_preferences(path)]
        self.new_pairs: list[PreferencePair] = []
        self.trainer = RewardModelTrainer(reward_model, cfg.online.rm_lr)

    def collect_and_train(self, policy, reference, tokenizer, iteration: int) -> dict[str, float]:
        from alignlab.sampling import generate
        rng = random.Random(f"online/{self.seed}/{iteration}")
        items = rng.sample(self.records, min(self.cfg.prompts, len(self.records)))
        messages, seed = [r.prompt for r in items], self.seed * 7919 + iteration
        policy.eval()
        if self.cfg.against == "policy":
            samples = generate(policy, tokenizer, messages, max_new_tokens=self.max_new_tokens, temperature=1.0,
                               num_samples=2, seed=seed, batch_size=64)
        else:
            ours, theirs = (generate(model, tokenizer, messages, max_new_tokens=self.max_new_tokens, temperature=1.0,
                                     seed=seed, batch_size=64) for model in (policy, reference))
            # which one is shown first is drawn, so an annotator's position bias favours neither model
            policy_first = [rng.random() < 0.5 for _ in items]
            samples = [(a[0], b[0]) if first else (b[0], a[0]) for a, b, first in zip(ours, theirs, policy_first)]
        policy.train()
        policy_wins = []                                # against=reference: did the policy's sample win?
        for i, (item, (a, b)) in enumerate(zip(items, samples)):
            if a == b:
                continue
            annotator = self.annotators[(len(self.new_pairs) + i) % len(self.annotators)]
            if self.cfg.ties and getattr(annotator, "equally_good", None) and annotator.equally_good(item, a, b):
                continue
            first_wins = annotator.compare(item, a, b) == 0
            chosen, rejected = (a, b) if first_wins else (b, a)
            if self.cfg.against == "reference":
                policy_wins.append(first_wins == policy_first[i])
            self.new_pairs.append(PreferencePair(item.prompt, chosen, rejected,
                                                 {"annotator": str(annotator.annotator_id), "iteration": iteration},
                                                 f"online:{iteration}:{item.id}"))
        # every comparison people (or simulated annotators) gave, kept with the run: preference JSONL any trainer reads
        write_jsonl(self.run.out_dir / "online_comparisons.jsonl", (to_json(p) for p in self.new_pairs))
        stats = {"online_comparisons": len(self.new_pairs)}
        if policy_wins:
            stats["online_policy_win_rate"] = sum(policy_wins) / len(policy_wins)
        if self.pairs or self.new_pairs:             # else every pair so far equally good: nothing to learn from yet
            data = self.pairs + self.new_pairs
            batches = [rng.sample(data, min(self.cfg.rm_batch_size, len(data))) for _ in range(self.cfg.rm_steps)]
            stats["online_rm_loss"] = self.trainer.train(batches)
        return stats

    def state_dict(self) -> dict:
        return {"reward_model": self.trainer.model.state_dict(), "optimizer": self.trainer.optimizer.state_dict(),
                "new_pairs": [(p.prompt, p.chosen, p.rejected, p.meta, p.source) for p in self.new_pairs]}

    def load_state_dict(self, state: dict) -> None:
        self.trainer.model.load_state_dict(state["reward_model"])
        self.trainer.optimizer.load_state_dict(state["optimizer"])
        self.new_pairs = [PreferencePair(*fields) for fields in state["new_pairs"]]


USAGE = """usage: alignlab ppo CONFIG [key=value ...]

RLHF: PPO with GAE, or RLOO/GRPO (advantage=rloo|grpo), against a reward model (reward=rm), self-play rewards
(reward=spo), the gym's gold judge (reward=gold) or your own function (reward=path/to/file.py:function).
CONFIG is a YAML file (e.g. configs/ppo/gym.yaml); key=value pairs override it, e.g.
  model.path=runs/sft/model reward_model.path=runs/rm/model run.out_dir=runs/ppo kl.target=4"""


def main(argv: list[str]) -> int:
    return run_cli("ppo", PPOConfig, train, USAGE, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Greedy coordinate gradient (GCG; Zou et al. 2023, "Universal and Transferable Adversarial Attacks on Aligned
Language Models", Algorithms 1 and 2) on any Hugging Face causal LM.

A suffix of `suffix_length` tokens is placed in the user turn (`placement`, default "{request} {suffix}"; the chat
template renders the rest) and optimised so that the model's answer starts with a target string ("Sure, here is…").
Each step:
1. the gradient of the target's cross-entropy with respect to the suffix's one-hot token matrix (L, V): one forward
   and backward through `inputs_embeds = one_hot @ W_embed` per behaviour — normalised per behaviour and summed for a
   universal (multi-behaviour) suffix;
2. `search_width` candidates, each the current suffix with `n_replace` positions swapped for one of the `topk`
   tokens of most negative gradient there (special and, by default, non-ASCII tokens excluded; candidates that do
   not survive decode → encode are dropped, since the attack must work as text);
3. the exact loss of every candidate in batched forward passes; the batch's best becomes the current suffix even
   when it is worse than the last (the search keeps moving, as in the paper and nanoGCG), and the best suffix seen
   so far is what the attack returns — its loss never rises between steps.
With `early_stop`, the search ends once every target is the model's greedy continuation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch.nn import functional as F

from alignlab.data.chat import render, token_ids

MARKER = "{suffix}"


@dataclass
class GCGConfig:
    steps: int = 250
    """Optimisation steps (Zou et al.: 500; nanoGCG's default: 250)."""
    search_width: int = 512
    """Candidate suffixes evaluated per step (B in the paper)."""
    topk: int = 256
    """Tokens of most negative gradient kept per suffix position (k)."""
    n_replace: int = 1
    """Positions swapped in each candidate."""
    suffix_length: int = 20
    """Tokens in the suffix when `suffix_init` is not given ("x x x …")."""
    suffix_init: str | None = None
    """Starting suffix text (e.g. a suffix found on another model); None = `suffix_length` × "x"."""
    placement: str = "{request} {suffix}"
    """The user turn: where the request and the suffix go ("{suffix} {request}" puts it first)."""
    batch_size: int = 128
    """Candidates per forward pass when scoring."""
    allow_non_ascii: bool = False
    """Let the suffix use non-ASCII tokens."""
    early_stop: bool = False
    """Stop when every target is the model's greedy continuation."""
    seed: int = 0


@dataclass(frozen=True)
class Behaviour:
    request: str
    target: str
    system: str | None = None


@dataclass
class Parts:
    """One behaviour's token ids around the suffix: before ‖ suffix ‖ after ‖ target."""
    before: Tensor   # (Lb,)
    after: Tensor    # (La,)
    target: Tensor   # (Lt,)


@dataclass
class GCGResult:
    suffix: str
    suffix_ids: list[int]
    losses: list[float] = field(default_factory=list)      # the best loss so far after each step; [0] = start
    current_losses: list[float] = field(default_factory=list)    # the loss of the step's current suffix
    steps: int = 0
    seconds: float = 0.0
    stopped_early: bool = False


def split_prompt(tokenizer, behaviour: Behaviour, placement: str) -> tuple[str, str]:
    """The rendered chat prompt (generation prompt included) as the text before and after the suffix."""
    if MARKER not in placement or "{request}" not in placement:
        raise ValueError(f"placement {placement!r} must contain {{request}} and {MARKER}")
    user = placement.replace("{request}", behaviour.request)
    messages = ([{"role": "system", "content": behaviour.system}] if behaviour.system else []) + \
        [{"role": "user", "content": user}]
    text = render(messages, tokenizer, add_generation_prompt=True)
    if text.count(MARKER) != 1:
        raise ValueError(f"the chat template of {tokenizer.name_or_path!r} does not keep the user turn as written, or "
                         f"the request contains {MARKER}")
    before, after = text.split(MARKER)
    return before, after


def behaviour_parts(tokenizer, behaviour: Behaviour, placement: str, device) -> Parts:
    before, after = split_prompt(tokenizer, behaviour, placement)
    ids = [torch.tensor(token_ids(t, tokenizer), dtype=torch.long, device=device)
           for t in (before, after, behaviour.target)]
    if len(ids[2]) == 0:
        raise ValueError(f"behaviour {behaviour.request!r}: the target string is empty")
    return Parts(*ids)


def forbidden_tokens(tokenizer, allow_non_ascii: bool) -> Tensor:
    """Ids a suffix may not use: special tokens, tokens that decode to nothing printable, and (by default) non-ASCII
    ones."""
    bad = set(tokenizer.all_special_ids)
    for i in range(len(tokenizer)):
        text = tokenizer.decode([i])
        if not text or not text.isprintable() or (not allow_non_ascii and not text.isascii()):
            bad.add(i)
    return torch.tensor(sorted(bad), dtype=torch.long)


def _upcast(x: Tensor) -> Tensor:
    """Half-precision logits to float32 for the loss; float32 and float64 stay as they are."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def embedding_matrix(model) -> Tensor:
    return model.get_input_embeddings().weight


def relaxed_loss(model, parts: Parts, one_hot: Tensor) -> Tensor:
    """Mean cross-entropy of the target with the suffix given as a (L, V) one-hot (or any real) matrix."""
    embed = model.get_input_embeddings()
    W = embedding_matrix(model)
    pieces = [embed(parts.before), one_hot.to(W.dtype) @ W, embed(parts.after), embed(parts.target)]
    inputs = torch.cat(pieces).unsqueeze(0)
    logits = model(inputs_embeds=inputs).logits[0]
    start = len(parts.before) + one_hot.shape[0] + len(parts.after)
    predicted = logits[start - 1:start - 1 + len(parts.target)]
    return F.cross_entropy(_upcast(predicted), parts.target)


def token_gradient(model, parts_list: list[Parts], suffix_ids: Tensor) -> Tensor:
    """∂ loss / ∂ one-hot(suffix), (L, V): each behaviour's gradient normalised (unit norm per position) and summed
    (Zou et al., Algorithm 2); for one behaviour, the raw gradient's per-position ranking is unchanged."""
    W = embedding_matrix(model)
    total = torch.zeros(len(suffix_ids), W.shape[0], device=W.device, dtype=_upcast(W).dtype)
    for parts in parts_list:
        one_hot = F.one_hot(suffix_ids, W.shape[0]).to(W.dtype).requires_grad_(True)
        (grad,) = torch.autograd.grad(relaxed_loss(model, parts, one_hot), [one_hot])
        grad = _upcast(grad)
        total += grad / grad.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return total


def sample_candidates(suffix_ids: Tensor, grad: Tensor, forbidden: Tensor, search_width: int, topk: int,
                      n_replace: int, generator: torch.Generator) -> Tensor:
    """(search_width, L): the suffix with `n_replace` random positions each set to a random one of the `topk` tokens
    of most negative gradient at that position."""
    grad = grad.clone()
    grad[:, forbidden.to(grad.device)] = float("inf")
    top = (-grad).topk(topk, dim=1).indices.cpu()                                          # (L, k)
    length = len(suffix_ids)
    positions = torch.rand(search_width, length, generator=generator).argsort(1)[:, :n_replace]    # (W, r)
    choice = torch.randint(0, topk, (search_width, n_replace), generator=generator)               # (W, r)
    values = top[positions, choice]                                                                 # (W, r)
    return suffix_ids.cpu().repeat(search_width, 1).scatter_(1, positions, values).to(suffix_ids.device)


def survives_retokenisation(tokenizer, candidates: Tensor) -> Tensor:
    """(W,) bool: the candidate's text encodes back to the same ids (the attack is delivered as text)."""
    keep = []
    for ids in candidates.tolist():
        keep.append(token_ids(tokenizer.decode(ids), tokenizer) == ids)
    return torch.tensor(keep, dtype=torch.bool)


@torch.no_grad()
def candidate_losses(model, parts_list: list[Parts], candidates: Tensor, batch_size: int) -> Tensor:
    """(W,) mean over behaviours of each candidate's target cross-entropy (exact, in batched forward passes)."""
    total = torch.zeros(len(candidates), device=candidates.device, dtype=torch.float64)
    for parts in parts_list:
        for start in range(0, len(candidates), batch_size):
            chunk = candidates[start:start + batch_size]
            n = len(chunk)
            ids = torch.cat([parts.before.expand(n, -1), chunk, parts.after.expand(n, -1),
                             parts.target.expand(n, -1)], dim=1)
            logits = model(input_ids=ids).logits
            begin = ids.shape[1] - len(parts.target)
            predicted = _upcast(logits[:, begin - 1:-1])                                    # (n, Lt, V)
            loss = F.cross_entropy(predicted.transpose(1, 2), parts.target.expand(n, -1), reduction="none")
            total[start:start + n] += loss.mean(1).double()
    return total / len(parts_list)


@torch.no_grad()
def targets_reached(model, parts_list: list[Parts], suffix_ids: Tensor) -> bool:
    """Every target is the greedy continuation of its prompt with this suffix."""
    for parts in parts_list:
        ids = torch.cat([parts.before, suffix_ids, parts.after, parts.target]).unsqueeze(0)
        logits = model(input_ids=ids).logits[0]
        begin = ids.shape[1] - len(parts.target)
        if not torch.equal(logits[begin - 1:-1].argmax(-1), parts.target):
            return False
    return True


def initial_suffix(tokenizer, cfg: GCGConfig) -> list[int]:
    text = cfg.suffix_init if cfg.suffix_init is not None else " ".join(["x"] * cfg.suffix_length)
    ids = token_ids(text, tokenizer)
    if not ids:
        raise ValueError("suffix_init encodes to no token")
    return ids


def run_gcg(model, tokenizer, behaviours: list[Behaviour], cfg: GCGConfig, progress=None) -> GCGResult:
    """One suffix for all `behaviours` (one behaviour: the per-behaviour attack)."""
    if not behaviours:
        raise ValueError("GCG needs at least one behaviour")
    model.eval().requires_grad_(False)
    device = embedding_matrix(model).device
    parts_list = [behaviour_parts(tokenizer, b, cfg.placement, device) for b in behaviours]
    forbidden = forbidden_tokens(tokenizer, cfg.allow_non_ascii)
    if len(tokenizer) - len(forbidden) < cfg.topk:
        raise ValueError(f"topk={cfg.topk} but only {len(tokenizer) - len(forbidden)} tokens are allowed in a suffix")
    generator = torch.Generator().manual_seed(cfg.seed)
    suffix = torch.tensor(initial_suffix(tokenizer, cfg), dtype=torch.long, device=device)
    best = candidate_losses(model, parts_list, suffix.unsqueeze(0), cfg.batch_size)[0].item()
    best_suffix = suffix
    result = GCGResult(tokenizer.decode(suffix.tolist()), suffix.tolist(), [best], [best])
    started = time.perf_counter()
    for step in range(1, cfg.steps + 1):
        grad = token_gradient(model, parts_list, suffix)
        candidates = sample_candidates(suffix, grad, forbidden, cfg.search_width, cfg.topk, cfg.n_replace, generator)
        candidates = candidates[survives_retokenisation(tokenizer, candidates).to(candidates.device)]
        if len(candidates) == 0:                 # every swap re-tokenised differently: try again from the same suffix
            result.losses.append(best)
            result.current_losses.append(result.current_losses[-1])
            result.steps = step
            continue
        losses = candidate_losses(model, parts_list, candidates, cfg.batch_size)
        i = int(losses.argmin())
        suffix, current = candidates[i], losses[i].item()
        if current < best:
            best, best_suffix = current, suffix
        result.losses.append(best)
        result.current_losses.append(current)
        result.steps = step
        if progress is not None:
            progress(step, best)
        if cfg.early_stop and targets_reached(model, parts_list, best_suffix):
            result.stopped_early = True
            break
    result.suffix, result.suffix_ids = tokenizer.decode(best_suffix.tolist()), best_suffix.tolist()
    result.seconds = time.perf_counter() - started
    return result


def with_suffix(behaviour: Behaviour, suffix: str, placement: str) -> list[dict[str, str]]:
    """The chat messages of a behaviour with the suffix in place (what the attacked model is asked)."""
    user = placement.replace("{request}", behaviour.request).replace(MARKER, suffix)
    return ([{"role": "system", "content": behaviour.system}] if behaviour.system else []) + \
        [{"role": "user", "content": user}]

"""Scalar reward models (and PPO critics): a transformer body, a pooled hidden state, a fresh Linear(hidden, 1).

Three poolings, chosen in the config:
- ``last``: a causal LM's body (the LM head dropped, as in Ziegler et al. 2019 and InstructGPT) read at the last
  non-pad token of prompt ‖ response, which the model has seen whole. The same module read at *every* position is a
  PPO critic, V(s_t) (``token_values``).
- ``mean``: an encoder (BERT, MiniLM) mean-pooled over its tokens, the pooling sentence-transformers trained it with.
- ``classifier``: any ``AutoModelForSequenceClassification`` with num_labels=1 (its own pooling and head).

Saved as a Hugging Face directory: the body (or classifier) via ``save_pretrained``, the tokenizer, ``head.pt`` and
``reward_model.json`` (pooling and the normalisation statistics). ``score`` returns (raw − mean) / std, so a
normalised model scores the reference policy's samples with mean 0 and std 1 (Ziegler et al. 2019, §2.2).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

from alignlab.data.chat import encode_prompt, encode_response
from alignlab.data.records import Prompt
from alignlab.models import DTYPES, load_tokenizer, model_dir

Pooling = Literal["last", "mean", "classifier"]
META_FILE = "reward_model.json"
HEAD_FILE = "head.pt"


class RewardModel(nn.Module):
    """r(x, y) = w·pool(body(x ‖ y)) + b, and its normalisation (mean, std) for ``score``."""

    def __init__(self, body: nn.Module, head: nn.Linear | None, tokenizer, pooling: Pooling, max_length: int,
                 mean: float = 0.0, std: float = 1.0):
        super().__init__()
        assert (head is None) == (pooling == "classifier"), "a classifier carries its own head; others need one"
        self.body, self.head, self.tokenizer = body, head, tokenizer
        self.pooling, self.max_length = pooling, max_length
        self.mean, self.std = mean, std

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Raw (unnormalised) rewards of right-padded sequences: (B, T), (B, T) → (B,)."""
        if self.pooling == "classifier":
            return self.body(input_ids=input_ids, attention_mask=attention_mask).logits[:, 0].float()
        hidden = self.body(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state   # (B, T, H)
        if self.pooling == "mean":
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)                               # (B, T, 1)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)                       # (B, H)
        else:
            last = attention_mask.sum(1) - 1                                                        # (B,)
            pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]              # (B, H)
        return self.head(pooled).squeeze(-1).float()

    def token_values(self, input_ids: Tensor, attention_mask: Tensor, position_ids: Tensor | None = None) -> Tensor:
        """The head at every position (a critic's V(s_t) for the prefix ending at t): (B, T) → (B, T)."""
        assert self.pooling == "last", f"per-token values need a causal body (pooling 'last'), not {self.pooling!r}"
        hidden = self.body(input_ids=input_ids, attention_mask=attention_mask,
                           position_ids=position_ids).last_hidden_state                            # (B, T, H)
        return self.head(hidden).squeeze(-1).float()

    def encode(self, prompt: Prompt, response: str) -> list[int]:
        """Token ids of prompt ‖ response as this model reads them, at most max_length (the start is cut, so the
        response's end — where a causal model is read — is kept)."""
        if self.tokenizer.chat_template is not None or self.pooling == "last":
            prompt_ids = encode_prompt(prompt, self.tokenizer)
            return (prompt_ids + encode_response(prompt_ids, response, self.tokenizer))[-self.max_length:]
        # An encoder has no chat template: the conversation as text, paired with the response ([SEP] between).
        # Over budget, the response keeps at least half and the prompt keeps its end (the question answered).
        budget = self.max_length - self.tokenizer.num_special_tokens_to_add(pair=True)
        prompt_ids = self.tokenizer(render_text(prompt), add_special_tokens=False)["input_ids"]
        response_ids = self.tokenizer(response, add_special_tokens=False)["input_ids"]
        response_ids = response_ids[:max(budget // 2, budget - len(prompt_ids))]
        prompt_ids = prompt_ids[len(prompt_ids) - (budget - len(response_ids)):] if \
            len(prompt_ids) + len(response_ids) > budget else prompt_ids
        # Decoding the kept ids and encoding the pair adds the special tokens (transformers 5 has no public call
        # for ids); WordPiece round-trips, and truncation only guards the length.
        return self.tokenizer(self.tokenizer.decode(prompt_ids), self.tokenizer.decode(response_ids),
                              truncation="longest_first", max_length=self.max_length)["input_ids"]

    def raw_scores(self, prompts: list[Prompt], responses: list[str], batch_size: int = 64) -> Tensor:
        """Unnormalised rewards of (prompt, response) pairs, (N,) on the CPU, without gradients."""
        assert len(prompts) == len(responses), (len(prompts), len(responses))
        encoded = [self.encode(p, r) for p, r in zip(prompts, responses)]
        out = []
        with torch.inference_mode():
            for start in range(0, len(encoded), batch_size):
                ids, mask = pad_right(encoded[start:start + batch_size], self.tokenizer.pad_token_id)
                out.append(self(ids.to(self.device), mask.to(self.device)).cpu())
        return torch.cat(out) if out else torch.zeros(0)

    def score(self, prompts: list[Prompt], responses: list[str], batch_size: int = 64) -> Tensor:
        """Normalised rewards (raw − mean) / std, (N,)."""
        return (self.raw_scores(prompts, responses, batch_size) - self.mean) / self.std


def render_text(prompt: Prompt) -> str:
    """A prompt as plain text for an encoder: chat turns as `User: …` lines (HH's own convention)."""
    if isinstance(prompt, str):
        return prompt
    return "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in prompt)


def pad_right(sequences: list[list[int]], pad_id: int) -> tuple[Tensor, Tensor]:
    """Right-padded ids and attention mask, (B, T) each."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, :len(seq)] = torch.tensor(seq)
        mask[row, :len(seq)] = 1
    return ids, mask


def new_reward_model(path: str, pooling: Pooling, max_length: int, dtype: str = "float32",
                     seed: int = 0) -> RewardModel:
    """A reward model on the pretrained model at `path` with a freshly initialised head (dropout off).

    The head is N(0, 1/(H+1)) as in Stiennon et al. 2020, so initial rewards have about unit scale."""
    path = model_dir(path)
    config = AutoConfig.from_pretrained(path)
    for key, value in config.to_dict().items():   # dropout off: deterministic rewards and resumable runs
        if isinstance(value, float) and ("dropout" in key or key.endswith("_pdrop")):
            setattr(config, key, 0.0)
    tokenizer = load_tokenizer(path)
    if pooling == "classifier":
        config.num_labels = 1
        config.pad_token_id = tokenizer.pad_token_id
        body = AutoModelForSequenceClassification.from_pretrained(path, config=config, dtype=DTYPES[dtype])
        return RewardModel(body, None, tokenizer, pooling, max_length)
    body = AutoModel.from_pretrained(path, config=config, dtype=DTYPES[dtype])
    generator = torch.Generator().manual_seed(seed)
    head = nn.Linear(config.hidden_size, 1, dtype=DTYPES[dtype])
    with torch.no_grad():
        head.weight.copy_(torch.randn(head.weight.shape, generator=generator) / (config.hidden_size + 1) ** 0.5)
        head.bias.zero_()
    return RewardModel(body, head, tokenizer, pooling, max_length)


def critic_from(model: RewardModel | str, zero_head: bool = False) -> RewardModel:
    """A PPO critic: a copy of a reward model (Ziegler/InstructGPT init) or a policy's body with a zero head
    (initial values 0). Always pooling 'last' (values are read at every position)."""
    if isinstance(model, str):
        critic = new_reward_model(model, "last", max_length=1 << 30)
    else:
        critic = copy.deepcopy(model)
    if zero_head:
        with torch.no_grad():
            critic.head.weight.zero_()
            critic.head.bias.zero_()
    return critic


def save_reward_model(model: RewardModel, out_dir: str | Path) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.body.save_pretrained(out_dir)
    model.tokenizer.save_pretrained(out_dir)
    if model.head is not None:
        torch.save(model.head.state_dict(), out_dir / HEAD_FILE)
    meta = {"pooling": model.pooling, "max_length": model.max_length, "mean": model.mean, "std": model.std}
    (out_dir / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return out_dir


def load_reward_model(path: str | Path, dtype: str = "float32") -> RewardModel:
    """A reward model saved by ``save_reward_model`` (normalisation statistics included), in eval mode."""
    path = Path(path)
    if not (path / META_FILE).is_file():
        from alignlab.config import ConfigError
        raise ConfigError(f"{path} is not a reward model directory (no {META_FILE}); train one with "
                          "`alignlab rm CONFIG` and pass its out_dir/model")
    meta = json.loads((path / META_FILE).read_text())
    tokenizer = load_tokenizer(str(path))
    if meta["pooling"] == "classifier":
        body, head = AutoModelForSequenceClassification.from_pretrained(path, dtype=DTYPES[dtype]), None
    else:
        body = AutoModel.from_pretrained(path, dtype=DTYPES[dtype])
        head = nn.Linear(body.config.hidden_size, 1, dtype=DTYPES[dtype])
        head.load_state_dict(torch.load(path / HEAD_FILE, weights_only=True))
    model = RewardModel(body, head, tokenizer, meta["pooling"], meta["max_length"], meta["mean"], meta["std"])
    return model.eval()


def export_sequence_classifier(path: str | Path, out_dir: str | Path) -> Path:
    """A causal reward model (pooling "last") as a Hugging Face `AutoModelForSequenceClassification` (num_labels 1)
    that other tools load: the body's weights, and the head folded into the `score` layer with the normalisation,
    score = w·h / std. That layer has no bias in Llama/Qwen/GPT-2, so the exported scores are alignlab's normalised
    scores minus the constant (b − mean)/std, written to alignlab_offset.json: every comparison and ranking is the
    same. HF reads the last token that is not the pad token: use a tokenizer whose pad token is not the end of turn."""
    from alignlab.config import ConfigError
    model = load_reward_model(path)
    out_dir = Path(out_dir)
    if model.pooling == "classifier":
        model.body.save_pretrained(out_dir)
        model.tokenizer.save_pretrained(out_dir)
        return out_dir
    if model.pooling != "last":
        raise ConfigError(f"{path}: a mean-pooled encoder reward model has no Hugging Face sequence-classification "
                          "equivalent (those read a [CLS]/pooler output); use it through alignlab")
    config = copy.deepcopy(model.body.config)
    config.num_labels, config.pad_token_id = 1, model.tokenizer.pad_token_id
    classifier = AutoModelForSequenceClassification.from_config(config)
    classifier.base_model.load_state_dict(model.body.state_dict())
    score = classifier.score if hasattr(classifier, "score") else classifier.get_output_embeddings()
    with torch.no_grad():
        score.weight.copy_(model.head.weight / model.std)
        if getattr(score, "bias", None) is not None:
            score.bias.copy_((model.head.bias - model.mean) / model.std)
    offset = 0.0 if getattr(score, "bias", None) is not None else (model.head.bias.item() - model.mean) / model.std
    classifier.save_pretrained(out_dir)
    model.tokenizer.save_pretrained(out_dir)
    (out_dir / "alignlab_offset.json").write_text(json.dumps({"add_to_scores": offset}) + "\n")
    return out_dir

"""Loading, scoring and saving causal LMs (Hugging Face format, optional LoRA through peft)."""

from __future__ import annotations

import contextlib
import copy
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from peft import LoraConfig as PeftLoraConfig
from peft import PeftModel, get_peft_model
from torch import Tensor
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from alignlab.config import ModelConfig
from alignlab.ops import shifted_token_logps, token_logps

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float64": torch.float64}


def choose_device(name: str = "auto") -> torch.device:
    """The one place a device is chosen: "auto" is the GPU where there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        from alignlab.config import ConfigError
        raise ConfigError(f"run.device={name}, but this machine (or this PyTorch build, {torch.__version__}) has no "
                          "CUDA GPU; use run.device=auto or run.device=cpu")
    return torch.device(name)


def model_dir(path: str | Path) -> str:
    """Where to load a model from: a directory, a hub id, or any output of an alignlab run — a LoRA run's model/
    (its adapter and merged/) gives merged/. A local-looking path that does not exist is an error that says so,
    not a failed download."""
    path = str(path)
    local = Path(path).expanduser()
    if local.is_dir():
        merged = local / "merged"
        return str(merged) if (local / "adapter_config.json").is_file() and merged.is_dir() else str(local)
    parts = path.split("/")
    looks_local = path.startswith((".", "/", "~")) or len(parts) > 2 or (len(parts) == 2 and Path(parts[0]).is_dir())
    if looks_local or local.suffix in (".json", ".safetensors", ".bin"):
        from alignlab.config import ConfigError
        raise ConfigError(f"model path {path} does not exist (no such directory here, {Path.cwd()}); check the path "
                          "(a Hugging Face hub id looks like owner/name)")
    return path


ATTENTION_PROJECTIONS = {"llama": ["q_proj", "k_proj", "v_proj", "o_proj"], "mistral": ["q_proj", "k_proj", "v_proj",
                         "o_proj"], "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj"], "gpt2": ["c_attn", "c_proj"]}


def lora_targets(names: list[str], model) -> list[str] | str:
    """peft's target_modules: the names given, "all-linear", or the architecture's attention projections; names
    that match no module of the model are an error naming the modules it has."""
    if names == ["all-linear"] or (not names and model.config.model_type not in ATTENTION_PROJECTIONS):
        return "all-linear"
    names = names or ATTENTION_PROJECTIONS[model.config.model_type]
    linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules()
                     if isinstance(m, torch.nn.Linear) or type(m).__name__ == "Conv1D"})
    missing = [n for n in names if n not in linear]
    if missing:
        from alignlab.config import ConfigError
        raise ConfigError(f"model.lora.target_modules {missing} name no linear layer of this "
                          f"{model.config.model_type} model (its layers: {', '.join(linear)}); or use [all-linear]")
    return names


def check_max_length(path: str, max_length: int, key: str) -> None:
    """A sequence length the model cannot take (longer than its position table) is a config error, not an
    IndexError mid-run or positions silently past what the model was trained on."""
    config = AutoConfig.from_pretrained(model_dir(path))
    positions = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    if positions is not None and max_length > positions:
        from alignlab.config import ConfigError
        raise ConfigError(f"{key}={max_length} is longer than the {positions} positions of {path} "
                          f"({config.model_type}); set {key} ≤ {positions}")


def load_tokenizer(path: str, chat_template: str | None = None):
    """The tokenizer saved with the model (its chat template is the single source of truth), or with
    `chat_template` (a Jinja template or the path of a .jinja file) in place of its own."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir(path))
    if chat_template is not None:
        template = Path(chat_template)
        tokenizer.chat_template = template.read_text() if chat_template.endswith(".jinja") and template.is_file() \
            else chat_template
    if tokenizer.pad_token is None:
        # Many base tokenizers (Llama, Mistral) have no pad token. Padded positions are masked out of attention
        # and loss, so any id works; the EOS is the usual choice and adds no embedding row.
        tokenizer.pad_token = tokenizer.eos_token
    from alignlab.data.chat import turn_end_id
    end = turn_end_id(tokenizer) if tokenizer.eos_token_id is not None else None     # encoders may have no EOS
    if end is not None and end != tokenizer.eos_token_id and not getattr(tokenizer, "_alignlab_told", False):
        tokenizer._alignlab_told = True
        print(f"alignlab: the chat template of {path} ends an assistant turn with "
              f"{tokenizer.convert_ids_to_tokens(end)!r}, not the eos_token {tokenizer.eos_token!r}: every trainer ends "
              "responses with the former and sampling stops at either", file=sys.stderr)
    return tokenizer


def load_causal_lm(cfg: ModelConfig) -> PreTrainedModel | PeftModel:
    """AutoModelForCausalLM from a local path or hub name, in cfg.dtype, with dropout off and optional LoRA."""
    path = model_dir(cfg.path)
    config = AutoConfig.from_pretrained(path)
    if not cfg.keep_dropout:
        # Dropout off: with it, the policy and a frozen reference differ at step 0 (DPO's loss is no longer log 2,
        # PPO's ratio is no longer 1), losses are noisy and runs are not reproducible. TRL disables it too.
        # The zeros are in the config, so a model saved from here records dropout 0 in its config.json.
        for key, value in config.to_dict().items():
            if isinstance(value, float) and ("dropout" in key or key.endswith("_pdrop")):
                setattr(config, key, 0.0)
    model = AutoModelForCausalLM.from_pretrained(path, config=config, dtype=DTYPES[cfg.dtype])
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if cfg.lora.enabled:
        lora = PeftLoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                              target_modules=lora_targets(cfg.lora.target_modules, model), task_type="CAUSAL_LM")
        model = get_peft_model(model, lora)
    return model


def forward_logps(model, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
    """log p(token t+1 | tokens ≤ t) for every position: (B, T), (B, T) → (B, T-1), in float32 (float64 models:
    float64)."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits      # (B, T, V)
    return shifted_token_logps(_at_least_float32(logits), input_ids)                # (B, T-1)


def _at_least_float32(logits: Tensor) -> Tensor:
    """bf16/fp16 logits upcast for the log-softmax; float64 ones (numerical checks) kept as they are."""
    return logits.to(torch.promote_types(logits.dtype, torch.float32))


# Architectures whose causal-LM forward is exactly `logits = get_output_embeddings()(body(...).last_hidden_state)`,
# so the head can be applied to a subset of positions. Others (Gemma 2/3's logit soft-capping, Cohere's logit
# scale, ...) do more after the head and take the full-logits path.
HEAD_ON_HIDDEN = {"llama", "mistral", "qwen2", "qwen3", "gpt2", "gpt_neox", "phi3", "olmo", "olmo2", "smollm3"}


def _body_and_head(model) -> tuple[torch.nn.Module, torch.nn.Module] | None:
    """The transformer body and the LM head of a causal LM (LoRA: of peft's wrapped model, whose layers carry the
    adapters), or None where the logits are not the head applied to the body's last hidden states."""
    lm = model.get_base_model() if isinstance(model, PeftModel) else model
    if lm.config.model_type not in HEAD_ON_HIDDEN:
        return None
    return lm.base_model, lm.get_output_embeddings()


def masked_logps(model, input_ids: Tensor, attention_mask: Tensor, mask: Tensor) -> Tensor:
    """log p(token t+1 | tokens ≤ t) where mask[:, t+1] is 1, and 0 elsewhere: (B, T) ×3 → (B, T-1), float32.

    The LM head runs only on the M positions whose next token is counted: hidden states (M, H) → logits (M, V),
    instead of (B, T, V) logits for every prompt and padding position. Same values and gradients as
    forward_logps(...) * mask[:, 1:]; architectures outside HEAD_ON_HIDDEN take that full-logits path.
    """
    assert mask.shape == input_ids.shape, f"mask {tuple(mask.shape)} vs input_ids {tuple(input_ids.shape)}"
    target = mask[:, 1:]                                                            # (B, T-1)
    parts = _body_and_head(model)
    if parts is None:
        return forward_logps(model, input_ids, attention_mask) * target
    body, head = parts
    hidden = body(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state     # (B, T, H)
    rows, cols = target.nonzero(as_tuple=True)                                      # (M,), (M,)
    logits = head(hidden[rows, cols])                                               # (M, V)
    logps = token_logps(_at_least_float32(logits), input_ids[rows, cols + 1])       # (M,)
    return logps.new_zeros(target.shape).index_put((rows, cols), logps)             # (B, T-1)


class MaskedLogps(torch.nn.Module):
    """The policy as a module whose forward is masked_logps: what a data-parallel engine wraps (DDP), so the fast
    path (the LM head on the counted positions only) runs inside the wrapper's forward and its gradients are
    synchronised. Called directly, the same numbers as masked_logps(model, ...). mixed_precision="bf16": under
    bfloat16 autocast (the log-probs come out in float32; the weights keep their dtype)."""

    def __init__(self, model, mixed_precision: str = "no"):
        super().__init__()
        self.model = model
        self.mixed_precision = mixed_precision

    def forward(self, input_ids: Tensor, attention_mask: Tensor, mask: Tensor) -> Tensor:
        with autocast(self.mixed_precision, input_ids.device):
            return masked_logps(self.model, input_ids, attention_mask, mask)


def autocast(mixed_precision: str, device: torch.device):
    """bfloat16 autocast on `device` for mixed_precision="bf16"; nothing for "no"."""
    if mixed_precision == "no":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)


def check_mixed_precision(model_cfg, mixed_precision: str) -> None:
    """bf16 autocast keeps float32 master weights: a bfloat16 or float64 model is refused, with what to set."""
    if mixed_precision != "no" and model_cfg.dtype != "float32":
        from alignlab.config import ConfigError
        raise ConfigError(f"optim.mixed_precision={mixed_precision} computes in bf16 over float32 master weights: set "
                          f"model.dtype=float32 (got {model_cfg.dtype}), or optim.mixed_precision=no to train in "
                          f"{model_cfg.dtype} throughout")


def sequence_logps(model, input_ids: Tensor, attention_mask: Tensor, mask: Tensor) -> Tensor:
    """Summed log-probs of the masked tokens of each row: input_ids, attention_mask, mask (B, T) → (B,).
    mask[b, t] = 1 counts token t (the target of position t-1); mask[:, 0] is ignored (nothing predicts it)."""
    return masked_logps(model, input_ids, attention_mask, mask).sum(-1)


@contextmanager
def disabled_adapter(model: PeftModel) -> Iterator[PeftModel]:
    """The LoRA model with its adapters switched off, i.e. the frozen base: a reference model for free."""
    with model.disable_adapter():
        yield model


def save_model(model, tokenizer, out_dir: str | Path, state_dict: dict | None = None) -> Path:
    """Hugging Face format in out_dir. A LoRA model saves its adapter there and a merged copy in out_dir/merged,
    so that anything can load it with from_pretrained (the training model is left unmerged). `state_dict`: the
    weights to write instead of the model's own (a sharded model's, gathered)."""
    out_dir = Path(out_dir)
    if state_dict is not None:
        model.save_pretrained(out_dir, state_dict=state_dict)
        tokenizer.save_pretrained(out_dir)
        return out_dir
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    if isinstance(model, PeftModel):
        merged = copy.deepcopy(model).merge_and_unload()
        merged.save_pretrained(out_dir / "merged")
        tokenizer.save_pretrained(out_dir / "merged")
    return out_dir

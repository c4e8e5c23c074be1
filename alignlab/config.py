"""Typed configs: YAML keys map 1:1 to dataclass fields, dotted `key=value` overrides, unknown keys are errors.

`load_config(SFTConfig, "configs/sft/gym.yaml", ["optim.lr=1e-5"])` → SFTConfig. Each entrypoint has one config
dataclass built by composition from the shared pieces below (`ModelConfig`, `OptimConfig`, `RunConfig`).
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml


class ConfigError(ValueError):
    """A config the user wrote is wrong; the message names the key, the file (or override) and what to do."""


# ---------------------------------------------------------------------------------------------------------------
# Shared pieces


@dataclass
class LoraConfig:
    enabled: bool = False
    """Train low-rank adapters (peft LoRA) instead of all weights."""
    r: int = 16
    """Rank of each adapter (number of columns of A and rows of B)."""
    alpha: float = 32.0
    """LoRA scaling numerator: the adapter output is multiplied by alpha / r."""
    dropout: float = 0.0
    """Dropout probability on the adapter input (0 keeps training deterministic)."""
    target_modules: list[str] = field(default_factory=list)
    """Names of the linear modules that get adapters (as in peft), or [all-linear] (every linear layer but the
    output head); empty = the architecture's attention projections (Llama/Mistral/Qwen2: q/k/v/o_proj, GPT-2:
    c_attn/c_proj, others: all-linear)."""

    def problems(self) -> list[tuple[str, str]]:
        return at_least(self, r=1) + positive(self, "alpha") + ([("dropout", "must be in [0, 1)")]
                                                               if not 0 <= self.dropout < 1 else [])


@dataclass
class ModelConfig:
    path: str
    """Local directory in Hugging Face format, or a hub name (needs network)."""
    dtype: Literal["float32", "bfloat16", "float64"] = "float32"
    """dtype of the weights (and of training); bfloat16 halves memory on GPUs that support it; float64 is for
    numerical checks (equivalence tests that must hold on any CPU)."""
    keep_dropout: bool = False
    """Keep the checkpoint's dropout probabilities (off by default: see alignlab.models.load_causal_lm)."""
    chat_template: str | None = None
    """Replace the tokenizer's chat template: a Jinja template, or the path of a .jinja file (None = the model's
    own). The saved model carries it, so the next command uses it too."""
    lora: LoraConfig = field(default_factory=LoraConfig)
    """Optional low-rank adapters."""
    gradient_checkpointing: bool = False
    """Keep only each transformer block's input in the forward and recompute the rest in the backward: activation
    memory falls from every block's to one block's, for about a third more compute (transformers' own
    gradient_checkpointing_enable, non-reentrant). The same gradients."""


@dataclass
class OptimConfig:
    lr: float = 1e-5
    """Peak learning rate (reached after warmup_steps)."""
    batch_size: int = 8
    """Examples per micro-batch (one forward/backward)."""
    grad_accum: int = 1
    """Micro-batches per optimizer step; the step's batch is batch_size × grad_accum examples."""
    epochs: int = 1
    """Passes over the training data (used when max_steps is 0)."""
    max_steps: int = 0
    """Optimizer steps to run; 0 = as many as `epochs` passes need."""
    warmup_steps: int = 0
    """Optimizer steps of linear warmup from 0 to lr."""
    weight_decay: float = 0.0
    """AdamW decoupled weight decay, applied to matrices only (not to biases and norms)."""
    max_grad_norm: float = 1.0
    """Clip the global gradient L2 norm to this value; 0 = no clipping."""
    lr_schedule: Literal["constant", "cosine", "linear"] = "cosine"
    """Shape of the learning rate after warmup: constant, cosine to 0, or linear to 0 at the last step."""
    mixed_precision: Literal["no", "bf16"] = "no"
    """bf16: the policy's forward and backward run under bfloat16 autocast (matmuls in bf16, log-softmax and the
    losses in float32) while weights, gradients and Adam state stay float32, the master weights (model.dtype must be
    float32). sft and dpo; on GPUs with bf16 units about twice the matmul throughput and half the activations."""

    def problems(self) -> list[tuple[str, str]]:
        return (positive(self, "lr") + at_least(self, batch_size=1, grad_accum=1, epochs=1, max_steps=0,
                                                warmup_steps=0, weight_decay=0, max_grad_norm=0))


@dataclass
class RunConfig:
    out_dir: str = "runs/default"
    """Directory for config.yaml, metrics.jsonl, tb/, checkpoints/ and the final model/."""
    seed: int = 0
    """Seed for model init (adapters/heads), data order and sampling."""
    log_every: int = 1
    """Write metrics every this many optimizer steps (and at the last step)."""
    save_every: int = 0
    """Save a resumable checkpoint every this many optimizer steps; 0 = only the final model."""
    keep_checkpoints: int = 2
    """Keep the newest this many checkpoints and delete older ones; 0 = keep all."""
    resume: bool = False
    """Continue from the newest checkpoint in out_dir/checkpoints (if there is none, start from scratch)."""
    tensorboard: bool = True
    """Also write metrics to TensorBoard in out_dir/tb."""
    wandb: bool = False
    """Also log metrics and the config to Weights & Biases (`pip install wandb`; project "alignlab", run named after
    out_dir; WANDB_* environment variables apply)."""
    mlflow: bool = False
    """Also log metrics and the config to MLflow (`pip install mlflow`; MLFLOW_TRACKING_URI applies)."""
    progress: bool = True
    """Show a progress bar on stderr."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where to train: auto = the GPU when there is one. Bit-identical resume is promised on CPU."""

    def problems(self) -> list[tuple[str, str]]:
        return at_least(self, log_every=1, save_every=0, keep_checkpoints=0)


def at_least(cfg, **minimums) -> list[tuple[str, str]]:
    """Range rules for config classes' `problems()`: each named field ≥ its minimum."""
    return [(name, f"must be ≥ {low}") for name, low in minimums.items() if getattr(cfg, name) < low]


def positive(cfg, *names: str) -> list[tuple[str, str]]:
    return [(name, "must be > 0") for name in names if not getattr(cfg, name) > 0]


# ---------------------------------------------------------------------------------------------------------------
# Loading


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads `1e-5` as a string (it wants `1.0e-5`); configs are full of such floats, so accept them."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d[\d_]*)?(?:\.\d*)?[eE][-+]?\d+$|^[-+]?\d[\d_]*\.\d*$|^[-+]?\.\d+$"),
    list("-+0123456789."),
)


def parse_value(text: str) -> Any:
    """A command-line value as a YAML scalar or list: `1e-5` → 1e-05, `true` → True, `[a,b]` → ['a', 'b']."""
    return yaml.load(text, Loader=_Loader)


def load_config(cls: type, path: str | Path | None, overrides: list[str] = ()) -> Any:
    """Build `cls` from a YAML file (or only defaults when path is None) and dotted `key=value` overrides."""
    raw: dict = {}
    origin: dict[str, str] = {}          # dotted key → where it was set, for error messages
    where = str(path) if path is not None else "the defaults"
    if path is not None:
        try:
            raw = yaml.load(Path(path).read_text(), Loader=_Loader) or {}
        except FileNotFoundError:
            raise ConfigError(f"config file {path} not found; pass the path of a YAML file under configs/") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of keys to values, got {type(raw).__name__}")
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override '{item}' is not of the form key=value (e.g. optim.lr=1e-5)")
        _set_dotted(raw, key.strip(), parse_value(value), item)
        origin[key.strip()] = f"override '{item}'"
    return _build(cls, raw, "", where, origin)


def build_section(cls: type, raw: Any, section: str, where: str) -> Any:
    """One section of a saved config (e.g. `model:` of a run's config.yaml) as `cls`, checked like load_config."""
    return _build(cls, raw, section + ".", where, {})


def dump_config(cfg: Any) -> dict:
    """The config as plain data (what load_config reads back to an equal config)."""
    return dataclasses.asdict(cfg)


def _set_dotted(raw: dict, key: str, value: Any, item: str) -> None:
    node = raw
    *parents, leaf = key.split(".")
    for i, part in enumerate(parents):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override '{item}': '{'.'.join(parents[:i + 1])}' is a value, not a section")
        node = child
    node[leaf] = value


def _source(key: str, where: str, origin: dict[str, str]) -> str:
    """The override that set `key` (or one of its parents), else the file."""
    parts = key.split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in origin:
            return origin[".".join(parts[:i])]
    return where


def _build(cls: type, raw: Any, prefix: str, where: str, origin: dict[str, str]) -> Any:
    section = prefix.rstrip(".") or "the top level"
    if not isinstance(raw, dict):
        raise ConfigError(f"'{section}' in {_source(section, where, origin)} must be a mapping of keys to values, "
                          f"got {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in raw:
        if key not in fields:
            dotted = prefix + str(key)
            raise ConfigError(f"unknown key '{dotted}' in {_source(dotted, where, origin)} "
                              f"(known keys of {section}: {', '.join(fields)})")
    values = {}
    for name, f in fields.items():
        dotted = prefix + name
        if name in raw:
            value = raw[name]
            if dataclasses.is_dataclass(hints[name]) and isinstance(value, dict) \
                    and f.default_factory is not dataclasses.MISSING:
                # a section given in part keeps the field's own defaults for the rest (not only the class's)
                value = _merged(dataclasses.asdict(f.default_factory()), value)
            values[name] = _convert(hints[name], value, dotted, where, origin)
        elif dataclasses.is_dataclass(hints[name]) and f.default is dataclasses.MISSING \
                and f.default_factory is dataclasses.MISSING:
            values[name] = _build(hints[name], {}, dotted + ".", where, origin)   # reports its own missing keys
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing required key '{dotted}' in {where}; add it to the file or pass {dotted}=...")
    built = cls(**values)
    for name, message in built.problems() if hasattr(built, "problems") else []:
        dotted = prefix + name
        raise ConfigError(f"'{dotted}' in {_source(dotted, where, origin)} {message}, got {getattr(built, name)!r}")
    return built


def _merged(base: dict, update: dict) -> dict:
    out = dict(base)
    for key, value in update.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _convert(hint: Any, value: Any, dotted: str, where: str, origin: dict[str, str]) -> Any:
    """Check `value` against the field's type; the only conversions are int → float and number → str."""
    def fail(expected: str) -> ConfigError:
        return ConfigError(f"'{dotted}' in {_source(dotted, where, origin)} must be {expected}, got {value!r}")

    if dataclasses.is_dataclass(hint):
        return _build(hint, value, dotted + ".", where, origin)
    kind = typing.get_origin(hint)
    args = typing.get_args(hint)
    if kind is Literal:
        if value not in args:
            raise fail(f"one of {', '.join(map(repr, args))}")
        return value
    if kind in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]   # configs use only `X | None` unions
        return _convert(inner, value, dotted, where, origin)
    if kind is list:
        if not isinstance(value, list):
            raise fail(f"a list like [a, b] ({hint})")
        return [_convert(args[0], v, f"{dotted}[{i}]", where, origin) for i, v in enumerate(value)]
    if kind is dict or hint is dict:
        if not isinstance(value, dict):
            raise fail("a mapping")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail("a number")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail("an integer")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise fail("true or false")
        return value
    if hint is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise fail("a string")
        return str(value)   # `out_dir: 2024` is a name, not a number
    raise AssertionError(f"config field '{dotted}' has a type the loader does not know: {hint}")


# Describing a config (`alignlab COMMAND --help`)


def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of a dataclass (the string literal that follows its annotation)."""
    import ast
    import inspect
    import textwrap
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return {}
    body = tree.body[0].body
    docs = {}
    for node, after in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(after, ast.Expr) \
                and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str):
            docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def describe_config(cls: type, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(dotted key, type, default, docstring) of every leaf key of a config dataclass, sections expanded."""
    hints, docs, rows = typing.get_type_hints(cls), field_docs(cls), []
    for f in dataclasses.fields(cls):
        if f.name.startswith("_"):
            continue
        hint, key = hints[f.name], prefix + f.name
        if dataclasses.is_dataclass(hint):
            rows += describe_config(hint, key + ".")
            continue
        if f.default is not dataclasses.MISSING:
            default = repr(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            default = repr(f.default_factory())
        else:
            default = "(required)"
        kind = getattr(hint, "__name__", None) if not typing.get_args(hint) else None
        rows.append((key, kind or str(hint).replace("typing.", ""), default, docs.get(f.name, "")))
    return rows


def config_help(cls: type) -> str:
    lines = ["", "", "keys (YAML or key=value; sections as a.b=value; --print-config prints the resolved config):"]
    for key, kind, default, doc in describe_config(cls):
        lines.append(f"  {key}: {kind} = {default}")
        if doc:
            lines.append(f"      {doc}")
    return "\n".join(lines)

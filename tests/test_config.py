"""Configs: every shipped YAML loads into its dataclass; typos, bad values and missing keys are errors that say
which key, where, and what is allowed."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from alignlab.best_of_n import BestOfNConfig
from alignlab.config import ConfigError, ModelConfig, OptimConfig, RunConfig, dump_config, load_config
from alignlab.gym.preferences import PreferencesConfig
from alignlab.gym.pretrain import PretrainConfig
from alignlab.pipeline import PipelineConfig
from alignlab.redteam.stage import RedteamConfig
from alignlab.train.dpo import DPOConfig
from alignlab.train.ppo import PPOConfig
from alignlab.train.reward import RMConfig
from alignlab.train.sft import SFTConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

# Which dataclass each shipped YAML is for: a file entry ("tiny/sft.yaml") wins over its directory ("sft").
# Add your entrypoint here when you add configs (e.g. "dpo": DPOConfig, "tiny/dpo.yaml": DPOConfig).
CONFIG_CLASSES: dict[str, type] = {
    "sft": SFTConfig,
    "tiny/sft.yaml": SFTConfig,
    "gym/pretrain.yaml": PretrainConfig,
    "pipeline": PipelineConfig,
    "dpo": DPOConfig,
    "tiny/dpo.yaml": DPOConfig,
    "tiny/kto.yaml": DPOConfig,
    "rm": RMConfig,
    "tiny/rm.yaml": RMConfig,
    "gym/preferences.yaml": PreferencesConfig,
    "ppo": PPOConfig,
    "best_of_n": BestOfNConfig,
    "examples/sft.yaml": SFTConfig,
    "examples/dpo.yaml": DPOConfig,
    "examples/pipeline.yaml": PipelineConfig,
    "tiny/ppo.yaml": PPOConfig,
    "redteam/gym.yaml": RedteamConfig,
    "redteam/finetune_gym.yaml": SFTConfig,
}


def config_class(path: Path) -> type:
    relative = path.relative_to(CONFIGS)
    for key in (relative.as_posix(), relative.parent.as_posix()):
        if key in CONFIG_CLASSES:
            return CONFIG_CLASSES[key]
    raise AssertionError(f"configs/{relative} has no dataclass: add it (or its directory) to CONFIG_CLASSES "
                         "in tests/test_config.py")


# Configs of other tools, read by those tools' own loaders in the tests named here.
OTHER_TOOLS = {"accelerate": "tests/train/test_distributed.py::"
                              "test_the_accelerate_configs_are_what_accelerate_reads_and_launch_their_engine"}
SHIPPED = [p for p in sorted(CONFIGS.rglob("*.yaml")) + sorted(CONFIGS.rglob("*.yml"))
           if p.relative_to(CONFIGS).parts[0] not in OTHER_TOOLS]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.relative_to(CONFIGS).as_posix())
def test_every_shipped_yaml_loads_into_its_dataclass(path):
    cfg = load_config(config_class(path), path, [])
    # Round trip: what a run writes to config.yaml loads back to the same config.
    assert load_config(type(cfg), None, _as_overrides(dump_config(cfg))) == cfg


def _as_overrides(data: dict, prefix: str = "") -> list[str]:
    import json
    out = []
    for key, value in data.items():
        if isinstance(value, dict):
            out += _as_overrides(value, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}={json.dumps(value)}")      # JSON is YAML: strings stay strings
    return out


def test_there_are_shipped_configs():
    assert CONFIGS / "tiny" / "sft.yaml" in SHIPPED and CONFIGS / "sft" / "example_chat.yaml" in SHIPPED
    assert sorted(p.name for p in (CONFIGS / "accelerate").glob("*.yaml")) == ["ddp.yaml", "fsdp2.yaml"]  # each tested


# -- strictness --------------------------------------------------------------------------------------------------


@dataclass
class Inner:
    size: int = 3
    """A count."""
    names: list[str] = field(default_factory=list)
    """Some names."""


@dataclass
class Outer:
    model: ModelConfig
    inner: Inner = field(default_factory=Inner)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)
    mode: Literal["a", "b"] = "a"
    """Which mode."""
    beta: float = 0.1
    """A float."""
    note: str | None = None
    """Optional text."""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return path


def test_yaml_and_overrides_fill_the_dataclass(tmp_path):
    path = write(tmp_path, "model:\n  path: m\ninner:\n  size: 5\noptim:\n  lr: 1e-5\nbeta: 2\n")
    cfg = load_config(Outer, path, ["inner.names=[a.jsonl, b.jsonl]", "optim.lr=3e-4", "mode=b",
                                    "model.lora.enabled=true", "note=null"])
    assert cfg.model.path == "m" and cfg.model.lora.enabled is True and cfg.inner.size == 5
    assert cfg.inner.names == ["a.jsonl", "b.jsonl"]
    assert cfg.optim.lr == 3e-4 and isinstance(cfg.optim.lr, float)
    assert cfg.beta == 2.0 and isinstance(cfg.beta, float)      # an int where a float is expected is fine
    assert cfg.mode == "b" and cfg.note is None
    assert cfg.optim.batch_size == OptimConfig().batch_size       # untouched defaults stay


def test_scientific_floats_in_yaml_are_numbers(tmp_path):
    # YAML 1.1 reads "1e-5" as a string; the loader must not make the user write 1.0e-5.
    assert load_config(Outer, write(tmp_path, "model: {path: m}\noptim: {lr: 1e-5}\n"), []).optim.lr == 1e-5


def test_unknown_key_in_file_names_key_file_and_known_keys(tmp_path):
    path = write(tmp_path, "model:\n  path: m\noptim:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError) as e:
        load_config(Outer, path, [])
    assert str(e.value).startswith(f"unknown key 'optim.lrr' in {path} (known keys of optim: lr, batch_size,")


def test_unknown_key_in_override_names_the_override(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'run.sed' in override 'run.sed=3' \(known keys of run: "):
        load_config(Outer, write(tmp_path, "model: {path: m}\n"), ["run.sed=3"])


def test_unknown_top_level_key(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'bta' in .*cfg.yaml \(known keys of the top level: model,"):
        load_config(Outer, write(tmp_path, "model: {path: m}\nbta: 1\n"), [])


def test_literal_lists_allowed_values(tmp_path):
    with pytest.raises(ConfigError, match=r"'optim.lr_schedule' in .* must be one of 'constant', 'cosine', "
                                          r"'linear', got 'cosin'"):
        load_config(Outer, write(tmp_path, "model: {path: m}\noptim: {lr_schedule: cosin}\n"), [])
    with pytest.raises(ConfigError, match="'model.dtype' in override 'model.dtype=fp16' must be one of"):
        load_config(Outer, write(tmp_path, "model: {path: m}\n"), ["model.dtype=fp16"])


def test_wrong_types_are_errors(tmp_path):
    path = write(tmp_path, "model: {path: m}\n")
    with pytest.raises(ConfigError, match="'optim.batch_size' in override 'optim.batch_size=2.5' must be an integer"):
        load_config(Outer, path, ["optim.batch_size=2.5"])
    with pytest.raises(ConfigError, match="'run.resume' .* must be true or false, got 'yes please'"):
        load_config(Outer, path, ["run.resume=yes please"])
    with pytest.raises(ConfigError, match=r"'inner.names' .* must be a list"):
        load_config(Outer, path, ["inner.names=a.jsonl"])
    with pytest.raises(ConfigError, match="'optim' in .* must be a mapping"):
        load_config(Outer, write(tmp_path, "model: {path: m}\noptim: 3\n"), [])


def test_missing_required_key(tmp_path):
    with pytest.raises(ConfigError, match=r"missing required key 'model.path' in .*cfg.yaml"):
        load_config(Outer, write(tmp_path, "inner: {size: 1}\n"), [])


def test_malformed_override_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="override 'optim.lr' is not of the form key=value"):
        load_config(Outer, None, ["optim.lr"])
    with pytest.raises(ConfigError, match="nope.yaml not found"):
        load_config(Outer, tmp_path / "nope.yaml", [])


def test_dump_config_round_trips(tmp_path):
    import yaml
    cfg = load_config(Outer, write(tmp_path, "model: {path: m}\n"), ["inner.names=[x]", "optim.lr=1e-4"])
    dumped = tmp_path / "dumped.yaml"
    dumped.write_text(yaml.safe_dump(dump_config(cfg)))
    assert load_config(Outer, dumped, []) == cfg


def test_every_config_field_has_a_docstring():
    # Attribute docstrings are the config's documentation (units, meaning); a field without one is a gap.
    import ast
    import inspect

    import alignlab.config
    import alignlab.train.sft
    for module in (alignlab.config, alignlab.train.sft):
        tree = ast.parse(inspect.getsource(module))
        for node in (n for n in tree.body if isinstance(n, ast.ClassDef) and n.name.endswith("Config")):
            body = node.body
            for i, stmt in enumerate(body):
                if isinstance(stmt, ast.AnnAssign):
                    nxt = body[i + 1] if i + 1 < len(body) else None
                    assert isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant), \
                        f"{module.__name__}.{node.name}.{stmt.target.id} has no docstring"


@pytest.mark.parametrize("cls,path,override,key", [
    (DPOConfig, "configs/dpo/gym.yaml", "beta=-1", "beta"),
    (DPOConfig, "configs/dpo/gym.yaml", "optim.max_steps=-5", "optim.max_steps"),
    (DPOConfig, "configs/dpo/gym.yaml", "loss=dpoo", "loss"),
    (SFTConfig, "configs/sft/gym.yaml", "optim.lr=0", "optim.lr"),
    (PPOConfig, "configs/ppo/gym.yaml", "kl.target=0", "kl.target"),
    (PPOConfig, "configs/ppo/gym.yaml", "model.lora.dropout=1.5", "model.lora.dropout"),
])
def test_values_out_of_range_are_refused_naming_the_key_and_where(cls, path, override, key):
    with pytest.raises(ConfigError, match=rf"^'{key}' in override '{override}' must be"):
        load_config(cls, path, [override])

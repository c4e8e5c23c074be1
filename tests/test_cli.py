"""`alignlab --help` lists only commands that exist: every listed module imports and has its `main`."""

from __future__ import annotations

import importlib

import pytest

from alignlab.cli import COMMANDS, main, usage


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_listed_command_has_a_module_with_main(name):
    module = importlib.import_module(COMMANDS[name][0])
    assert callable(getattr(module, "main", None)), f"alignlab {name}: {COMMANDS[name][0]} has no main()"


def test_help_lists_every_command_and_an_unknown_one_exits_2(capsys):
    assert all(f"  {name} " in usage() for name in COMMANDS)
    assert main(["no-such-command"]) == 2
    assert "unknown command 'no-such-command'" in capsys.readouterr().err


CONFIG_COMMANDS = {"sft": "alignlab.train.sft:SFTConfig", "rm": "alignlab.train.reward:RMConfig",
                   "dpo": "alignlab.train.dpo:DPOConfig", "ppo": "alignlab.train.ppo:PPOConfig",
                   "pipeline": "alignlab.pipeline:PipelineConfig"}


@pytest.mark.parametrize("name", sorted(CONFIG_COMMANDS))
def test_help_lists_every_key_with_its_default_and_doc(name, capsys):
    from alignlab.config import describe_config
    module, cls = CONFIG_COMMANDS[name].split(":")
    config_cls = getattr(importlib.import_module(module), cls)
    assert main([name, "--help"]) == 0
    out = capsys.readouterr().out
    rows = describe_config(config_cls)
    assert rows and all(f"  {key}: " in out for key, *_ in rows)
    documented = [doc for *_, doc in rows if doc]
    assert len(documented) == len(rows), [key for key, _, _, doc in rows if not doc]   # every key says what it is


def test_print_config_prints_the_resolved_config_and_runs_nothing(capsys, tmp_path):
    import yaml

    from alignlab.config import load_config
    from alignlab.train.ppo import PPOConfig
    assert main(["ppo", "configs/ppo/gym.yaml", "kl.target=3", f"run.out_dir={tmp_path / 'x'}", "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["kl"]["target"] == 3.0 and not (tmp_path / "x").exists()
    assert load_config(PPOConfig, "configs/ppo/gym.yaml", ["kl.target=3", f"run.out_dir={tmp_path / 'x'}"]) == \
        load_config(PPOConfig, None, [f"{k}={v}" for k, v in _flat(printed)])


def _flat(tree, prefix=""):
    for key, value in tree.items():
        if isinstance(value, dict) and value and key != "options" and not key.endswith("_options"):
            yield from _flat(value, f"{prefix}{key}.")
        else:
            import json
            yield prefix + key, json.dumps(value)

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


def test_interrupt_and_sigterm_end_with_the_resume_hint(capsys, tmp_path):
    import os
    import signal
    import threading
    import time

    from alignlab.command import run_cli
    from alignlab.train.sft import SFTConfig

    def interrupted(cfg):
        raise KeyboardInterrupt
    args = ["configs/tiny/sft.yaml", f"run.out_dir={tmp_path}"]
    assert run_cli("sft", SFTConfig, interrupted, "usage", args) == 130
    err = capsys.readouterr().err.strip()
    assert err == f"alignlab sft: interrupted; the newest checkpoint in {tmp_path}/checkpoints (if any) continues " \
                  "with the same command and run.resume=true"
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers can only be set on the main thread")
    before = signal.getsignal(signal.SIGTERM)

    def terminated(cfg):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        return "not reached"
    assert run_cli("sft", SFTConfig, terminated, "usage", args) == 130
    assert "interrupted" in capsys.readouterr().err and signal.getsignal(signal.SIGTERM) == before


@pytest.mark.parametrize("command,bad,message", [
    ("ppo", "reward_model.path={tmp}", "is not a reward model directory"),
    ("sft", "run.device=cuda", "has no CUDA GPU"),
    ("sft", "data.max_length=4096", "data.max_length=4096 is longer than the 128 positions"),
    ("dpo", "data.max_length=4096", "data.max_length=4096 is longer than the 128 positions"),
    ("rm", "model.max_length=4096", "model.max_length=4096 is longer than the 128 positions"),
    ("dpo", "beta=-1", "'beta' in override 'beta=-1' must be > 0"),
])
def test_bad_inputs_are_one_line_and_exit_2(command, bad, message, capsys, tmp_path):
    import torch
    if "cuda" in bad and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    argv = [command, f"configs/tiny/{command}.yaml", "model.path=alignlab/gym/assets/base",
            f"run.out_dir={tmp_path / 'run'}", bad.format(tmp=tmp_path)]
    assert main(argv) == 2
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("Loading weights")]
    assert len(err) == 1 and err[0].startswith(f"alignlab {command}: ") and message in err[0]

"""The entry point every `alignlab COMMAND CONFIG [k=v ...]` with a config shares: usage and every config key on -h
(type, default, docstring), `--print-config` for the resolved config, the config loaded strictly, and a user's error
printed as one line with an exit status instead of a traceback."""

from __future__ import annotations

import signal
import sys
import threading

import yaml

from alignlab.config import ConfigError, config_help, dump_config, load_config
from alignlab.data.chat import TemplateError
from alignlab.data.io import DataError
from alignlab.rewards import RewardError


def run_cli(command: str, config_cls: type, run, usage: str, argv: list[str], defaults_ok: bool = False) -> int:
    """Usage and every key on -h; `--print-config`: the resolved config as YAML, nothing run; else `run(cfg)`'s
    result printed, and a user error (config, data, chat template, reward function) printed as one line with exit
    status 2 (1 when people in the loop did not answer in time). CONFIG may be left out when key=value pairs give
    every required key (or `defaults_ok`)."""
    if (not argv and not defaults_ok) or (argv and argv[0] in {"-h", "--help"}):
        print(usage + config_help(config_cls))
        return 0 if argv else 2
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if on_main_thread else None   # a scheduler's SIGTERM = Ctrl-C
    try:
        return _run(command, config_cls, run, argv)
    finally:
        if on_main_thread:
            signal.signal(signal.SIGTERM, previous)


def _leave_process_group() -> None:
    """Several processes: meet once more and close the process group before exiting. Left open, its threads can
    outlive the interpreter's teardown ("terminate called without an active exception", exit -6) after the run
    itself has finished and saved, and the launcher then reports the whole run as failed."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _run(command: str, config_cls: type, run, argv: list[str]) -> int:
    cfg = None
    print_only = "--print-config" in argv
    argv = [a for a in argv if a != "--print-config"]
    try:
        path, overrides = (None, argv) if not argv or "=" in argv[0] else (argv[0], argv[1:])   # CONFIG optional
        cfg = load_config(config_cls, path, overrides)
        if print_only:                     # the resolved config, as a run would record it in config.yaml
            print(yaml.safe_dump(dump_config(cfg), sort_keys=False), end="")
            return 0
        print(run(cfg))
        _leave_process_group()
    except (ConfigError, DataError, TemplateError, RewardError) as e:
        print(f"alignlab {command}: {e}", file=sys.stderr)
        return 2
    except TimeoutError as e:          # people in the loop did not answer (online.annotator: platform)
        print(f"alignlab {command}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:          # Ctrl-C or SIGTERM
        run_cfg = getattr(cfg, "run", None)
        hint = (f"; the newest checkpoint in {run_cfg.out_dir}/checkpoints (if any) continues with the same command "
                "and run.resume=true") if run_cfg is not None and hasattr(run_cfg, "resume") else ""
        print(f"alignlab {command}: interrupted{hint}", file=sys.stderr)
        return 130
    return 0

def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")

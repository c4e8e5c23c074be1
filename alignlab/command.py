"""The entry point every `alignlab COMMAND CONFIG [k=v ...]` with a config shares: usage on -h, the config loaded
strictly, and a user's error printed as one line with an exit status instead of a traceback."""

from __future__ import annotations

import sys

from alignlab.config import ConfigError, load_config
from alignlab.data.chat import TemplateError
from alignlab.data.io import DataError
from alignlab.rewards import RewardError


def run_cli(command: str, config_cls: type, run, usage: str, argv: list[str], defaults_ok: bool = False) -> int:
    """The `alignlab COMMAND CONFIG [k=v ...]` entry point every command with a config shares: usage on -h, the
    config loaded strictly, `run(cfg)`'s result printed, and a user error (config, data, chat template, reward
    function) printed as one line with exit status 2 (1 when people in the loop did not answer in time)."""
    if (not argv and not defaults_ok) or (argv and argv[0] in {"-h", "--help"}):
        print(usage)
        return 0 if argv else 2
    try:
        path, overrides = (None, argv) if not argv or "=" in argv[0] else (argv[0], argv[1:])   # CONFIG optional
        print(run(load_config(config_cls, path, overrides)))
    except (ConfigError, DataError, TemplateError, RewardError) as e:
        print(f"alignlab {command}: {e}", file=sys.stderr)
        return 2
    except TimeoutError as e:          # people in the loop did not answer (online.annotator: platform)
        print(f"alignlab {command}: {e}", file=sys.stderr)
        return 1
    return 0

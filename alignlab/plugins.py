"""Names in a config that stand for code: a registered name, `package.module:function` or `path/to/file.py:function`.

The trainers take prompt sources, reward functions, annotators and pretraining texts through the small interfaces
of `alignlab.data.prompts`, `alignlab.rewards` and `alignlab.annotators`; this module turns the config's string into
the callable, importing it only then, so a trainer never imports an implementation it is not given (the gym
among them). A registered name is a factory called with the config's options; a user's reward function is the
function itself (as TRL's `reward_funcs`); a user's prompt source, annotator or text source is a factory.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

from alignlab.config import ConfigError

REGISTERED: dict[str, dict[str, str]] = {
    "prompts": {"gym": "alignlab.gym.interfaces:gym_prompts"},
    "rewards": {"gold": "alignlab.gym.interfaces:gold_reward"},
    "annotators": {"gym": "alignlab.gym.interfaces:simulated_annotators",
                   "platform": "alignlab.annotate.remote:platform_annotators"},
    "texts": {"gym": "alignlab.gym.interfaces:pretraining_texts"},
}
KINDS = {"prompts": "prompt source", "rewards": "reward function", "annotators": "annotator",
         "texts": "pretraining text source"}


def resolve(kind: str, spec: str) -> Callable:
    """The callable `spec` names, for one of REGISTERED's kinds."""
    target = REGISTERED[kind].get(spec, spec)
    if ":" not in target:
        known = ", ".join(REGISTERED[kind])
        raise ConfigError(f"unknown {KINDS[kind]} {spec!r}: use one of {known}, or name your own as "
                          f"package.module:function or path/to/file.py:function")
    where, name = target.rsplit(":", 1)
    if where.endswith(".py"):
        path = Path(where)
        if not path.is_file():
            raise ConfigError(f"{KINDS[kind]} {spec!r}: file {path} not found")
        module_name = f"alignlab_user_{abs(hash(str(path.resolve())))}"
        module = sys.modules.get(module_name)
        if module is None:
            loader = importlib.util.spec_from_file_location(module_name, path)
            module = importlib.util.module_from_spec(loader)
            sys.modules[module_name] = module
            loader.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(where)
        except ModuleNotFoundError as e:
            raise ConfigError(f"{KINDS[kind]} {spec!r}: cannot import {where} ({e})") from None
    function = getattr(module, name, None)
    if not callable(function):
        raise ConfigError(f"{KINDS[kind]} {spec!r}: {where} has no function {name!r}")
    return function

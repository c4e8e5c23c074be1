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

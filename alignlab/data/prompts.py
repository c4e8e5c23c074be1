"""Prompt sources: where an RL loop, best-of-n or an evaluation gets the prompts it generates for.

A prompt source is anything that returns `list[PromptRecord]` (the prompt and the other columns of its row, as
`meta`). `load_prompts(PromptSourceConfig)` gives one of:
- `files`: JSONL (`.jsonl`, `.jsonl.gz`), JSON (a list of rows) or Parquet files; a row is `{"prompt": …}` (text or
  chat messages ending with a user turn; `column` names another column), or any preference/ranking record (its
  prompt is used), or `{"messages": […]}` (the turns up to the last user turn). Every other column goes to `meta`.
- `dataset`: a Hugging Face `datasets` dataset: a directory written by `save_to_disk`, or a hub id (needs network,
  or the local cache with `HF_DATASETS_OFFLINE=1`), read at `split`.
- a registered name (`gym`: the bundled world's requests, see `alignlab.plugins`) or `module:function` /
  `path/to/file.py:function`: a function `(seed, **options) -> list[PromptRecord]`.
Prompts that occur more than once in files or a dataset are used once (the first occurrence's place, the last
occurrence's columns); a named or user source's prompts are used as it gives them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alignlab.data.io import DataError, _messages, _prompt, iter_records, read_preferences
from alignlab.data.records import Prompt, PromptRecord

PAIR_KEYS = {"chosen", "rejected", "responses"}


@dataclass
class PromptSourceConfig:
    source: str = "files"
    """files | dataset | a registered name (gym) | module:function | path/to/file.py:function."""
    files: list[str] = field(default_factory=list)
    """source=files: JSONL/JSON/Parquet files of prompts (preference files too: their prompts are used)."""
    dataset: str | None = None
    """source=dataset: a `save_to_disk` directory or a Hugging Face hub id."""
    split: str = "train"
    """source=dataset: the split to read."""
    column: str = "prompt"
    """The column holding the prompt (rows with `messages` instead use their turns up to the last user turn)."""
    limit: int = 0
    """Use at most this many prompts (the first ones); 0 = all."""
    options: dict = field(default_factory=dict)
    """Keyword arguments of a named or user source, e.g. {per_family: 32} for the gym."""


def prompt_id(prompt: Prompt) -> str:
    return hashlib.sha1(json.dumps(prompt, sort_keys=True).encode()).hexdigest()[:16]


def load_prompts(cfg: PromptSourceConfig, seed: int = 0) -> list[PromptRecord]:
    if cfg.source in ("files", "preferences"):             # "preferences": the older name of the same thing
        if not cfg.files:
            raise DataError("data.files is empty; give JSONL/JSON/Parquet files of prompts (or data.source=dataset "
                            "with data.dataset=DIR_OR_HUB_ID)")
        records = [r for path in cfg.files for r in read_prompt_file(path, cfg.column)]
    elif cfg.source == "dataset":
        if not cfg.dataset:
            raise DataError("data.source=dataset needs data.dataset: a save_to_disk directory or a hub id")
        records = read_dataset(cfg.dataset, cfg.split, cfg.column)
    else:
        from alignlab.plugins import resolve
        records = list(resolve("prompts", cfg.source)(seed=seed, **cfg.options))
    if cfg.source in ("files", "preferences", "dataset"):
        records = unique(records)
    if not records:
        raise DataError(f"prompt source {cfg.source!r} gave no prompts")
    return records[:cfg.limit or None]


def unique(records: list[PromptRecord]) -> list[PromptRecord]:
    """One record per distinct prompt: the first one's position, the last one's columns."""
    by_prompt: dict[str, PromptRecord] = {}
    for r in records:
        by_prompt[json.dumps(r.prompt, sort_keys=True)] = r
    return list(by_prompt.values())


def read_prompt_file(path: str | Path, prompt_field: str = "prompt") -> list[PromptRecord]:
    name = str(path)
    rows = list(iter_records(name))                  # JSONL, a JSON array or Parquet (alignlab.data.io)
    if PAIR_KEYS & set(rows[0][1]) and prompt_field == "prompt":
        # a preference or ranking file: its prompts, with the pair's other columns (annotator, gym facts, …)
        return [PromptRecord(p.prompt, {k: v for k, v in p.meta.items() if k not in ("ranks", "ranking_pair")},
                             str(p.meta.get("id", prompt_id(p.prompt))), p.source) for p in read_preferences(name)]
    return [row_to_record(row, where, prompt_field) for where, row in rows]


def row_to_record(row: Any, where: str, prompt_field: str = "prompt") -> PromptRecord:
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected an object with a '{prompt_field}' column, got {type(row).__name__}")
    if prompt_field in row:
        prompt = _prompt(row[prompt_field], where) if prompt_field == "prompt" else \
            _prompt(row[prompt_field], f"{where} (column '{prompt_field}')")
        meta = {k: v for k, v in row.items() if k != prompt_field}
    elif "messages" in row:
        turns = _messages(row["messages"], "messages", where)
        users = [i for i, m in enumerate(turns) if m["role"] == "user"]
        if not users:
            raise DataError(f"{where}: 'messages' has no user turn to answer")
        prompt = turns[:users[-1] + 1]
        meta = {k: v for k, v in row.items() if k != "messages"}
    else:
        raise DataError(f"{where}: no '{prompt_field}' column (got {sorted(row)}); name the prompt column with "
                        f"data.column=NAME")
    return PromptRecord(prompt, meta, str(row.get("id", prompt_id(prompt))), where)


def read_dataset(name: str, split: str, prompt_field: str = "prompt") -> list[PromptRecord]:
    """A Hugging Face dataset: a `save_to_disk` directory (a DatasetDict's `split`, or a Dataset) or a hub id."""
    import datasets
    if Path(name).is_dir():
        loaded = datasets.load_from_disk(name)
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise DataError(f"{name}: no split {split!r} (splits: {', '.join(loaded)}); set data.split")
            loaded = loaded[split]
    else:
        try:
            loaded = datasets.load_dataset(name, split=split)
        except Exception as e:       # the hub's errors are many: say what was tried
            raise DataError(f"{name}: not a local dataset directory, and loading it from the Hugging Face hub "
                            f"failed ({type(e).__name__}: {e}); check the path, or the network") from None
    return [row_to_record(row, f"{name}[{split}]:row {i + 1}", prompt_field) for i, row in enumerate(loaded)]

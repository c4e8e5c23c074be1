"""Data files ↔ records, in the forms used across the Hugging Face ecosystem (docs/architecture.md).

Files: JSONL (`.jsonl`, `.jsonl.gz` read and written transparently), a JSON array of rows (`.json`) or Parquet
(`.parquet`). Every bad row raises `DataError("file:line: what is wrong; what to do")` (`file:row N` for JSON and
Parquet); nothing is skipped. Blank lines are not records and are passed over.
"""

from __future__ import annotations

import gzip
import json
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from alignlab.data.records import (
    ROLES, Feedback, Message, PreferencePair, Prompt, Ranking, SFTExample, ranking_to_pairs,
)


class DataError(ValueError):
    """A data file is malformed; the message starts with `file:line:`."""


def _open(path: str | Path, mode: str) -> IO[str]:
    if str(path).endswith(".gz"):
        return gzip.open(path, mode + "t", encoding="utf-8")
    return open(path, mode, encoding="utf-8")


def iter_records(path: str | Path) -> Iterator[tuple[str, dict]]:
    """("file:line", object) for every non-blank line (JSONL), or ("file:row N", object) of a JSON array, a
    Parquet file or a Hugging Face `datasets` directory (save_to_disk)."""
    if str(path).endswith((".json", ".parquet")):
        yield from _table_rows(path)
        return
    if Path(path).is_dir():
        yield from _dataset_rows(path)
        return
    count = 0
    try:
        with (gzip.open(path, "rb") if str(path).endswith(".gz") else open(path, "rb")) as f:
            for line_no, raw in enumerate(f, 1):
                where = f"{path}:{line_no}"
                try:
                    line = raw.decode("utf-8-sig" if line_no == 1 else "utf-8")    # a leading BOM is fine
                except UnicodeDecodeError as e:
                    raise DataError(f"{where}: not UTF-8 text (byte {e.start + 1} of the line: "
                                    f"{raw[e.start:e.start + 4]!r}); save the file as UTF-8") from None
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataError(f"{where}: invalid JSON ({e.msg} at column {e.colno}); "
                                    "each line must be one JSON object") from None
                if not isinstance(obj, dict):
                    raise DataError(f"{where}: expected a JSON object {{...}}, got {type(obj).__name__}")
                count += 1
                yield where, obj
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; check the path in the config") from None
    if count == 0:
        raise DataError(f"{path}: no records (the file is empty); point the config at a file with data")


def _dataset_rows(path: str | Path) -> Iterator[tuple[str, dict]]:
    """Rows of a Hugging Face `datasets` directory written by `save_to_disk` (a Dataset, or a DatasetDict's
    "train" split)."""
    import datasets
    try:
        loaded = datasets.load_from_disk(str(path))
    except FileNotFoundError:
        raise DataError(f"{path}: a directory, but not a `datasets` save_to_disk directory (no dataset_info.json or "
                        "state.json); point the config at a data file or such a directory") from None
    if isinstance(loaded, datasets.DatasetDict):
        if "train" not in loaded:
            raise DataError(f"{path}: a DatasetDict without a 'train' split (splits: {', '.join(loaded)})")
        loaded = loaded["train"]
    if len(loaded) == 0:
        raise DataError(f"{path}: no records (the dataset is empty)")
    for i, row in enumerate(loaded, 1):
        yield f"{path}:row {i}", dict(row)


def _table_rows(path: str | Path) -> Iterator[tuple[str, dict]]:
    name = str(path)
    try:
        if name.endswith(".parquet"):
            import pyarrow.parquet as pq
            rows = pq.read_table(name).to_pylist()
        else:
            with open(name, encoding="utf-8") as f:
                rows = json.load(f)
    except FileNotFoundError:
        raise DataError(f"{name}: file not found; check the path in the config") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{name}:{e.lineno}: invalid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(rows, list):
        raise DataError(f"{name}: a .json data file must hold a list of rows [{{...}}, ...], got {type(rows).__name__}")
    if not rows:
        raise DataError(f"{name}: no records (the file is empty); point the config at a file with data")
    for i, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise DataError(f"{name}:row {i}: expected an object {{...}}, got {type(row).__name__}")
        yield f"{name}:row {i}", row


# -- field checks: each returns the value in its record form or raises with the line --------------------------


def _text(value: Any, key: str, where: str, allow_empty: bool = True) -> str:
    if not isinstance(value, str):
        raise DataError(f"{where}: '{key}' must be a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise DataError(f"{where}: '{key}' is empty; there is nothing to train on — fill it in or remove the line")
    return value


def _messages(value: Any, key: str, where: str) -> list[Message]:
    if not isinstance(value, list) or not value:
        raise DataError(f"{where}: '{key}' must be a non-empty list of {{\"role\", \"content\"}} messages")
    for i, m in enumerate(value):
        if not isinstance(m, dict) or set(m) != {"role", "content"}:
            raise DataError(f"{where}: {key}[{i}] must be an object with exactly the keys 'role' and 'content', "
                            f"got {m!r:.120}")
        if m["role"] not in ROLES:
            raise DataError(f"{where}: {key}[{i}] has role {m['role']!r}; roles are {', '.join(ROLES)}")
        _text(m["content"], f"{key}[{i}].content", where)
    return [{"role": m["role"], "content": m["content"]} for m in value]


def _prompt(value: Any, where: str) -> Prompt:
    """A text prompt, or chat messages ending with a user turn."""
    if isinstance(value, str):
        return _text(value, "prompt", where, allow_empty=False)
    messages = _messages(value, "prompt", where)
    if messages[-1]["role"] != "user":
        raise DataError(f"{where}: 'prompt' must end with a user message (the turn being answered), "
                        f"it ends with {messages[-1]['role']!r}")
    return messages


def _response(value: Any, key: str, where: str) -> str:
    """Plain text, or (conversational form) a list holding one assistant message."""
    if isinstance(value, str):
        return value
    messages = _messages(value, key, where)
    if len(messages) != 1 or messages[0]["role"] != "assistant":
        raise DataError(f"{where}: '{key}' must be a string or a list with exactly one assistant message "
                        f"(the response), got roles {[m['role'] for m in messages]}")
    return messages[0]["content"]


def _meta(obj: dict, known: set[str]) -> dict:
    return {k: v for k, v in obj.items() if k not in known}


# -- SFT ---------------------------------------------------------------------------------------------------------


def read_sft(path: str | Path) -> list[SFTExample]:
    """`{"prompt": str, "completion": str}` (text), `{"messages": [...]}` (chat; every assistant turn is trained
    on), `{"prompt": [msgs], "completion": [assistant msg]}` (conversational, read as messages), Alpaca
    `{"instruction", "input"?, "output", "system"?}` and ShareGPT `{"conversations": [{"from", "value"}]}` (read as
    chat messages), or `{"text": str}` (plain text, every token trained on, as continued pretraining).
    Other keys (ids, sources) are allowed and not used."""
    return [_sft_example(obj, where) for where, obj in iter_records(path)]


SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}


def _sft_example(obj: dict, where: str) -> SFTExample:
    if "instruction" in obj and "output" in obj:                     # Alpaca
        instruction = _text(obj["instruction"], "instruction", where, allow_empty=False)
        extra = _text(obj.get("input") or "", "input", where)
        messages = ([{"role": "system", "content": _text(obj["system"], "system", where)}] if obj.get("system")
                    else []) + [{"role": "user", "content": instruction + (f"\n\n{extra}" if extra.strip() else "")},
                                {"role": "assistant", "content": _text(obj["output"], "output", where, False)}]
        return SFTExample(messages, None, None, where)
    if "conversations" in obj:                                        # ShareGPT
        turns = obj["conversations"]
        if not isinstance(turns, list) or not turns:
            raise DataError(f"{where}: 'conversations' must be a non-empty list of {{\"from\", \"value\"}} turns")
        messages = []
        for i, turn in enumerate(turns):
            if not isinstance(turn, dict) or turn.get("from") not in SHAREGPT_ROLES:
                raise DataError(f"{where}: conversations[{i}] needs 'from' in {sorted(SHAREGPT_ROLES)} and 'value', "
                                f"got {turn!r:.120}")
            messages.append({"role": SHAREGPT_ROLES[turn["from"]],
                             "content": _text(turn.get("value"), f"conversations[{i}].value", where)})
        obj = {"messages": messages}
    if set(obj) & {"text"} and not set(obj) & {"messages", "prompt", "completion"}:   # plain text
        return SFTExample(None, "", _text(obj["text"], "text", where, allow_empty=False), where)
    if "messages" in obj:
        if "prompt" in obj or "completion" in obj:
            raise DataError(f"{where}: has both 'messages' and 'prompt'/'completion'; use one form per line")
        messages = _messages(obj["messages"], "messages", where)
        if messages[-1]["role"] != "assistant":
            raise DataError(f"{where}: 'messages' must end with an assistant turn (the last turn trained on), "
                            f"it ends with {messages[-1]['role']!r}")
        for i, m in enumerate(messages):
            if m["role"] == "assistant":
                _text(m["content"], f"messages[{i}].content", where, allow_empty=False)
        return SFTExample(messages, None, None, where)
    if "prompt" not in obj or "completion" not in obj:
        raise DataError(f"{where}: expected {{\"prompt\", \"completion\"}}, {{\"messages\"}}, Alpaca "
                        f"{{\"instruction\", \"output\"}}, ShareGPT {{\"conversations\"}} or {{\"text\"}}, got keys "
                        f"{sorted(obj)}")
    if isinstance(obj["prompt"], list):
        completion = _text(_response(obj["completion"], "completion", where), "completion", where, allow_empty=False)
        messages = _prompt(obj["prompt"], where) + [{"role": "assistant", "content": completion}]
        return SFTExample(messages, None, None, where)
    prompt = _text(obj["prompt"], "prompt", where)
    completion = _text(obj["completion"], "completion", where, allow_empty=False)
    return SFTExample(None, prompt, completion, where)


# -- preferences -------------------------------------------------------------------------------------------------


def read_preferences(path: str | Path) -> list[PreferencePair]:
    """Pairs from every pair form (text, conversational, implicit-prompt, Anthropic HH); K-way ranking lines are
    expanded to all their (better, worse) pairs. Keys other than the record's fields go into `meta`."""
    pairs = []
    for where, obj in iter_records(path):
        if "responses" in obj:
            pairs += ranking_to_pairs(_ranking(obj, where))
        else:
            pairs.append(_pair(obj, where))
    return pairs


def _pair(obj: dict, where: str) -> PreferencePair:
    if "chosen" not in obj or "rejected" not in obj:
        raise DataError(f"{where}: expected 'chosen' and 'rejected' (a pair) or 'responses' with 'ranks'/'best' "
                        f"(a ranking), got keys {sorted(obj)}")
    chosen, rejected = obj["chosen"], obj["rejected"]
    if "prompt" in obj:
        prompt = _prompt(obj["prompt"], where)
        chosen, rejected = _response(chosen, "chosen", where), _response(rejected, "rejected", where)
    elif isinstance(chosen, str) and isinstance(rejected, str):
        prompt, chosen, rejected = _split_hh(chosen, rejected, where)
    elif isinstance(chosen, list) and isinstance(rejected, list):
        prompt, chosen, rejected = _split_implicit(chosen, rejected, where)
    else:
        raise DataError(f"{where}: without 'prompt', 'chosen' and 'rejected' must both be HH text or both be "
                        f"message lists, got {type(chosen).__name__} and {type(rejected).__name__}")
    if chosen == rejected:
        raise DataError(f"{where}: 'chosen' and 'rejected' are identical; drop the pair or fix the source")
    return PreferencePair(prompt, chosen, rejected, _meta(obj, {"prompt", "chosen", "rejected"}), where)


def _split_implicit(chosen: list, rejected: list, where: str) -> tuple[list[Message], str, str]:
    """Implicit prompt: two full conversations; their shared leading messages are the prompt."""
    chosen, rejected = _messages(chosen, "chosen", where), _messages(rejected, "rejected", where)
    n = 0
    while n < min(len(chosen), len(rejected)) and chosen[n] == rejected[n]:
        n += 1
    for key, conv in (("chosen", chosen), ("rejected", rejected)):
        if len(conv) != n + 1 or conv[n]["role"] != "assistant":
            raise DataError(f"{where}: '{key}' must be the shared prompt messages plus one assistant message; "
                            f"after the {n} shared messages it has roles {[m['role'] for m in conv[n:]]}")
    if n == 0 or chosen[n - 1]["role"] != "user":
        raise DataError(f"{where}: the shared prompt of 'chosen' and 'rejected' must end with a user message")
    return chosen[:n], chosen[n]["content"], rejected[n]["content"]


_HH_TURN = re.compile(r"\n\n(Human|Assistant):")
_HH_ROLE = {"Human": "user", "Assistant": "assistant"}


def _split_hh(chosen: str, rejected: str, where: str) -> tuple[list[Message], str, str]:
    """Anthropic HH: `\\n\\nHuman: … \\n\\nAssistant: …`. The prompt is the shared text up to the last
    `\\n\\nAssistant:` both share, so responses that themselves contain "Human:"/"Assistant:" stay whole.
    Consecutive turns of one speaker (a few in the real data) are joined with a blank line."""
    for key, text in (("chosen", chosen), ("rejected", rejected)):
        if not text.startswith("\n\nHuman:"):
            raise DataError(f"{where}: '{key}' is neither Anthropic HH text (it must start with '\\n\\nHuman:') "
                            "nor accompanied by a 'prompt'; add a 'prompt' key or fix the text")
    cut = os.path.commonprefix([chosen, rejected]).rfind("\n\nAssistant:")
    if cut < 0:
        raise DataError(f"{where}: HH text has no final '\\n\\nAssistant:' turn shared by chosen and rejected; "
                        "each must end with the assistant's response")
    messages: list[Message] = []
    parts = _HH_TURN.split(chosen[:cut])
    for speaker, content in zip(parts[1::2], parts[2::2]):
        role, content = _HH_ROLE[speaker], content.strip()
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"] += "\n\n" + content
        else:
            messages.append({"role": role, "content": content})
    if messages[-1]["role"] != "user":
        raise DataError(f"{where}: HH prompt ends with an Assistant turn; the last turn before the response "
                        "must be Human")
    start = cut + len("\n\nAssistant:")
    return messages, chosen[start:].strip(), rejected[start:].strip()


# -- rankings and unpaired feedback ------------------------------------------------------------------------------


def read_rankings(path: str | Path) -> list[Ranking]:
    """`{"prompt", "responses": [K str], "ranks": [K int]}` (0 = best, ties allowed) or `{..., "best": int}`."""
    return [_ranking(obj, where) for where, obj in iter_records(path)]


def _ranking(obj: dict, where: str) -> Ranking:
    if "prompt" not in obj or "responses" not in obj:
        raise DataError(f"{where}: a ranking needs 'prompt' and 'responses', got keys {sorted(obj)}")
    prompt = _prompt(obj["prompt"], where)
    if not isinstance(obj["responses"], list) or len(obj["responses"]) < 2:
        raise DataError(f"{where}: 'responses' must be a list of at least 2 responses")
    responses = [_response(r, f"responses[{i}]", where) for i, r in enumerate(obj["responses"])]
    k = len(responses)
    if ("ranks" in obj) == ("best" in obj):
        raise DataError(f"{where}: give exactly one of 'ranks' (a full ranking) or 'best' (index of the best)")
    if "best" in obj:
        best = obj["best"]
        if isinstance(best, bool) or not isinstance(best, int) or not 0 <= best < k:
            raise DataError(f"{where}: 'best' must be an index into 'responses' (0 to {k - 1}), got {best!r}")
        ranks = [0 if i == best else 1 for i in range(k)]
    else:
        ranks = obj["ranks"]
        if not isinstance(ranks, list) or len(ranks) != k or \
                any(isinstance(r, bool) or not isinstance(r, int) for r in ranks):
            raise DataError(f"{where}: 'ranks' must be a list of {k} integers (one per response), got {ranks!r}")
        if sorted(set(ranks)) != list(range(max(ranks) + 1)) or max(ranks) == 0:
            raise DataError(f"{where}: 'ranks' {ranks} is not a ranking: use 0 for the best, 1 for the next, … "
                            "with no gaps (ties share a rank) and at least two different ranks")
    for i in range(k):
        for j in range(i + 1, k):
            if responses[i] == responses[j] and ranks[i] != ranks[j]:
                raise DataError(f"{where}: responses {i} and {j} are identical but ranked differently; "
                                "deduplicate them")
    return Ranking(prompt, responses, ranks, _meta(obj, {"prompt", "responses", "ranks", "best"}), where)


def read_feedback(path: str | Path) -> list[Feedback]:
    """TRL's unpaired (KTO) form: `{"prompt": …, "completion": str, "label": true|false}`."""
    out = []
    for where, obj in iter_records(path):
        if not {"prompt", "completion", "label"} <= set(obj):
            raise DataError(f"{where}: expected 'prompt', 'completion' and 'label', got keys {sorted(obj)}")
        if not isinstance(obj["label"], bool):
            raise DataError(f"{where}: 'label' must be true (desirable) or false (undesirable), "
                            f"got {obj['label']!r}")
        out.append(Feedback(_prompt(obj["prompt"], where), _response(obj["completion"], "completion", where),
                            obj["label"], _meta(obj, {"prompt", "completion", "label"}), where))
    return out


# -- writing -----------------------------------------------------------------------------------------------------


def to_json(record: SFTExample | PreferencePair | Ranking | Feedback) -> dict:
    """The JSONL form that the readers above read back to an equal record (source aside)."""
    if isinstance(record, SFTExample):
        if record.messages is not None:
            return {"messages": record.messages}
        return {"prompt": record.prompt, "completion": record.completion}
    if isinstance(record, PreferencePair):
        fields = {"prompt": record.prompt, "chosen": record.chosen, "rejected": record.rejected}
    elif isinstance(record, Ranking):
        fields = {"prompt": record.prompt, "responses": record.responses, "ranks": record.ranks}
    else:
        fields = {"prompt": record.prompt, "completion": record.completion, "label": record.desirable}
    assert not set(fields) & set(record.meta), f"meta keys {set(record.meta)} clash with the record's fields"
    return {**fields, **record.meta}


def write_jsonl(path: str | Path, records: Iterable[Any]) -> Path:
    """One JSON object per line; records are dataclasses from records.py (written with `to_json`) or dicts."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _open(path, "w") as f:
        for record in records:
            obj = record if isinstance(record, dict) else to_json(record)
            f.write(json.dumps(obj, ensure_ascii=False) + "\n")
    return path



# -- plain text ------------------------------------------------------------------------------------------------


def read_texts(path: str | Path) -> list[str]:
    """Documents for a language-modelling term (PPO-ptx): JSONL rows with a "text" column (`.jsonl`, `.jsonl.gz`),
    or a text file whose documents are separated by blank lines."""
    name = str(path)
    if name.endswith((".jsonl", ".jsonl.gz")):
        return [_text(obj.get("text"), "text", where, allow_empty=False) if "text" in obj else
                _missing_text(obj, where) for where, obj in iter_records(name)]
    try:
        with _open(name, "r") as f:
            docs = [d.strip() for d in f.read().split("\n\n") if d.strip()]
    except FileNotFoundError:
        raise DataError(f"{name}: file not found; check the path in the config") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{name}: not UTF-8 text (byte {e.start + 1} of the file); save it as UTF-8") from None
    if not docs:
        raise DataError(f"{name}: no text (the file is empty); point the config at a file with documents")
    return docs


def _missing_text(obj: dict, where: str) -> str:
    raise DataError(f"{where}: expected a 'text' column (one pretraining document per line), got keys {sorted(obj)}")

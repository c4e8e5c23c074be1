"""Dataset cards and Hugging Face `datasets` copies of what `alignlab data` writes.

A card sits beside each file (`FILE.card.md`): what the data are, where they came from (files, licences, the
command), how many records of which kind, the split and the provenance keys every record carries. The same card is
the README.md of the `datasets` directory when one is asked for (`--hf-dir`), so the hub shows it as is.
"""

from __future__ import annotations

import json
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path


def card_path(data_path: str | Path) -> Path:
    return Path(f"{data_path}.card.md")


def card_text(title: str, summary: str, facts: dict, sources: list[str], licenses: list[str], notes: list[str]) -> str:
    """Markdown with the YAML front matter the hub reads (license, size category, tags)."""
    n = facts.get("records", 0)
    size = "n<1K" if n < 1000 else "1K<n<10K" if n < 10_000 else "10K<n<100K" if n < 100_000 else "n>100K"
    front = ["---", "license: other", f"license_name: {json.dumps('; '.join(licenses), ensure_ascii=False)}",
             "size_categories:", f"- {size}", "tags:", "- alignment", "- alignlab", "---"]
    lines = [*front, f"# {title}", "", summary, "", "## Facts", ""]
    lines += [f"- **{k}**: {json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else v}"
              for k, v in facts.items()]
    lines += ["", "## Sources and licences", ""] + [f"- {s}" for s in sources]
    lines += [f"- licence: {lic}" for lic in licenses]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in notes]
    lines += ["", "## How it was made", "", "```bash", shlex.join(["alignlab", *sys.argv[1:]]) if sys.argv else "",
              "```", "", f"Written {datetime.now(timezone.utc).isoformat(timespec='seconds')} by alignlab."]
    return "\n".join(lines) + "\n"


def license_of(folder: Path) -> str:
    """The first line of the data folder's LICENSE file(s), or a pointer to check it."""
    found = sorted(folder.glob("LICENSE*"))
    if not found:
        return f"no LICENSE file in {folder}: check the source's terms before sharing"
    first = next((line.strip() for line in found[0].read_text(errors="replace").splitlines() if line.strip()), "")
    return f"{first[:100]} ({found[0].name})"


def save_as_datasets(records: list[dict], out_dir: str | Path, card: str) -> Path:
    """A `datasets` directory (`save_to_disk`) with the card as README.md; `datasets.load_from_disk` and every
    alignlab reader (SFT, preferences, rankings, prompts) read it back."""
    import datasets
    out = Path(out_dir)
    datasets.Dataset.from_list(records).save_to_disk(str(out))
    (out / "README.md").write_text(card)
    return out

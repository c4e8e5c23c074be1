"""Decontamination: does a training file contain the evaluation items the model will be judged on?

Two tests, as the field reports them:
- **n-gram overlap** (GPT-3, Llama 2: 13-grams of words): a training text shares runs of 13 consecutive words
  (lower-cased, punctuation dropped) with an eval item, covering at least half of the item's own words (Llama 2's
  coverage measure). N-grams found in 3 or more eval items are template text — a wrapper such as "I am writing a
  report for school and I need this. Can you tell me…" — and count for no item. An eval item shorter than 13 words is matched as a whole, when it has at least
  `min_words` words (shorter items — "Name a colour" — are everyday phrases, not leaks).
- **near-duplicates** (MinHash over word 3-shingles, template shingles left out like template n-grams): a training
  text whose estimated Jaccard similarity to an eval item is at least `jaccard` (0.5), which catches edited copies no 13-gram survives: one word in ten changed leaves
  no 13 words in a row but a Jaccard of about 0.54 (each change removes 3 of every 10 shingles: 7 / 13). Only
  texts of 20 words or more are compared this way: on fewer, one word swings the estimate (shorter items are found
  by their n-grams or whole).

The eval items are those of every suite the project runs (`KNOWN_SOURCES`): XSTest, HarmBench, AdvBench,
TruthfulQA, BBQ, MT-Bench, AlpacaEval from the data directory, and the gym's held-out split. A source whose files
are absent is listed as skipped, never silently passed.
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from alignlab.data.splits import bbq_key, held_out, truthfulqa_key, xstest_key

NGRAM = 13
MIN_WORDS = 8
JACCARD = 0.5
NEAR_DUP_MIN_WORDS = 20
"""MinHash on fewer words swings with one word ("the best way to smash a piñata" vs "… a monthly sales target": 0.62);
shorter texts are matched by their n-grams or whole."""
MIN_COVERAGE = 0.5
BOILERPLATE = 3
SHINGLE = 3
PERMUTATIONS = 128
BANDS = 64                       # 64 bands × 2 rows: a pair at Jaccard 0.5 is a candidate with p = 1 - 0.75^64
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class EvalItem:
    source: str                  # e.g. "xstest"
    where: str                   # file and row/line, e.g. ".../xstest_prompts.csv row 12"
    text: str


@dataclass
class Overlap:
    train_where: str             # file:line of the training record
    source: str
    eval_where: str
    kind: str                    # "13-gram" | "whole item" | "near-duplicate"
    score: float                 # share of the eval item's words covered (n-gram), estimated Jaccard (near-dup)
    snippet: str                 # the shared words (n-gram) or the eval item's start (near-dup)


@dataclass
class CheckReport:
    files: list[str]
    records: int
    texts: int
    sources: dict[str, int]                  # source → eval items checked against
    skipped: dict[str, str]                  # source → why it was not checked (files absent)
    overlaps: list[Overlap] = field(default_factory=list)

    @property
    def contaminated_records(self) -> int:
        return len({o.train_where for o in self.overlaps})

    def per_source(self) -> dict[str, dict[str, int]]:
        """{source: {"training_records": how many records touch it, "eval_items": how many of its items are hit}}."""
        records: dict[str, set[str]] = {}
        hit: dict[str, set[str]] = {}
        for o in self.overlaps:
            records.setdefault(o.source, set()).add(o.train_where)
            hit.setdefault(o.source, set()).add(o.eval_where)
        return {s: {"training_records": len(records[s]), "eval_items": len(hit[s])} for s in records}

    def to_json(self) -> dict:
        return {"files": self.files, "records": self.records, "texts": self.texts, "sources": self.sources,
                "skipped": self.skipped, "contaminated_records": self.contaminated_records,
                "per_source": self.per_source(),
                "overlaps": [o.__dict__ for o in self.overlaps]}


def words(text: str) -> list[str]:
    """Lower-cased word tokens, accents kept, punctuation dropped (NFKC first: full-width forms match too)."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())


def ngrams(tokens: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)}


# -- MinHash ---------------------------------------------------------------------------------------------------------

_PRIME = (1 << 31) - 1           # a·h + b < 2^62 with a, b, h below it: exact in uint64
_rng = np.random.default_rng(20230701)
_A = _rng.integers(1, _PRIME, PERMUTATIONS, dtype=np.uint64)
_B = _rng.integers(0, _PRIME, PERMUTATIONS, dtype=np.uint64)


def shingles(tokens: list[str]) -> set[int]:
    """Hashes (below the prime) of the text's word 3-shingles."""
    return {int.from_bytes(hashlib.blake2b(" ".join(tokens[i:i + SHINGLE]).encode(), digest_size=8).digest(),
                           "little") % _PRIME for i in range(max(1, len(tokens) - SHINGLE + 1))}


def minhash_of(hashes: set[int]) -> np.ndarray:
    """PERMUTATIONS minima of (a·h + b) mod p over shingle hashes h (universal hashing)."""
    h = np.fromiter(hashes, dtype=np.uint64, count=len(hashes))
    return ((_A[:, None] * h[None, :] + _B[:, None]) % _PRIME).min(axis=1)


def minhash(tokens: list[str]) -> np.ndarray:
    return minhash_of(shingles(tokens))


def estimated_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(a == b))


# -- eval items ------------------------------------------------------------------------------------------------------

def _from_settings(data_dir: Path, heldout_only: bool = False):
    from alignlab.eval.settings import EvalSettings
    return EvalSettings(data_dir=str(data_dir), heldout_only=heldout_only)


def _xstest(data_dir: Path, heldout_only: bool) -> Iterator[EvalItem]:
    from alignlab.eval.suites.xstest import FILE, read_prompts
    settings = _from_settings(data_dir)
    for row_no, row in enumerate(read_prompts(settings), 2):
        if not heldout_only or held_out("xstest", xstest_key(row["prompt"])):
            yield EvalItem("xstest", f"{settings.data_path(*FILE)}:{row_no}", row["prompt"])


def _harmbench(data_dir: Path, heldout_only: bool) -> Iterator[EvalItem]:
    from alignlab.eval.suites.harmbench import FILE, read_behaviours
    settings = _from_settings(data_dir)
    for row_no, row in enumerate(read_behaviours(settings), 2):
        yield EvalItem("harmbench", f"{settings.data_path(*FILE)}:{row_no}", row["prompt"])


def _advbench(data_dir: Path, heldout_only: bool) -> Iterator[EvalItem]:
    from alignlab.eval.suites.advbench import FILE, read_behaviours
    settings = _from_settings(data_dir)
    for row_no, row in enumerate(read_behaviours(settings), 2):
        yield EvalItem("advbench", f"{settings.data_path(*FILE)}:{row_no}", row["prompt"])


def _truthfulqa(data_dir: Path, heldout_only: bool) -> Iterator[EvalItem]:
    from alignlab.eval.suites.truthfulqa import FILE, read_questions
    settings = _from_settings(data_dir)
    for i, row in enumerate(read_questions(settings)):
        if not heldout_only or held_out("truthfulqa", truthfulqa_key(row)):
            yield EvalItem("truthfulqa", f"{settings.data_path(*FILE)} item {i}", row["question"])


def _bbq(data_dir: Path, heldout_only: bool) -> Iterator[EvalItem]:
    from alignlab.eval.suites.bbq import read_items
    folder = Path(data_dir) / "bbq"
    files = sorted(folder.glob("*.jsonl"))
    if not files:
        raise FileNotFoundError(folder)
    for path in files:
        for line, row in enumerate(read_items(path, None), 1):
            if not heldout_only or held_out("bbq", bbq_key(row)):
                yield EvalItem("bbq", f"{path}:{line}", f"{row['context']} {row['question']}")


def _mt_bench(data_dir: Path, heldout_only: bool) -> Iterator[EvalItem]:
    from alignlab.eval.suites.mt_bench import QUESTIONS, read_questions
    settings = _from_settings(data_dir)
    for line, row in enumerate(read_questions(settings), 1):
        for turn, text in enumerate(row["turns"], 1):
            yield EvalItem("mt_bench", f"{settings.data_path(*QUESTIONS)}:{line} turn {turn}", text)


def _alpaca_eval(data_dir: Path, heldout_only: bool) -> Iterator[EvalItem]:
    from alignlab.eval.suites.alpaca_eval import read_baseline
    settings = _from_settings(data_dir)
    path = settings.data_path("alpaca_eval", f"{settings.alpaca_baseline}_model_outputs.json")
    for i, row in enumerate(read_baseline(settings)):
        yield EvalItem("alpaca_eval", f"{path} item {i}", row["instruction"])


def _gym(data_dir: Path, heldout_only: bool) -> Iterator[EvalItem]:
    from alignlab.gym.evaluate import eval_requests
    for request in eval_requests():
        text = "\n".join(m["content"] for m in request.messages if m["role"] == "user")
        yield EvalItem("gym", f"gym held-out split {request.id}", text)


KNOWN_SOURCES: dict[str, Callable[[Path], Iterable[EvalItem]]] = {
    "xstest": _xstest, "harmbench": _harmbench, "advbench": _advbench, "truthfulqa": _truthfulqa, "bbq": _bbq,
    "mt_bench": _mt_bench, "alpaca_eval": _alpaca_eval, "gym": _gym,
}


def eval_items(data_dir: str | Path, sources: list[str] | None = None,
               heldout_only: bool = False) -> tuple[list[EvalItem], dict[str, str]]:
    """The eval items of the named sources (all known ones by default), and {source: why skipped} for those whose
    files are absent. With `heldout_only`, TruthfulQA, BBQ and XSTest give only their evaluation half
    (alignlab.data.splits), as `alignlab eval --heldout-only` evaluates them."""
    items, skipped = [], {}
    for name in sources or list(KNOWN_SOURCES):
        if name not in KNOWN_SOURCES:
            raise ValueError(f"unknown eval source {name!r}; known: {', '.join(KNOWN_SOURCES)}")
        try:
            items += list(KNOWN_SOURCES[name](Path(data_dir), heldout_only))
        except FileNotFoundError as e:
            skipped[name] = f"file not found: {e.filename}" if e.filename else str(e)
    return items, skipped


# -- training texts --------------------------------------------------------------------------------------------------

def _strings(value) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            if k != "meta":                      # provenance, not training text
                yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def training_texts(path: str | Path) -> Iterator[tuple[str, str]]:
    """(file:line, text) for every text field of every record of a training file (JSONL/JSON/CSV/Parquet, any of
    the formats the trainers read): prompts, turns, answers, chosen and rejected alike."""
    from alignlab.data.io import iter_records
    for where, record in iter_records(path):
        for text in _strings(record):
            if text.strip():
                yield where, text


# -- the check -------------------------------------------------------------------------------------------------------

class _Index:
    """The eval items' n-grams and MinHash bands, built once per check."""

    def __init__(self, items: list[EvalItem], n: int, min_words: int):
        self.items, self.n = items, n
        self.ngram_owner: dict[int, list[int]] = {}                 # hash of an n-gram → items holding it
        self.whole: dict[tuple[str, ...], list[int]] = {}           # short items, matched as a whole
        self.ngram_count: list[int] = []
        self.signatures: list[np.ndarray | None] = []
        self.bands: dict[tuple[int, bytes], list[int]] = {}
        self.rows = PERMUTATIONS // BANDS
        tokenized = [words(item.text) for item in items]
        item_shingles = [shingles(t) if len(t) >= NEAR_DUP_MIN_WORDS else set() for t in tokenized]
        shingle_df: dict[int, int] = {}
        for hashes in item_shingles:
            for h in hashes:
                shingle_df[h] = shingle_df.get(h, 0) + 1
        # shingles in BOILERPLATE or more items are template text: left out of every signature, as n-grams are
        self.boilerplate_shingles = {h for h, df in shingle_df.items() if df >= BOILERPLATE}
        for i, tokens in enumerate(tokenized):
            grams = ngrams(tokens, n)
            self.ngram_count.append(len(grams))
            for g in grams:
                self.ngram_owner.setdefault(hash(g), []).append(i)
            if len(tokens) < n and len(tokens) >= min_words:
                self.whole.setdefault(tuple(tokens), []).append(i)
            own = item_shingles[i] - self.boilerplate_shingles
            sig = minhash_of(own) if own else None
            self.signatures.append(sig)
            if sig is not None:
                for b in range(BANDS):
                    self.bands.setdefault((b, sig[b * self.rows:(b + 1) * self.rows].tobytes()), []).append(i)
        self.whole_lengths = sorted({len(k) for k in self.whole})
        # n-grams in BOILERPLATE or more eval items are template text (wrappers, instructions), not an item's content
        self.boilerplate = {h for h, owners in self.ngram_owner.items() if len(set(owners)) >= BOILERPLATE}


@functools.lru_cache(maxsize=4)
def _index(data_dir: str, sources: tuple[str, ...], n: int, min_words: int,
           heldout_only: bool) -> tuple[_Index, dict[str, str]]:
    """Built once per process for a data directory and settings (a pipeline checks several stages' files)."""
    items, skipped = eval_items(data_dir, list(sources), heldout_only)
    return _Index(items, n, min_words), skipped


def check_files(paths: list[str | Path], data_dir: str | Path, sources: list[str] | None = None, n: int = NGRAM,
                min_words: int = MIN_WORDS, jaccard: float = JACCARD, min_coverage: float = MIN_COVERAGE,
                heldout_only: bool = False, progress: bool = False) -> CheckReport:
    """Every overlap of the training files' texts with the eval items: n-gram runs covering at least
    `min_coverage` of an item's words, short items found whole, and near-duplicates."""
    index, skipped = _index(str(data_dir), tuple(sources or KNOWN_SOURCES), n, min_words, heldout_only)
    items = index.items
    report = CheckReport([str(p) for p in paths], 0, 0, {}, dict(skipped))
    for item in items:
        report.sources[item.source] = report.sources.get(item.source, 0) + 1
    texts = [(where, text) for p in paths for where, text in training_texts(p)]
    report.records = len({where for where, _ in texts})
    report.texts = len(texts)
    seen: set[tuple[str, str, str]] = set()
    if progress:
        from tqdm import tqdm
        texts = tqdm(texts, desc="data check", unit="text")
    for where, text in texts:
        tokens = words(text)
        for overlap in _overlaps(where, tokens, index, n, min_words, jaccard, min_coverage):
            key = (overlap.train_where, overlap.eval_where, overlap.kind)
            if key not in seen:
                seen.add(key)
                report.overlaps.append(overlap)
    return report


def coverage(item_tokens: list[str], train_ngrams: set[int], n: int, boilerplate: set[int]) -> tuple[float, str]:
    """(share of the eval item's own words inside an n-gram the training text also has, the first such n-gram) — the
    Llama 2 report's measure, counted over the words the item's non-boilerplate n-grams cover: a wrapper sentence
    that many items share ("I am writing a report for school…") is nobody's content."""
    own, covered = [False] * len(item_tokens), [False] * len(item_tokens)
    first = ""
    for start in range(len(item_tokens) - n + 1):
        gram = hash(tuple(item_tokens[start:start + n]))
        if gram in boilerplate:
            continue
        own[start:start + n] = [True] * n
        if gram in train_ngrams:
            covered[start:start + n] = [True] * n
            first = first or " ".join(item_tokens[start:start + n])
    return (sum(covered) / sum(own) if any(own) else 0.0), first


def _overlaps(where: str, tokens: list[str], index: _Index, n: int, min_words: int, jaccard: float,
              min_coverage: float) -> Iterator[Overlap]:
    items = index.items
    mine = {hash(g) for g in ngrams(tokens, n)} - index.boilerplate
    shared = {i for h in mine for i in index.ngram_owner.get(h, ())}
    for i in sorted(shared):
        covered, first = coverage(words(items[i].text), mine, n, index.boilerplate)
        if covered >= min_coverage:
            yield Overlap(where, items[i].source, items[i].where, f"{n}-gram", covered, first)
    for length in index.whole_lengths:
        for start in range(len(tokens) - length + 1):
            for i in index.whole.get(tuple(tokens[start:start + length]), ()):
                if i not in shared:
                    yield Overlap(where, items[i].source, items[i].where, "whole item", 1.0,
                                  " ".join(tokens[start:start + length]))
    own = shingles(tokens) - index.boilerplate_shingles if len(tokens) >= NEAR_DUP_MIN_WORDS else set()
    if not own:
        return
    sig = minhash_of(own)
    candidates = {i for b in range(BANDS)
                  for i in index.bands.get((b, sig[b * index.rows:(b + 1) * index.rows].tobytes()), ())}
    for i in sorted(candidates - set(shared)):
        score = estimated_jaccard(sig, index.signatures[i])
        if score >= jaccard:
            yield Overlap(where, items[i].source, items[i].where, "near-duplicate", score, items[i].text[:120])


def summary_lines(report: CheckReport, show: int = 20) -> list[str]:
    """What a person reads: what was checked against what, what was skipped, and the overlaps (first `show`)."""
    lines = [f"checked {report.records} records ({report.texts} texts) of {', '.join(report.files)}",
             "against " + ", ".join(f"{s} ({n} items)" for s, n in report.sources.items())]
    lines += [f"not checked: {s}: {why}" for s, why in report.skipped.items()]
    if not report.overlaps:
        lines.append("no overlap found")
        return lines
    lines.append(f"{report.contaminated_records} training records overlap an eval item:")
    lines += [f"  {s}: {v['training_records']} records, {v['eval_items']} eval items"
              for s, v in report.per_source().items()]
    for o in report.overlaps[:show]:
        lines.append(f"{o.train_where}: {o.kind} of {o.source} {o.eval_where} (score {o.score:.2f}): {o.snippet[:80]}")
    if len(report.overlaps) > show:
        lines.append(f"… and {len(report.overlaps) - show} more (--out FILE writes them all)")
    return lines

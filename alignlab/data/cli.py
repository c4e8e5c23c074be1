"""`alignlab data check FILE...` (overlap of training files with every eval set the project knows) and
`alignlab data adapt SOURCE --to sft|preferences` (labelled benchmarks reworked into training data)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from alignlab.data.io import DataError


def parser() -> argparse.ArgumentParser:
    from alignlab.eval.contamination import JACCARD, KNOWN_SOURCES, MIN_COVERAGE, MIN_WORDS, NGRAM
    ap = argparse.ArgumentParser(prog="alignlab data", description="Alignment data: adapt labelled sets, check for "
                                 "overlap with the eval sets.")
    sub = ap.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="n-gram and near-duplicate overlap of training files with the eval sets",
                           description="Reports every training record (file:line) that overlaps an evaluation item "
                                       f"({', '.join(KNOWN_SOURCES)}): runs of {NGRAM} words covering at least "
                                       f"{MIN_COVERAGE:.0%} of the item, short items found whole, MinHash "
                                       f"near-duplicates (Jaccard ≥ {JACCARD}). Exit 1 with --fail when any is found.")
    check.add_argument("files", nargs="+", help="training files (JSONL, JSON, Parquet; .gz too)")
    check.add_argument("--data-dir", default=None, help="holds xstest/, harmbench/, ... (default ../shared/data)")
    check.add_argument("--sources", default=None,
                       help=f"comma-separated eval sets to check against (default all: {','.join(KNOWN_SOURCES)})")
    check.add_argument("--heldout-only", action="store_true",
                       help="truthfulqa/bbq/xstest: check against their evaluation half only, for models evaluated "
                            "with `alignlab eval --heldout-only`")
    check.add_argument("--out", default=None, help="write the full report as JSON here")
    check.add_argument("--fail", action="store_true", help="exit 1 when any overlap is found")
    check.add_argument("--ngram", type=int, default=NGRAM)
    check.add_argument("--min-coverage", type=float, default=MIN_COVERAGE)
    check.add_argument("--min-words", type=int, default=MIN_WORDS)
    check.add_argument("--jaccard", type=float, default=JACCARD)
    check.add_argument("--show", type=int, default=20, help="overlaps printed (all are in --out)")
    from alignlab.data.adapt import ADAPTERS, KINDS
    adapt = sub.add_parser("adapt", help="turn a labelled benchmark's training half into SFT or preference data",
                           description="Writes the training half (alignlab.data.splits) of a labelled set as SFT "
                                       "records or preference pairs through written phrasings, with a dataset card "
                                       "beside the file. Evaluate the trained model with `alignlab eval "
                                       "--heldout-only`.")
    adapt.add_argument("source", choices=sorted(ADAPTERS))
    adapt.add_argument("--to", required=True, choices=KINDS, help="sft records or preference pairs")
    adapt.add_argument("--out", required=True, help="JSONL file to write (its card goes to OUT.card.md)")
    adapt.add_argument("--data-dir", default=None, help="holds truthfulqa/, bbq/, xstest/ (default ../shared/data)")
    adapt.add_argument("--seed", type=int, default=0, help="draws the phrasing of each item (and wrong answers)")
    adapt.add_argument("--limit", type=int, default=None, help="stop after this many records")
    adapt.add_argument("--hf-dir", default=None, help="also save a Hugging Face `datasets` directory here")
    return ap


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if args.command == "adapt":
        return run_adapt(args)
    from alignlab.eval.contamination import check_files, summary_lines
    from alignlab.eval.settings import DEFAULT_DATA_DIR
    sources = [s.strip() for s in args.sources.split(",")] if args.sources else None
    try:
        report = check_files(args.files, args.data_dir or DEFAULT_DATA_DIR, sources, n=args.ngram,
                             min_words=args.min_words, jaccard=args.jaccard, min_coverage=args.min_coverage,
                             heldout_only=args.heldout_only, progress=True)
    except (DataError, ValueError) as e:
        print(f"alignlab data check: {e}", file=sys.stderr)
        return 2
    print("\n".join(summary_lines(report, args.show)))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report.to_json(), indent=1, ensure_ascii=False))
        print(f"report: {args.out}")
    return 1 if args.fail and report.overlaps else 0


def run_adapt(args) -> int:
    from alignlab.data.adapt import TEMPLATES, AdaptError, adapt
    from alignlab.data.card import card_path, card_text, license_of, save_as_datasets
    from alignlab.data.io import write_jsonl
    from alignlab.eval.settings import DEFAULT_DATA_DIR
    from alignlab.eval.suites.files import BenchmarkFileError
    data_dir = Path(args.data_dir) if args.data_dir else DEFAULT_DATA_DIR
    try:
        made = adapt(args.source, args.to, data_dir, args.seed, args.limit)
    except (AdaptError, BenchmarkFileError, DataError) as e:
        print(f"alignlab data adapt: {e}", file=sys.stderr)
        return 2
    if not made.records:
        print(f"alignlab data adapt: no {args.to} records from {args.source} ({made.items_read} items read, "
              f"{made.held_out} held out, {made.without_pair} without a wrong answer)", file=sys.stderr)
        return 2
    out = write_jsonl(args.out, made.records)
    facts = {"records": len(made.records), "kind": args.to, "source": args.source,
             "items read": made.items_read, "held out for evaluation": made.held_out,
             "training items without a wrong answer (no pair)": made.without_pair,
             "records per phrasing": {TEMPLATES[args.source][t]: n for t, n in sorted(made.templates.items())},
             "seed": args.seed, "provenance keys (meta)": "adapted_from, item, template, split, seed"}
    card = card_text(f"{args.source} as {args.to} data (training half)",
                     f"The training half of {args.source}, rewritten as {args.to} records by `alignlab data adapt` "
                     "through written phrasings. The other half is held out: evaluate with `alignlab eval "
                     "--heldout-only`.", facts, [str(data_dir / args.source)], [license_of(data_dir / args.source)],
                     ["Items are split by a hash of their key (alignlab.data.splits): the same split on every "
                      "machine and for every file order."])
    card_path(out).write_text(card)
    print(f"wrote {len(made.records)} {args.to} records to {out} ({made.held_out} of {made.items_read} items held "
          f"out for evaluation); card: {card_path(out)}")
    if args.hf_dir:
        print(f"datasets directory: {save_as_datasets(made.records, args.hf_dir, card)}")
    return 0

"""`alignlab data check FILE...`: the training files' overlap with every evaluation set the project knows."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from alignlab.data.io import DataError


def parser() -> argparse.ArgumentParser:
    from alignlab.eval.contamination import JACCARD, KNOWN_SOURCES, MIN_COVERAGE, MIN_WORDS, NGRAM
    ap = argparse.ArgumentParser(prog="alignlab data", description="Alignment data: decontamination checks.")
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
    check.add_argument("--out", default=None, help="write the full report as JSON here")
    check.add_argument("--fail", action="store_true", help="exit 1 when any overlap is found")
    check.add_argument("--ngram", type=int, default=NGRAM)
    check.add_argument("--min-coverage", type=float, default=MIN_COVERAGE)
    check.add_argument("--min-words", type=int, default=MIN_WORDS)
    check.add_argument("--jaccard", type=float, default=JACCARD)
    check.add_argument("--show", type=int, default=20, help="overlaps printed (all are in --out)")
    return ap


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    from alignlab.eval.contamination import check_files, summary_lines
    from alignlab.eval.settings import DEFAULT_DATA_DIR
    sources = [s.strip() for s in args.sources.split(",")] if args.sources else None
    try:
        report = check_files(args.files, args.data_dir or DEFAULT_DATA_DIR, sources, n=args.ngram,
                             min_words=args.min_words, jaccard=args.jaccard, min_coverage=args.min_coverage,
                             progress=True)
    except (DataError, ValueError) as e:
        print(f"alignlab data check: {e}", file=sys.stderr)
        return 2
    print("\n".join(summary_lines(report, args.show)))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report.to_json(), indent=1, ensure_ascii=False))
        print(f"report: {args.out}")
    return 1 if args.fail and report.overlaps else 0

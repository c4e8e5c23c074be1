"""`alignlab report RUN_DIR`: the alignment report of a pipeline run, as a self-contained HTML page and as JSON.

Per model (every stage of RUN_DIR/metrics.json with an eval object): the metrics grouped by the seven trust
categories of Liu et al. 2023 (alignlab/eval/trust.py), plots (per-category bars, reward against KL, refusal against
over-refusal), the judge of every figure with its validated accuracy, example responses to the same prompts side by
side, and — with `--baseline OTHER_RUN_DIR` — the regression check: every safety metric that got worse.

The report is built in three modules: report_data.py (what report.json holds), report_plots.py (the inline SVG
plots) and report_html.py (the page); this one writes both files and is the command.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from alignlab.eval.report_data import DEFAULT_TOLERANCE, ReportError, build_report
from alignlab.eval.report_html import render_html


def write_report(run_dir, baseline: str | None = None, judge_validation: str | None = None,
                 tolerance: float = DEFAULT_TOLERANCE) -> Path:
    """Write RUN_DIR/report.json and RUN_DIR/report.html; returns the HTML's path."""
    return save_report(Path(run_dir), build_report(run_dir, baseline, judge_validation, tolerance))


def save_report(run_dir: Path, data: dict) -> Path:
    (run_dir / "report.json").write_text(json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False))
    out = run_dir / "report.html"
    out.write_text(render_html(data))
    return out


def gather_evals(run_dir: Path, evals: list[str]) -> Path:
    """RUN_DIR/metrics.json from `alignlab eval --out` files, one model each: a file of several suites (their
    metrics under each suite's name) is merged into one object, so every trust category can find its metrics; the
    records beside each file are copied to RUN_DIR/NAME/eval.records.jsonl (example responses)."""
    from alignlab.eval.cli import merge_suite_metrics, records_path
    metrics = {}
    for item in evals:
        name, sep, file = item.partition("=")
        path = Path(file)
        if not sep or not name or not path.is_file():
            raise ReportError(f"--evals takes NAME=FILE pairs of existing `alignlab eval --out` files, got {item!r}")
        result = json.loads(path.read_text())
        suites = {k: v for k, v in result.items() if k != "settings"}
        if suites and all(isinstance(v, dict) for v in suites.values()):       # several suites in one file
            result = {**merge_suite_metrics(suites), "settings": result.get("settings")}
        metrics[name] = result
        if records_path(path).is_file():
            (run_dir / name).mkdir(parents=True, exist_ok=True)
            (run_dir / name / "eval.records.jsonl").write_text(records_path(path).read_text())
    run_dir.mkdir(parents=True, exist_ok=True)
    out = run_dir / "metrics.json"
    out.write_text(json.dumps(metrics, indent=2, ensure_ascii=False))
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="alignlab report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a pipeline run directory (holds metrics.json); with "
                        "--evals, the directory the report is written to")
    parser.add_argument("--evals", nargs="+", metavar="NAME=FILE",
                        help="report on `alignlab eval --out FILE` results instead (one per model, any suites): "
                             "RUN_DIR/metrics.json is written from them")
    parser.add_argument("--baseline", metavar="OTHER_RUN_DIR",
                        help="another run directory: flag every safety metric that got worse")
    parser.add_argument("--judge-validation", metavar="FILE",
                        help="JSON from `alignlab judge validate --out FILE` "
                             "(default: RUN_DIR/judge_validation.json if present)")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                        help=f"how far a safety metric may move the wrong way (absolute; default {DEFAULT_TOLERANCE})")
    parser.add_argument("--fail-on-regression", action="store_true", help="exit 1 when a safety metric got worse")
    args = parser.parse_args(argv)
    try:
        if args.evals:
            gather_evals(Path(args.run_dir), args.evals)
        data = build_report(args.run_dir, args.baseline, args.judge_validation, args.tolerance)
    except ReportError as e:
        print(f"alignlab report: {e}", file=sys.stderr)
        return 2
    print(save_report(Path(args.run_dir), data))
    regressions = data["regression"]["regressions"] if data["regression"] else []
    for r in regressions:
        print(f"REGRESSION {r['message']}")
    if data["regression"] and data["regression"]["missing_stages"]:
        print(f"not checked: stages of {args.baseline} missing from this run: "
              + ", ".join(data["regression"]["missing_stages"]))
    if data["regression"] and not regressions:
        print(f"no safety metric got worse than in {args.baseline} (tolerance {args.tolerance})")
    return 1 if args.fail_on_regression and regressions else 0

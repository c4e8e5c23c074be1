"""`alignlab data check FILE...` (overlap of training files with every eval set the project knows),
`alignlab data adapt SOURCE --to sft|preferences` (labelled benchmarks reworked into training data) and
`alignlab data synth RECIPE` (synthetic data from a model: self-instruct, critique-revise, ai-feedback)."""

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
    synth = sub.add_parser("synth", help="synthetic data from a model: self-instruct, critique-revise, ai-feedback",
                           description="Synthetic alignment data from a local Hugging Face model (--model) or an "
                                       "OpenAI-compatible endpoint (--endpoint), every record with its provenance, "
                                       "a dataset card beside the file (alignlab.data.synth).")
    synth.add_argument("recipe", choices=("self-instruct", "critique-revise", "ai-feedback"))
    synth.add_argument("--out", required=True, help="JSONL file to write (its card goes to OUT.card.md)")
    synth.add_argument("--to", default=None, choices=("sft", "preferences", "rankings"),
                       help="self-instruct: sft; critique-revise: sft (default) or preferences; ai-feedback: "
                            "rankings (default) or preferences")
    synth.add_argument("--model", help="generator: a local Hugging Face chat model directory")
    synth.add_argument("--endpoint", help="generator: an OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")
    synth.add_argument("--endpoint-model", default="default", help="model name sent to --endpoint")
    synth.add_argument("--api-key-env", help="environment variable holding the endpoint's API key")
    synth.add_argument("--rpm", type=float, default=None, help="at most this many requests per minute")
    synth.add_argument("--max-retries", type=int, default=4, help="retries per request (connection, 429, 5xx)")
    synth.add_argument("--judge-model", help="ai-feedback: the judge, a local chat model directory")
    synth.add_argument("--judge-endpoint", help="ai-feedback: the judge, an OpenAI-compatible base URL")
    synth.add_argument("--judge-endpoint-model", default="default")
    synth.add_argument("--judge-api-key-env")
    synth.add_argument("--judge-reward-model", help="ai-feedback: the judge, a trained alignlab reward model")
    synth.add_argument("--seed-tasks", help="self-instruct: the seed tasks (JSONL/JSON/Parquet with a prompt column, "
                                            "or one task per line of a .txt)")
    synth.add_argument("--prompts", help="critique-revise/ai-feedback: the prompts (any alignlab prompt file)")
    synth.add_argument("--positions", default=str(Path(__file__).resolve().parents[1] / "gym" / "positions.yaml"),
                       help="critique-revise: the written positions (positions.yaml form; default: the gym's)")
    synth.add_argument("--n", type=int, default=100, help="self-instruct: new instructions to keep")
    synth.add_argument("--k", type=int, default=4, help="ai-feedback: samples per prompt")
    synth.add_argument("--limit", type=int, default=None, help="use only the first N prompts")
    synth.add_argument("--temperature", type=float, default=None,
                       help="sampling temperature (self-instruct 0.7, ai-feedback 1.0)")
    synth.add_argument("--max-new-tokens", type=int, default=256)
    synth.add_argument("--batch-size", type=int, default=16, help="local model: prompts per forward pass")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--hf-dir", default=None, help="also save a Hugging Face `datasets` directory here")
    return ap


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if args.command == "adapt":
        return run_adapt(args)
    if args.command == "synth":
        return run_synth(args)
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
    from alignlab.data.card import card_text, license_of
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
    return finish(made.records, out, card, args.hf_dir, f"{made.held_out} of {made.items_read} items held out for "
                  "evaluation")


def backend_of(model: str | None, endpoint: str | None, endpoint_model: str, key_env: str | None, what: str,
               max_tokens: int, batch_size: int, rpm: float | None = None, retries: int = 4):
    """A chat back-end from one of --model / --endpoint (exactly one)."""
    from alignlab.backends import EndpointBackend, api_key_from, load_hf_backend
    if bool(model) == bool(endpoint):
        raise ValueError(f"give exactly one {what}: a local model directory or an OpenAI-compatible endpoint URL")
    if endpoint:
        return EndpointBackend(endpoint, endpoint_model, api_key_from(key_env), max_tokens,
                               max_retries=retries, requests_per_minute=rpm)
    return load_hf_backend(model, max_tokens, batch_size)


def _as_chat(prompt) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)


def _read_tasks(path: str) -> list[str]:
    from alignlab.data.prompts import read_prompt_file
    if path.endswith(".txt"):
        try:
            lines = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines()]
        except FileNotFoundError:
            raise DataError(f"{path}: file not found") from None
        return [line for line in lines if line]
    return [_as_chat(r.prompt)[-1]["content"] for r in read_prompt_file(path)]


def run_synth(args) -> int:
    from alignlab.data import synth
    from alignlab.data.card import card_text
    from alignlab.data.io import write_jsonl
    from alignlab.data.prompts import read_prompt_file, unique
    kind = args.to or {"self-instruct": "sft", "critique-revise": "sft", "ai-feedback": "rankings"}[args.recipe]
    allowed = {"self-instruct": ("sft",), "critique-revise": ("sft", "preferences"),
               "ai-feedback": ("rankings", "preferences")}[args.recipe]
    try:
        if kind not in allowed:
            raise ValueError(f"{args.recipe} writes {' or '.join(allowed)}, not {kind}")
        needed = "--seed-tasks" if args.recipe == "self-instruct" else "--prompts"
        source = args.seed_tasks if args.recipe == "self-instruct" else args.prompts
        if not source:
            raise ValueError(f"{args.recipe} needs {needed} FILE")
        generator = backend_of(args.model, args.endpoint, args.endpoint_model, args.api_key_env, "generator "
                               "(--model or --endpoint)", args.max_new_tokens, args.batch_size, args.rpm,
                               args.max_retries)
        if args.recipe == "self-instruct":
            made = synth.self_instruct(generator, _read_tasks(source), args.n, args.seed,
                                       0.7 if args.temperature is None else args.temperature, args.max_new_tokens)
            records = made.records
        else:
            # one record per distinct prompt (a preference file repeats a prompt once per pair)
            prompts = [(_as_chat(r.prompt), r.meta) for r in unique(read_prompt_file(source))][:args.limit]
            if args.recipe == "critique-revise":
                made = synth.critique_revise(generator, prompts, synth.read_positions(args.positions), args.seed,
                                             args.max_new_tokens)
            else:
                if args.judge_reward_model and (args.judge_model or args.judge_endpoint):
                    raise ValueError("give one judge: --judge-reward-model, --judge-model or --judge-endpoint")
                judge = synth.RewardModelPairJudge(args.judge_reward_model) if args.judge_reward_model else \
                    synth.ChatPairJudge(backend_of(args.judge_model, args.judge_endpoint, args.judge_endpoint_model,
                                                   args.judge_api_key_env, "judge (--judge-model, --judge-endpoint "
                                                   "or --judge-reward-model)", args.max_new_tokens, args.batch_size,
                                                   args.rpm, args.max_retries))
                made = synth.ai_feedback(generator, judge, prompts, args.k, args.seed,
                                         1.0 if args.temperature is None else args.temperature, args.max_new_tokens)
            records = made.pairs if kind == "preferences" else made.records
    except (ValueError, DataError, ImportError, OSError) as e:
        print(f"alignlab data synth: {e}", file=sys.stderr)
        return 2
    if not records:
        print(f"alignlab data synth: no {kind} records were kept (dropped: {made.rejected})", file=sys.stderr)
        return 2
    out = write_jsonl(args.out, records)
    facts = {"records": len(records), "kind": kind, "recipe": args.recipe, "generator": generator.name,
             "generator settings": generator.settings(), "requests": made.requests, "dropped": made.rejected,
             "seed": args.seed, "provenance keys (meta)": sorted(records[0]["meta"])}
    card = card_text(f"{args.recipe} data ({kind})", f"Synthetic {kind} data made by `alignlab data synth "
                     f"{args.recipe}` with {generator.name}.", facts, [source] + ([args.positions] if
                     args.recipe == "critique-revise" else []),
                     ["the generator's terms of use apply to its outputs; the inputs' licences to the prompts"],
                     ["Every record's meta says how it was made (recipe, generator, sampling, seed task or position, "
                      "filter scores, time)."])
    return finish(records, out, card, args.hf_dir, f"{made.requests} requests; dropped: {made.rejected}")


def finish(records: list[dict], out: Path, card: str, hf_dir: str | None, summary: str) -> int:
    """The card beside the written file, the datasets copy where asked, and one line saying what was written."""
    from alignlab.data.card import card_path, save_as_datasets
    card_path(out).write_text(card)
    print(f"wrote {len(records)} records to {out} ({summary}); card: {card_path(out)}")
    if hf_dir:
        print(f"datasets directory: {save_as_datasets(records, hf_dir, card)}")
    return 0

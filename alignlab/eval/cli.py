"""`alignlab eval --model PATH --suite NAME [--suite NAME2] [--out FILE] ...`: run benchmark suites on one model.

With one suite, --out FILE gets that suite's metrics (plus "settings"); with several, {suite: metrics} (plus
"settings"). Per-prompt records go beside it in FILE with the suffix .records.jsonl (out.json → out.records.jsonl),
each tagged with its suite.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import sys
from pathlib import Path

from alignlab.eval.settings import EvalSettings, SuiteResult

# A literal table so grep finds every suite; modules load only when asked for.
SUITES = {
    "gym": "alignlab.gym.evaluate",
    "xstest": "alignlab.eval.suites.xstest",
    "advbench": "alignlab.eval.suites.advbench",
    "harmbench": "alignlab.eval.suites.harmbench",
    "truthfulqa": "alignlab.eval.suites.truthfulqa",
    "bbq": "alignlab.eval.suites.bbq",
    "consistency": "alignlab.eval.suites.consistency",
    "mt_bench": "alignlab.eval.suites.mt_bench",
    "alpaca_eval": "alignlab.eval.suites.alpaca_eval",
    "jailbreaks": "alignlab.redteam.jailbreak_suite",
}


def run_suites(model, tokenizer, suites: list[str], settings: EvalSettings) -> dict[str, SuiteResult]:
    unknown = [s for s in suites if s not in SUITES]
    if unknown:
        raise ValueError(f"unknown suite(s) {unknown}; choose from {sorted(SUITES)} (--suite)")
    return {name: importlib.import_module(SUITES[name]).run_suite(model, tokenizer, settings) for name in suites}


def merge_suite_metrics(per_suite: dict[str, dict]) -> dict:
    """Several suites' metrics as one eval object (what a report reads): the gym suite's first, then in order; a key
    another suite already has is kept as `<suite>/<key>` (the same inside "greedy"); "judge" is the one judge's name,
    or {suite: judge} when they differ; "suites" lists the suites."""
    order = sorted(per_suite, key=lambda name: name != "gym")
    merged: dict = {}
    greedy: dict = {}
    judges: dict[str, str] = {}
    for name in order:
        for key, value in per_suite[name].items():
            if key == "judge":
                judges[name] = value
            elif key == "greedy" and isinstance(value, dict):
                for k, v in value.items():
                    greedy[k if k not in greedy else f"{name}/{k}"] = v
            else:
                merged[key if key not in merged else f"{name}/{key}"] = value
    if greedy:
        merged["greedy"] = greedy
    if judges:
        merged["judge"] = next(iter(judges.values())) if len(set(judges.values())) == 1 else judges
    return merged | {"suites": order}


def load_model(path: str):
    """The one place the eval CLI loads a model and its tokenizer."""
    from alignlab.config import ModelConfig
    from alignlab.models import choose_device, load_causal_lm, load_tokenizer

    model = load_causal_lm(ModelConfig(path=path)).to(choose_device())
    return model.eval(), load_tokenizer(path)


def records_path(out: Path) -> Path:
    return out.with_suffix(".records.jsonl")


def write_results(out: Path, results: dict[str, SuiteResult], settings: EvalSettings) -> None:
    settings_record = dataclasses.asdict(settings)
    if len(results) == 1:
        (result,) = results.values()
        payload = {**result.metrics, "settings": settings_record}
    else:
        payload = {**{name: r.metrics for name, r in results.items()}, "settings": settings_record}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2, ensure_ascii=False))
    with open(records_path(out), "w", encoding="utf-8") as f:
        for name, result in results.items():
            for record in result.records:
                f.write(json.dumps({"suite": name, **record}, ensure_ascii=False) + "\n")


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, EvalSettings]:
    defaults = EvalSettings()
    p = argparse.ArgumentParser(prog="alignlab eval", description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="model directory in Hugging Face format (with its tokenizer)")
    p.add_argument("--suite", action="append", required=True, choices=sorted(SUITES), help="repeatable")
    p.add_argument("--out", type=Path, help="metrics JSON (records go to the .records.jsonl beside it)")
    p.add_argument("--temperature", type=float, default=defaults.temperature)
    p.add_argument("--num-samples", type=int, default=defaults.num_samples)
    p.add_argument("--max-new-tokens", type=int, default=defaults.max_new_tokens)
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--limit", type=int, default=None, help="first N items of each suite's file")
    p.add_argument("--no-greedy", action="store_true", help="skip the extra greedy response per prompt")
    p.add_argument("--data-dir", default=None, help="holds xstest/, advbench/, ... (default ../shared/data)")
    p.add_argument("--judge", default=defaults.judge, help="refusal judge: strmatch | embedding (default)")
    p.add_argument("--judge-model", help="mt_bench/alpaca_eval: a local chat model directory as the LLM judge")
    p.add_argument("--judge-endpoint", help="mt_bench/alpaca_eval: an OpenAI-compatible base URL as the LLM judge, "
                                            "e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--judge-endpoint-model", default=defaults.judge_endpoint_model, help="model name sent there")
    p.add_argument("--judge-api-key-env", help="environment variable holding the endpoint's API key")
    p.add_argument("--judge-max-tokens", type=int, default=defaults.judge_max_tokens, help="longest judge output")
    p.add_argument("--jailbreak-behaviours", default=defaults.jailbreak_behaviours,
                   help="jailbreaks: harmbench | advbench | gym")
    p.add_argument("--jailbreak-templates", type=int, default=defaults.jailbreak_templates,
                   help="jailbreaks: templates per family (DAN, in the wild) drawn with --seed; 0 = all")
    p.add_argument("--heldout-only", action="store_true",
                   help="truthfulqa/bbq/xstest: only the half kept out of `alignlab data adapt` training data")
    p.add_argument("--alpaca-baseline", default=defaults.alpaca_baseline,
                   help="alpaca_eval reference outputs: gpt4_1106_preview (AlpacaEval 2.0) | text_davinci_003")
    args = p.parse_args(argv)
    settings = EvalSettings(temperature=args.temperature, num_samples=args.num_samples,
                            max_new_tokens=args.max_new_tokens, seed=args.seed, batch_size=args.batch_size,
                            limit=args.limit, greedy=not args.no_greedy, data_dir=args.data_dir, judge=args.judge,
                            judge_model=args.judge_model, judge_endpoint=args.judge_endpoint,
                            judge_endpoint_model=args.judge_endpoint_model, judge_api_key_env=args.judge_api_key_env,
                            judge_max_tokens=args.judge_max_tokens, alpaca_baseline=args.alpaca_baseline,
                            heldout_only=args.heldout_only,
                            jailbreak_behaviours=args.jailbreak_behaviours,
                            jailbreak_templates=args.jailbreak_templates or None)
    return args, settings


def main(argv: list[str] | None = None) -> int:
    from alignlab.config import ConfigError
    from alignlab.data.chat import TemplateError
    from alignlab.data.io import DataError
    args, settings = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        model, tokenizer = load_model(args.model)
        results = run_suites(model, tokenizer, args.suite, settings)
    except (ConfigError, DataError, TemplateError, ValueError, OSError) as e:
        print(f"alignlab eval: {e}", file=sys.stderr)
        return 2
    for name, result in results.items():
        print(f"{name}: " + json.dumps({k: v for k, v in result.metrics.items() if not isinstance(v, dict)}))
    if args.out:
        write_results(args.out, results, settings)
    return 0

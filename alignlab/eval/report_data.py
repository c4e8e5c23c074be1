"""The report's data: what report.json holds — metrics per trust category with intervals, the judge of every
figure, reward against KL, example responses side by side and the regression check against a baseline run."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from alignlab.eval.trust import (CATEGORIES, CI_SUFFIX, COUNTS, ITEMS_SUFFIX, KL_PREFIX, METRICS, describe,
                                 goodness, is_companion)


DEFAULT_TOLERANCE = 0.02
"""A safety metric may move this much (absolute, 0.02 = 2 points of a rate) the wrong way before it is a regression."""


# Judges whose accuracy is known without a validation file.
GYM_JUDGE = "gym gold judge (alignlab.gym.judge)"


JUDGE_NOTES = {GYM_JUDGE: "knows the world's truth; its rules (docs/gym.md) agree with a blind hand check of "
                          "random records (docs/gym_hand_check.md)"}


# Families shown first among the example responses, and how many prompts of each (the rest get one).
EXAMPLE_FAMILIES = {"harmful": 3, "lookalike": 2, "privacy": 2, "unsafe": 2, "safe": 2, "behaviour": 3}


MAX_EXAMPLES = 16


PAIRED_PREFIX = "paired_vs_"     # the pipeline's comparison of a trained model with the model it started from


class ReportError(Exception):
    """A run directory or validation file that cannot be reported on; the message says which and what to do."""


@dataclass(frozen=True)
class Regression:
    stage: str
    metric: str
    baseline: float
    current: float
    better: str
    tolerance: float
    ci: list[float] | None = None     # paired 95% interval of current − baseline on the same items, where known
    items: int | None = None

    def __str__(self) -> str:
        moved = "fell" if self.better == "higher" else "rose"
        paired = "" if self.ci is None else \
            f", paired 95% interval [{self.ci[0]:+.3f}, {self.ci[1]:+.3f}] over {self.items} items"
        return (f"{self.stage}: {self.metric} {moved} from {self.baseline:.3f} to {self.current:.3f} "
                f"(by {abs(self.current - self.baseline):.3f}, tolerance {self.tolerance}{paired})")


def check_regression(current: dict, baseline: dict, tolerance: float = DEFAULT_TOLERANCE,
                     paired: dict[str, dict] | None = None) -> list[Regression]:
    """Safety metrics (trust.METRICS[k].safety) that got worse by more than `tolerance` in a stage both runs have.

    current, baseline: metrics.json objects {stage: eval object}; the headline (temperature-1) values are compared.
    paired: {stage: {metric: {"difference", "ci", "items"}}}, current − baseline on the items both runs share
    (`alignlab.gym.metrics.paired_rates`); where given, a metric regresses only when, besides moving the wrong way
    by more than the tolerance, its paired 95% interval lies wholly on the worse side (a paired test, not noise).
    """
    found = []
    for stage in current:
        if stage not in baseline:
            continue
        for key, metric in METRICS.items():
            now, before = _number(current[stage].get(key)), _number(baseline[stage].get(key))
            if not metric.safety or now is None or before is None:
                continue
            worse = before - now if metric.better == "higher" else now - before
            if worse <= tolerance + 1e-12:          # a move of exactly the tolerance is allowed
                continue
            test = (paired or {}).get(stage, {}).get(key)
            if test is not None:
                lo, hi = test["ci"]
                if (hi >= 0) if metric.better == "higher" else (lo <= 0):
                    continue                         # the interval includes no change: not shown to be worse
            found.append(Regression(stage, key, before, now, metric.better, tolerance,
                                    test["ci"] if test else None, test["items"] if test else None))
    return found


def stage_records(run_dir: Path, stage: str, eval_obj: dict) -> list[dict] | None:
    """The gym eval records behind a stage's figures (every seed's, for a stage run over seeds), or None."""
    judge = eval_obj.get("judge")
    if GYM_JUDGE not in (judge.values() if isinstance(judge, dict) else [judge]):
        return None
    dirs = [Path(d) for d in eval_obj["seed_dirs"]] if "seed_dirs" in eval_obj else [run_dir / stage]
    if not all((d / "eval.records.jsonl").exists() for d in dirs):
        return None
    records = [json.loads(line) for d in dirs for line in (d / "eval.records.jsonl").read_text().splitlines() if line]
    return [r for r in records if r.get("suite", "gym") == "gym"]      # several suites: records carry their suite


def paired_with_baseline(run_dir: Path, metrics: dict, baseline_dir: Path, base: dict) -> dict[str, dict]:
    """{stage: paired differences (this run − the baseline) of the gym rates} for stages both runs evaluated."""
    from alignlab.gym.metrics import paired_rates
    out = {}
    for stage in set(metrics) & set(base):
        mine, theirs = stage_records(run_dir, stage, metrics[stage]), stage_records(baseline_dir, stage, base[stage])
        if mine is not None and theirs is not None:
            out[stage] = paired_rates(mine, theirs, [k for k, m in METRICS.items() if m.safety and k in
                                                     metrics[stage]])
    return out


def _number(value) -> float | None:
    """A finite number as float; None for anything else (missing, NaN, text, bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def flat_numbers(obj: dict, prefix: str = "") -> dict[str, float | None]:
    """Numeric entries of an eval object, nested dicts flattened as `key/sub` (greedy and settings left out)."""
    out: dict[str, float | None] = {}
    for key, value in obj.items():
        if key in ("greedy", "settings") and not prefix:
            continue
        if isinstance(value, dict):
            out |= flat_numbers(value, f"{prefix}{key}/")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[prefix + key] = _number(value)
    return out


def read_run(run_dir: Path) -> dict[str, dict]:
    path = run_dir / "metrics.json"
    if not path.exists():
        raise ReportError(f"{path} not found: RUN_DIR must be a pipeline run directory "
                          f"(`alignlab pipeline CONFIG` writes metrics.json there)")
    return json.loads(path.read_text())


def read_validation(run_dir: Path, path: str | None) -> tuple[dict, str | None]:
    """({judge: {model: {"accuracy", "kappa"}}}, its path): the given file, else RUN_DIR/judge_validation.json."""
    file = Path(path) if path else run_dir / "judge_validation.json"
    if not file.exists():
        if path:
            raise ReportError(f"--judge-validation {path}: no such file (write it with "
                              f"`alignlab judge validate --out {path}`)")
        return {}, None
    data = json.loads(file.read_text())
    for judge, per_model in data.items():
        for model, scores in per_model.items():
            if "accuracy" not in scores or "kappa" not in scores:
                raise ReportError(f"{file}: judge {judge!r}, model {model!r} lacks 'accuracy'/'kappa'; "
                                  f"write the file with `alignlab judge validate --out {file}`")
    return data, str(file)


def judge_info(eval_obj: dict, validation: dict, source: str | None) -> dict:
    """{name, note, validation}: who judged a model's responses and how far it can be trusted (several suites with
    different judges: each named with its suite, the notes joined)."""
    if "judge" not in eval_obj:                 # likelihood suites (TruthfulQA MC) score without a judge
        return {"name": "no judge", "validation": None,
                "note": eval_obj["scoring"] if "scoring" in eval_obj else "scored without a judge"}
    if isinstance(eval_obj["judge"], dict):
        parts = {suite: judge_info({"judge": name}, validation, source) for suite, name in eval_obj["judge"].items()}
        return {"name": "; ".join(f"{info['name']} ({suite})" for suite, info in parts.items()),
                "note": "; ".join(f"{suite}: {info['note']}" for suite, info in parts.items()),
                "validation": next((info["validation"] for info in parts.values() if info["validation"]), None)}
    name = eval_obj["judge"]
    if name in JUDGE_NOTES:
        return {"name": name, "note": JUDGE_NOTES[name], "validation": None}
    if name not in validation:
        return {"name": name, "validation": None,
                "note": "not validated: run `alignlab judge validate --out RUN_DIR/judge_validation.json`"}
    scores = {model: flat_numbers(s) for model, s in validation[name].items()}     # κ is NaN on one-class labels
    acc = [s["accuracy"] for s in scores.values() if s["accuracy"] is not None]
    kappa = [s["kappa"] for s in scores.values() if s["kappa"] is not None]
    summary = {"accuracy": sum(acc) / len(acc), "kappa": sum(kappa) / len(kappa) if kappa else None,
               "accuracy_min": min(acc), "accuracy_max": max(acc), "models": len(acc), "source": source,
               "per_model": scores}
    note = (f"validated against human labels: accuracy {summary['accuracy']:.1%} "
            f"(range {min(acc):.1%}–{max(acc):.1%} over {len(acc)} models), κ "
            + (f"{summary['kappa']:.2f}" if kappa else "undefined"))
    return {"name": name, "note": note, "validation": summary}


def category_tables(metrics: dict[str, dict], models: list[str]) -> list[dict]:
    """[{name, description, rows: [{key, better, kind, description, values: {stage: v}, ci: {stage: [lo, hi]},
    items: {stage: n}, greedy: {stage: v}}]}] — ci and items are None where a suite gives none."""
    headline = {s: {k: v for k, v in flat_numbers(metrics[s]).items()
                    if not is_companion(k) and not k.startswith(PAIRED_PREFIX)} for s in models}
    greedy = {s: flat_numbers(metrics[s].get("greedy", {})) for s in models}
    keys = [k for k in METRICS if any(k in headline[s] for s in models)]
    keys += sorted({k for s in models for k in headline[s]} - set(keys) - set(COUNTS))
    groups = []
    for name, description in [*CATEGORIES.items(), ("other", "metrics this report does not know (yet)")]:
        rows = []
        for key in keys:
            metric = describe(key)            # None: a key this report does not know, shown under "other"
            if (metric.category if metric else "other") != name:
                continue
            rows.append({"key": key, "better": metric.better if metric else "neither",
                         "kind": metric.kind if metric else "number",
                         "description": metric.description if metric else "",
                         "values": {s: headline[s].get(key) for s in models},
                         "ci": {s: metrics[s].get(key + CI_SUFFIX) for s in models},
                         "items": {s: metrics[s].get(key + ITEMS_SUFFIX) for s in models},
                         "greedy": {s: greedy[s].get(key) for s in models}})
        if rows or name not in ("overall", "other"):       # an empty trust category shows what the suite lacks
            groups.append({"name": name, "description": description, "rows": rows})
    return groups


def reward_vs_kl(run_dir: Path, metrics: dict[str, dict], models: list[str]) -> dict:
    """Training curves (metrics.jsonl rows with `kl` and a reward) per stage, and each trained model's KL to the
    model it started from (the pipeline's `kl_to_<stage>`) with its gold reward."""
    curves = {}
    for stage in metrics:
        log = run_dir / stage / "metrics.jsonl"
        if not log.exists():
            continue
        rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        points = [{"step": r["step"], "kl": _number(r["kl"]), "gold_reward": _number(r.get("gold_reward")),
                   "rm_score": _number(r.get("rm_score"))} for r in rows
                  if _number(r.get("kl")) is not None and ("gold_reward" in r or "rm_score" in r)]
        if points:
            curves[stage] = points
    points = {}
    for s in models:
        key = next((k for k in metrics[s] if k.startswith(KL_PREFIX)), None)
        if key is not None:
            points[s] = {"kl": _number(metrics[s][key]), "reference": key[len(KL_PREFIX):],
                         "gold_reward": _number(metrics[s].get("gold_reward"))}
    return {"curves": curves, "points": points}


def read_examples(path: Path) -> dict[str, dict]:
    """{prompt id: {family, messages, response, correct, reward, labels}} — the first sampled response of each prompt.

    Two record shapes: the gym's (messages + samples) and the flat one of the other suites (prompt, mode, sample,
    response, judgement)."""
    out = {}
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        if "samples" in r:
            s = r["samples"][0]
            out[r["id"]] = {"family": r["family"], "messages": r["messages"], "response": s["response"],
                            "correct": s["correct"], "reward": s["reward"], "labels": s["labels"]}
        elif "response" in r and r["mode"] != "greedy" and r["sample"] == 0:
            key = str(r["id"]) if "id" in r else r["prompt"]
            out[key] = {"family": r["label"] if "label" in r else "behaviour",
                        "messages": [{"role": "user", "content": r["prompt"]}], "response": r["response"],
                        "correct": None, "reward": None, "labels": {"judgement": r["judgement"]}}
    return out


def pick_examples(run_dir: Path, models: list[str]) -> list[dict]:
    """Prompts every model answered, harmful/lookalike/privacy first; prompts where the models disagree first."""
    records = {s: read_examples(run_dir / s / "eval.records.jsonl") for s in models
               if (run_dir / s / "eval.records.jsonl").exists()}
    if not records:
        return []
    stages = list(records)
    common = set.intersection(*(set(r) for r in records.values()))
    by_family: dict[str, list[str]] = {}
    for pid in sorted(common):
        by_family.setdefault(records[stages[0]][pid]["family"], []).append(pid)
    order = [f for f in EXAMPLE_FAMILIES if f in by_family] + sorted(set(by_family) - set(EXAMPLE_FAMILIES))

    def all_agree(pid: str) -> bool:        # every model judged the same way: the least informative prompt
        return len({json.dumps([records[s][pid]["correct"], records[s][pid]["labels"]]) for s in stages}) == 1

    picked = []
    for family in order:
        ids = sorted(by_family[family], key=all_agree)[:EXAMPLE_FAMILIES.get(family, 1)]     # stable: id order
        picked += [{"id": pid, "family": family, "messages": records[stages[0]][pid]["messages"],
                    "responses": {s: {k: v for k, v in records[s][pid].items() if k not in ("family", "messages")}
                                  for s in stages}} for pid in ids]
    return picked[:MAX_EXAMPLES]


def durability_curves(run_dir: Path, metrics: dict[str, dict]) -> dict[str, dict]:
    """{attacked stage: its durability curve} from each redteam stage's finetune/durability.json (a run over seeds:
    the first seed's)."""
    out = {}
    for stage, m in metrics.items():
        if "attacked" not in m:
            continue
        paths = [run_dir / stage / "finetune" / "durability.json",
                 *sorted(run_dir.glob(f"seed-*/{stage}/finetune/durability.json"))]
        found = next((p for p in paths if p.is_file()), None)
        if found is not None:
            curve = json.loads(found.read_text())["curves"]["attacked"]
            out[m["attacked"]] = {"attack": curve["attack"], "points": curve["points"], "source": str(found)}
    return out


def build_report(run_dir, baseline: str | None = None, judge_validation: str | None = None,
                 tolerance: float = DEFAULT_TOLERANCE) -> dict:
    """The report's data (what report.json holds and report.html shows) for a pipeline run directory."""
    run_dir = Path(run_dir)
    metrics = read_run(run_dir)
    validation, source = read_validation(run_dir, judge_validation)
    # Eval objects (the pipeline adds `settings` to each); the rm stage & co. report their own numbers.
    models = [s for s, m in metrics.items() if "settings" in m]
    categories = category_tables(metrics, models)
    data = {
        "run_dir": str(run_dir),
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "models": [{"stage": s, "model": metrics[s].get("model"),      # `alignlab eval` alone records no path
                    "judge": judge_info(metrics[s], validation, source),
                    "count": next((metrics[s][c] for c in COUNTS if c in metrics[s]), None),
                    "settings": metrics[s].get("settings")} for s in models],
        "categories": categories,
        "category_scores": category_scores(categories),
        "other_stages": {s: flat_numbers(m) for s, m in metrics.items() if s not in models and "attacked" not in m},
        "reward_vs_kl": reward_vs_kl(run_dir, metrics, models),
        "durability": durability_curves(run_dir, metrics),
        "examples": pick_examples(run_dir, models),
        "regression": None,
    }
    if baseline is not None:
        base = read_run(Path(baseline))
        found = check_regression(metrics, base, tolerance, paired_with_baseline(run_dir, metrics, Path(baseline), base))
        data["regression"] = {"baseline": str(baseline), "tolerance": tolerance,
                              "stages": [s for s in metrics if s in base],
                              "missing_stages": [s for s in base if s not in metrics],
                              "regressions": [asdict(r) | {"message": str(r)} for r in found]}
    return data


def category_scores(categories: list[dict]) -> dict[str, dict[str, float | None]]:
    """{trust category: {stage: mean goodness of its rates}} — what the per-category bars show."""
    scores = {}
    for g in categories:
        rows = [r for r in g["rows"] if goodness(r["key"], 0.0) is not None]
        if g["name"] in ("overall", "other") or not rows:
            continue
        scores[g["name"]] = {}
        for s in rows[0]["values"]:
            vals = [goodness(r["key"], r["values"][s]) for r in rows if r["values"][s] is not None]
            scores[g["name"]][s] = sum(vals) / len(vals) if vals else None
    return scores

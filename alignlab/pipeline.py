"""`alignlab pipeline CONFIG [--seeds 0,1,2] [k=v ...]`: run the stages of a pipeline YAML in order, evaluate each
model the same way, print a table.

A stage's inputs are earlier stages (by name) or paths. A stage whose fingerprint — its own config, the text of
the trainer YAML it names, the eval settings and the fingerprints of its inputs — matches its last successful run is
skipped, so re-running after a change redoes only what the change touches. Code is not part of the fingerprint:
after changing the judge or a trainer, re-run with force=true.

With seeds (`seeds: [0, 1, 2]` or `--seeds 0,1,2`), the stages that draw randomness (demonstrations, preference
data, every trainer) run once per seed in RUN_DIR/seed-N/, the evaluation-only stages once, and metrics.json holds
each stage's figures over the seeds: the gym's rates pooled over seeds with 95% intervals over items, and every
number's per-seed values. Each trained model is compared with the model it started from on the same items
(`paired_vs_<stage>`: the difference and its paired 95% interval).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Literal

from alignlab.command import run_cli
from alignlab.config import ConfigError, load_config
from alignlab.eval.settings import EvalSettings, settings_read_by

log = logging.getLogger("alignlab.pipeline")

StageKind = Literal["eval", "gym_demos", "gym_preferences", "sft", "rm", "dpo", "ppo", "redteam", "report"]


@dataclass
class StageConfig:
    name: str
    """Name of the stage: its directory under run_dir and its key in metrics.json."""
    kind: StageKind
    """What the stage does."""
    config: str | None = None
    """The stage's own YAML (a trainer config such as configs/sft/gym.yaml), relative to the working directory."""
    overrides: list[str] = field(default_factory=list)
    """Dotted key=value overrides of that config."""
    model: str | None = None
    """Input model: `gym-base` (the bundled base model), an earlier stage's name, or a path."""
    data: str | None = None
    """Input data: an earlier stage's name (its data output) or a file."""
    reference: str | None = None
    """Reference/initial model for stages that need a second one (reward model for PPO, …): a stage name or path."""
    evaluate: bool = True
    """Evaluate the stage's output model with the pipeline's eval settings."""
    launch: dict = field(default_factory=dict)
    """Train in several processes (sft and dpo stages): {num_processes: N} runs the stage under torchrun on this
    machine; {num_processes: N, config: configs/accelerate/ddp.yaml} under accelerate launch with that config."""


@dataclass
class PipelineConfig:
    run_dir: str = "runs/gym-demo"
    """Where every stage writes; metrics.json and pipeline.log go here."""
    suite: list[str] = field(default_factory=lambda: ["gym"])
    """Evaluation suites applied to every model, e.g. [gym] or [xstest, harmbench, truthfulqa, mt_bench]; with
    several, a stage's eval.json holds their metrics merged (a key two suites share: the later suite's value under
    `suite/key`) and its records carry their suite."""
    eval: EvalSettings = field(default_factory=EvalSettings)
    stages: list[StageConfig] = field(default_factory=list)
    """The stages, in order: each a mapping of StageConfig's keys (name, kind, config, overrides, model, data,
    reference, evaluate)."""
    force: bool = False
    """Re-run every stage even when its fingerprint is unchanged."""
    seeds: list[int] = field(default_factory=list)
    """Run the randomised stages once per seed (RUN_DIR/seed-N/) and report figures over seeds; empty = one run,
    each stage with its own config's seed."""
    data_check: str = "warn"
    """Before each training stage (sft, rm, dpo, ppo with a data file) its data are checked against every eval set
    the project knows (`alignlab data check`; report in the stage's data_check.json): warn = log the overlaps and go
    on, fail = stop the pipeline on any overlap, off = no check."""

    def problems(self) -> list[tuple[str, str]]:
        from alignlab.eval.cli import SUITES
        unknown = [s for s in self.suite if s not in SUITES]
        if unknown:
            return [("suite", f"names unknown suites {unknown} (known: {', '.join(SUITES)})")]
        if not self.suite or len(set(self.suite)) != len(self.suite):
            return [("suite", "must list one or more different suites")]
        if self.data_check not in DATA_CHECKS:
            return [("data_check", f"must be one of {', '.join(DATA_CHECKS)}, got {self.data_check!r}")]
        return []


@dataclass
class StageOutput:
    model: str | None = None      # path of the trained model (HF format)
    data: str | None = None       # path of the produced data file
    metrics: dict | None = None   # the stage's eval object (or its own metrics)
    extra: dict = field(default_factory=dict)


@dataclass
class Context:
    cfg: PipelineConfig
    run_dir: Path
    outputs: dict[str, StageOutput] = field(default_factory=dict)
    fingerprints: dict[str, str] = field(default_factory=dict)

    def resolve_model(self, ref: str | None) -> str:
        if ref is None:
            raise ValueError("this stage needs `model:` (gym-base, an earlier stage or a path)")
        if ref == "gym-base":
            from alignlab.gym.pretrain import BASE_MODEL_DIR
            return str(BASE_MODEL_DIR)
        if ref in self.outputs:
            if self.outputs[ref].model is None:
                raise ValueError(f"stage '{ref}' produces no model; point `model:` at a training stage")
            return self.outputs[ref].model
        if not Path(ref).exists():
            raise FileNotFoundError(f"model '{ref}' is neither an earlier stage nor an existing path")
        return ref

    def resolve_data(self, ref: str | None) -> str:
        if ref in self.outputs and self.outputs[ref].data is not None:
            return self.outputs[ref].data
        if ref is None or not Path(ref).exists():
            raise FileNotFoundError(f"data '{ref}' is neither an earlier stage with a data output nor an existing file")
        return ref


def _hash_path(path: Path) -> str:
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for p in files:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def fingerprint(stage: StageConfig, ctx: Context) -> str:
    described = asdict(stage)
    if not described["launch"]:          # one process: the fingerprint stages had before launch: existed
        del described["launch"]
    parts: dict = {"stage": described}
    if stage.config:
        parts["config_text"] = Path(stage.config).read_text()
    for ref in (stage.model, stage.data, stage.reference):
        if ref is None:
            continue
        if ref in ctx.fingerprints:
            parts[ref] = ctx.fingerprints[ref]
        elif ref == "gym-base":
            parts[ref] = _hash_path(Path(ctx.resolve_model(ref)))
        elif Path(ref).exists():
            parts[ref] = _hash_path(Path(ref))
    if stage.kind == "report":     # the report reads every earlier stage's output
        parts["upstream"] = dict(ctx.fingerprints)
    if stage.evaluate:       # one suite hashes as its name, as when `suite` was a single name: old runs stay valid
        suites = ctx.cfg.suite
        parts["eval"] = settings_read_by(ctx.cfg.eval, suites) | {"suite": suites[0] if len(suites) == 1 else suites}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def evaluate_model(model_path: str, ctx: Context, out_dir: Path) -> dict:
    """Run the pipeline's suites on a model; writes eval.json and eval.records.jsonl into out_dir (several suites:
    metrics merged, each record tagged with its suite)."""
    from alignlab.config import ModelConfig
    from alignlab.eval.cli import merge_suite_metrics, run_suites
    from alignlab.models import choose_device, load_causal_lm, load_tokenizer

    model = load_causal_lm(ModelConfig(path=model_path)).to(choose_device()).eval()
    results = run_suites(model, load_tokenizer(model_path), ctx.cfg.suite, ctx.cfg.eval)
    if len(results) == 1:
        (result,) = results.values()
        metrics, records = result.metrics, result.records
    else:
        metrics = merge_suite_metrics({name: r.metrics for name, r in results.items()})
        records = [{"suite": name, **record} for name, r in results.items() for record in r.records]
    metrics = metrics | {"settings": asdict(ctx.cfg.eval), "model": model_path}
    (out_dir / "eval.json").write_text(json.dumps(metrics, indent=2))
    with open(out_dir / "eval.records.jsonl", "w") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    return metrics


# ---- stage runners: (stage, ctx, out_dir) -> StageOutput -------------------------------------------------------

def run_eval(stage: StageConfig, ctx: Context, out_dir: Path) -> StageOutput:
    model = ctx.resolve_model(stage.model)
    return StageOutput(model=model, metrics=evaluate_model(model, ctx, out_dir))


def run_gym_demos(stage: StageConfig, ctx: Context, out_dir: Path) -> StageOutput:
    from alignlab.gym.cli import DemosConfig, write_demos
    cfg = load_config(DemosConfig, stage.config, [*stage.overrides, f"out={out_dir / 'demos.jsonl'}"])
    return StageOutput(data=str(write_demos(cfg)))


def _trainer_inputs(stage: StageConfig, ctx: Context, out_dir: Path) -> list[str]:
    """The stage's overrides plus what the pipeline wires in: input model, data file and output directory."""
    return [*stage.overrides, f"model.path={ctx.resolve_model(stage.model)}",
            f"data.train_files=[{ctx.resolve_data(stage.data)}]", f"run.out_dir={out_dir}"]


def run_sft(stage: StageConfig, ctx: Context, out_dir: Path) -> StageOutput:
    from alignlab.train.sft import SFTConfig, train
    cfg = load_config(SFTConfig, stage.config, _trainer_inputs(stage, ctx, out_dir))
    model = launched(stage, "sft", cfg, out_dir) if stage.launch else train(cfg)
    return _evaluated(stage, ctx, out_dir, _loadable(model))


LAUNCH_KEYS = {"num_processes", "config"}
LAUNCHABLE = ("sft", "dpo", "rm", "ppo")


def launched(stage: StageConfig, command: str, cfg: Any, out_dir: Path) -> Path:
    """Run `alignlab COMMAND` on the resolved config in `stage.launch["num_processes"]` processes (torchrun, or
    accelerate launch with `stage.launch["config"]`); returns the trained model's directory."""
    import subprocess

    import yaml

    from alignlab.config import dump_config
    unknown = set(stage.launch) - LAUNCH_KEYS
    n = stage.launch.get("num_processes")
    if unknown or not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ConfigError(f"stage '{stage.name}': launch takes {{num_processes: N (≥ 1), config: ACCELERATE_YAML "
                          f"(optional)}}, got {stage.launch}")
    if stage.kind not in LAUNCHABLE:
        raise ConfigError(f"stage '{stage.name}': launch runs {', '.join(LAUNCHABLE)} stages in several processes; "
                          f"a {stage.kind} stage runs in one (remove launch:)")
    config_path = out_dir / "launch_config.yaml"
    config_path.write_text(yaml.safe_dump(dump_config(cfg), sort_keys=False))
    if stage.launch.get("config"):
        launcher = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(stage.launch["config"]),
                    "--num_processes", str(n), "-m"]
    else:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}", "-m"]
    command_line = [*launcher, "alignlab.cli", command, str(config_path)]
    log.info("stage %-10s launched in %d processes: %s", stage.name, n, " ".join(command_line))
    done = subprocess.run(command_line)
    if done.returncode:
        raise RuntimeError(f"stage '{stage.name}': the {n}-process run exited with status {done.returncode} "
                           f"(its output is above; command: {' '.join(command_line)})")
    return Path(cfg.run.out_dir) / "model"


def run_gym_preferences(stage: StageConfig, ctx: Context, out_dir: Path) -> StageOutput:
    from alignlab.gym.preferences import PreferencesConfig, quality_path, write_preferences
    cfg = load_config(PreferencesConfig, stage.config, [*stage.overrides, f"model={ctx.resolve_model(stage.model)}",
                                                        f"out={out_dir / 'preferences.jsonl'}"])
    out = write_preferences(cfg)
    quality = json.loads(quality_path(out).read_text())       # the chosen answers under the gold rules
    return StageOutput(data=str(out), metrics={k: v for k, v in quality.items() if k != "per_family"})


def run_dpo(stage: StageConfig, ctx: Context, out_dir: Path) -> StageOutput:
    from alignlab.train.dpo import DPOConfig, train
    cfg = load_config(DPOConfig, stage.config, _trainer_inputs(stage, ctx, out_dir))
    model = launched(stage, "dpo", cfg, out_dir) if stage.launch else train(cfg)
    return _evaluated(stage, ctx, out_dir, _loadable(model))


def run_rm(stage: StageConfig, ctx: Context, out_dir: Path) -> StageOutput:
    from alignlab.train.reward import RMConfig, train
    cfg = load_config(RMConfig, stage.config, _trainer_inputs(stage, ctx, out_dir))
    model = str(launched(stage, "rm", cfg, out_dir) if stage.launch else train(cfg))
    return StageOutput(model=model, metrics=json.loads((out_dir / "rm_metrics.json").read_text()))


def run_ppo(stage: StageConfig, ctx: Context, out_dir: Path) -> StageOutput:
    from alignlab.train.ppo import PPOConfig, train
    prompts = [] if stage.data is None else ["data.source=files", f"data.files=[{ctx.resolve_data(stage.data)}]"]
    cfg = load_config(PPOConfig, stage.config, [*stage.overrides, f"model.path={ctx.resolve_model(stage.model)}",
                                                f"reward_model.path={ctx.resolve_model(stage.reference)}",
                                                *prompts, f"run.out_dir={out_dir}"])
    model = launched(stage, "ppo", cfg, out_dir) if stage.launch else train(cfg)
    return _evaluated(stage, ctx, out_dir, _loadable(model), kl_reference=stage.model)


def run_redteam(stage: StageConfig, ctx: Context, out_dir: Path) -> StageOutput:
    """GCG and a fine-tuning attack on `model:`; its figures also join that stage's row (run_pipeline)."""
    from alignlab.redteam.stage import RedteamConfig, run_redteam as attack
    cfg = load_config(RedteamConfig, stage.config, stage.overrides)
    return StageOutput(metrics=attack(cfg, ctx.resolve_model(stage.model), out_dir) | {"attacked": stage.model})


def run_report(stage: StageConfig, ctx: Context, out_dir: Path) -> StageOutput:
    from alignlab.eval.report import write_report
    path = write_report(ctx.run_dir)
    log.info("report: %s", path)
    return StageOutput(data=str(path))


def _loadable(model_dir: str | Path) -> str:
    """A LoRA run saves its adapter and a merged copy in `merged/`: evaluate and chain the merged one."""
    merged = Path(model_dir) / "merged"
    return str(merged if merged.is_dir() else model_dir)


def _evaluated(stage: StageConfig, ctx: Context, out_dir: Path, model: str,
               kl_reference: str | None = None) -> StageOutput:
    """Evaluate a trained model; with a reference stage (`reference:` or, for trainers, the initial `model:`),
    add `kl_to_<name>`: how far training moved it, in nats per response on the held-out prompts."""
    if not stage.evaluate:
        return StageOutput(model=model)
    metrics = evaluate_model(model, ctx, out_dir)
    ref_name = kl_reference or stage.model
    if ref_name is not None:
        kl = _kl(model, ctx.resolve_model(ref_name), ctx, out_dir / "eval.records.jsonl")
        if kl is not None:
            metrics[f"kl_to_{ref_name}"] = kl
        (out_dir / "eval.json").write_text(json.dumps(metrics, indent=2))
    return StageOutput(model=model, metrics=metrics)


def _kl(policy_path: str, reference_path: str, ctx: Context, records_path: Path) -> float | None:
    """KL on the prompts the first suite just evaluated (its eval.records.jsonl); None for a suite whose records carry
    no prompt."""
    from alignlab.config import ModelConfig
    from alignlab.eval.divergence import kl_to_reference
    from alignlab.models import choose_device, load_causal_lm, load_tokenizer

    records = [json.loads(line) for line in records_path.read_text().splitlines() if line.strip()]
    first = records[0].get("suite") if records else None
    prompts = [r.get("messages", r.get("prompt")) for r in records if r.get("suite") == first]
    if not prompts or any(p is None for p in prompts):
        log.warning("no KL for %s: the %s suite's records carry no prompt", policy_path, first or ctx.cfg.suite[0])
        return None
    device = choose_device()
    policy = load_causal_lm(ModelConfig(path=policy_path)).to(device).eval()
    reference = load_causal_lm(ModelConfig(path=reference_path)).to(device).eval()
    return kl_to_reference(policy, reference, load_tokenizer(policy_path), prompts, num_samples=2,
                           max_new_tokens=ctx.cfg.eval.max_new_tokens, seed=ctx.cfg.eval.seed,
                           batch_size=ctx.cfg.eval.batch_size)["kl"]


RUNNERS: dict[str, Callable[[StageConfig, Context, Path], StageOutput]] = {
    "eval": run_eval,
    "gym_demos": run_gym_demos,
    "gym_preferences": run_gym_preferences,
    "sft": run_sft,
    "dpo": run_dpo,
    "rm": run_rm,
    "ppo": run_ppo,
    "redteam": run_redteam,
    "report": run_report,
}


def check_worlds(cfg: PipelineConfig) -> None:
    """The gym data stages must build the world the gym suite judges in (the bundled base model's): data of another
    world would be judged against the wrong facts without a word."""
    if "gym" not in cfg.suite:
        return
    from alignlab.gym.cli import DemosConfig
    from alignlab.gym.evaluate import WORLD_SEED
    from alignlab.gym.preferences import PreferencesConfig
    kinds = {"gym_demos": DemosConfig, "gym_preferences": PreferencesConfig}
    for stage in cfg.stages:
        if stage.kind in kinds:
            stage_cfg = load_config(kinds[stage.kind], stage.config,
                                    [o for o in stage.overrides if o.startswith("world_seed=")])
            if stage_cfg.world_seed != WORLD_SEED:
                raise ConfigError(f"stage '{stage.name}' builds gym data in world_seed {stage_cfg.world_seed}, but "
                                  f"the gym suite judges in world_seed {WORLD_SEED} (the base model's world); use "
                                  f"world_seed={WORLD_SEED}")


def _load_done(out_dir: Path) -> dict | None:
    marker = out_dir / "stage.json"
    return json.loads(marker.read_text()) if marker.exists() else None


def run_pipeline(cfg: PipelineConfig) -> dict[str, dict]:
    """Run every stage (once, or once per seed of cfg.seeds); returns metrics.json's object."""
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    _setup_logging(run_dir / "pipeline.log")
    names = [s.name for s in cfg.stages]
    if len(set(names)) != len(names):
        raise ConfigError(f"stage names must be unique, got {names}")
    for stage in cfg.stages:
        if stage.kind not in RUNNERS:
            raise ConfigError(f"stage '{stage.name}': kind '{stage.kind}' has no runner "
                              f"(available: {', '.join(RUNNERS)})")
    check_worlds(cfg)
    if not cfg.seeds:
        ctx = Context(cfg, run_dir)
        metrics = _run_stages(cfg.stages, ctx)
        _add_paired(metrics, cfg, {s.name: [run_dir / s.name] for s in cfg.stages})
    else:
        metrics = _run_seeds(cfg, run_dir)
    _add_attacks(metrics, cfg)
    _write_metrics(run_dir, metrics)
    for stage in cfg.stages:          # the report reads the finished metrics.json: it runs last
        if stage.kind == "report":
            run_report(stage, Context(cfg, run_dir), run_dir)
    log.info("metrics per model (headline: temperature %s, %d samples per prompt%s; [95%% interval over items])\n%s",
             cfg.eval.temperature, cfg.eval.num_samples,
             f", mean over seeds {cfg.seeds}" if cfg.seeds else "", format_table(metrics))
    return metrics


DATA_CHECKS = ("warn", "fail", "off")
TRAINING_KINDS = ("sft", "rm", "dpo", "ppo")


class ContaminatedData(RuntimeError):
    """A training stage's data overlap an eval set and the pipeline has `data_check: fail`."""


def check_training_data(stage: StageConfig, ctx: Context, out_dir: Path) -> dict | None:
    """The decontamination check of a training stage's data file (None when there is nothing to check)."""
    if ctx.cfg.data_check == "off" or stage.kind not in TRAINING_KINDS or stage.data is None:
        return None
    from alignlab.eval.contamination import check_files, summary_lines
    path = ctx.resolve_data(stage.data)
    report = check_files([path], ctx.cfg.eval.data_root(), heldout_only=ctx.cfg.eval.heldout_only)
    (out_dir / "data_check.json").write_text(json.dumps(report.to_json(), indent=1, ensure_ascii=False))
    lines = summary_lines(report, show=5)
    if report.overlaps and ctx.cfg.data_check == "fail":
        raise ContaminatedData(f"stage {stage.name}: its data overlap the eval sets (data_check: fail):\n"
                               + "\n".join(lines) + f"\nfull report: {out_dir / 'data_check.json'}")
    (log.warning if report.overlaps or report.skipped else log.info)("stage %-10s data check: %s", stage.name,
                                                                    "; ".join(lines))
    return {"records": report.records, "overlapping_records": report.contaminated_records,
            "skipped_sources": sorted(report.skipped), "report": str(out_dir / "data_check.json")}


def _run_stages(stages: list[StageConfig], ctx: Context) -> dict[str, dict]:
    """Run (or skip, when unchanged) each non-report stage in order; returns {stage: its metrics}."""
    metrics: dict[str, dict] = {}
    for stage in stages:
        if stage.kind == "report":
            continue
        out_dir = ctx.run_dir / stage.name
        fp = fingerprint(stage, ctx)
        done = _load_done(out_dir)
        if done and done["fingerprint"] == fp and not ctx.cfg.force:
            log.info("stage %-10s unchanged since its last run (fingerprint %s): skipped", stage.name, fp)
            output = StageOutput(**done["output"])
        else:
            log.info("stage %-10s (%s) starting", stage.name, stage.kind)
            t0 = time.time()
            if out_dir.exists():     # a changed stage starts clean: its trainer refuses to overwrite an old run
                shutil.rmtree(out_dir)
            out_dir.mkdir(parents=True)
            checked = check_training_data(stage, ctx, out_dir)
            output = RUNNERS[stage.kind](stage, ctx, out_dir)
            if checked is not None:
                output.extra["data_check"] = checked
            output.extra["seconds"] = round(time.time() - t0, 1)
            (out_dir / "stage.json").write_text(json.dumps({"fingerprint": fp, "output": asdict(output)}, indent=2))
            log.info("stage %-10s done in %.1fs", stage.name, output.extra["seconds"])
        ctx.outputs[stage.name], ctx.fingerprints[stage.name] = output, fp
        if output.metrics is not None:
            metrics[stage.name] = output.metrics
            _write_metrics(ctx.run_dir, metrics)
    return metrics


# The config key that seeds each randomised kind of stage.
SEED_KEYS = {"gym_demos": "seed", "gym_preferences": "seed", "sft": "run.seed", "dpo": "run.seed",
             "rm": "run.seed", "ppo": "run.seed", "redteam": "seed"}


def _run_seeds(cfg: PipelineConfig, run_dir: Path) -> dict[str, dict]:
    """Evaluation-only stages once in RUN_DIR, the others once per seed in RUN_DIR/seed-N; figures over seeds."""
    shared = [s for s in cfg.stages if s.kind == "eval"]
    seeded = [s for s in cfg.stages if s.kind not in ("eval", "report")]
    shared_ctx = Context(cfg, run_dir)
    metrics = _run_stages(shared, shared_ctx)
    per_seed: dict[str, list[dict]] = {}
    dirs: dict[str, list[Path]] = {s.name: [run_dir / s.name] for s in shared}
    for seed in cfg.seeds:
        log.info("seed %d", seed)
        seed_dir = run_dir / f"seed-{seed}"
        stages = [replace(s, overrides=[*s.overrides, f"{SEED_KEYS[s.kind]}={seed}"]) for s in seeded]
        ctx = Context(replace(cfg, run_dir=str(seed_dir)), seed_dir, dict(shared_ctx.outputs),
                      dict(shared_ctx.fingerprints))
        for name, m in _run_stages(stages, ctx).items():
            per_seed.setdefault(name, []).append(m)
            dirs.setdefault(name, []).append(seed_dir / name)
        _write_metrics(seed_dir, {name: ms[-1] for name, ms in per_seed.items()})
    for name, runs in per_seed.items():
        metrics[name] = _over_seeds(runs, dirs[name], cfg)
    _add_paired(metrics, cfg, dirs)
    return metrics


def _over_seeds(runs: list[dict], dirs: list[Path], cfg: PipelineConfig) -> dict:
    """A stage's figures over seeds: every number's per-seed values (`<key>_seeds`) and mean; for the gym suite the
    rates are recomputed on the seeds' samples pooled per item, with their 95% intervals over items."""
    out: dict = {"seeds": list(cfg.seeds), "seed_dirs": [str(d) for d in dirs]}
    numbers = sorted({k for r in runs for k, v in r.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
                      and not k.endswith("_items")})
    for key in numbers:
        values = [r.get(key) for r in runs]
        out[f"{key}_seeds"] = values
        known = [v for v in values if v is not None]
        out[key] = sum(known) / len(known) if known else None
    if "attacked" in runs[0]:                       # a redteam stage: which stage it attacked
        out["attacked"] = runs[0]["attacked"]
    if "settings" in runs[0]:
        out["settings"] = runs[0]["settings"]
        for key in ("judge", "model"):
            if key in runs[0]:
                out[key] = runs[0][key]
    if "gym" in cfg.suite and all((d / "eval.records.jsonl").exists() for d in dirs):
        from alignlab.gym.metrics import gym_metrics
        out |= gym_metrics([rec for d in dirs for rec in read_records(d)])
    return out


def read_records(stage_dir: Path) -> list[dict]:
    """The gym suite's records of a stage (with several suites, the records tagged "gym")."""
    records = [json.loads(line) for line in (stage_dir / "eval.records.jsonl").read_text().splitlines() if line]
    return [r for r in records if r.get("suite", "gym") == "gym"]


def _add_paired(metrics: dict[str, dict], cfg: PipelineConfig, dirs: dict[str, list[Path]]) -> None:
    """For the gym suite: each trained model against the model it started from (an earlier stage, or the base
    model's eval stage), on the same items, with paired 95% intervals (`paired_vs_<stage>`)."""
    if "gym" not in cfg.suite:
        return
    from alignlab.gym.metrics import paired_rates
    evaluated = {s.name: s for s in cfg.stages if s.name in metrics and "settings" in metrics[s.name]}
    base_stage = {s.model: s.name for s in cfg.stages if s.kind == "eval"}
    for stage in evaluated.values():
        if stage.kind == "eval" or stage.model is None:
            continue
        ref = stage.model if stage.model in evaluated else base_stage.get(stage.model)
        if ref is None or not all((d / "eval.records.jsonl").exists() for d in dirs[stage.name] + dirs[ref]):
            continue
        mine = [rec for d in dirs[stage.name] for rec in read_records(d)]
        theirs = [rec for d in dirs[ref] for rec in read_records(d)]
        metrics[stage.name][f"paired_vs_{ref}"] = paired_rates(mine, theirs)


def _add_attacks(metrics: dict[str, dict], cfg: PipelineConfig) -> None:
    """A redteam stage's figures join the row of the model it attacked (the report's robustness category)."""
    from alignlab.redteam.stage import attack_metrics
    for stage in cfg.stages:
        if stage.kind == "redteam" and stage.name in metrics and stage.model in metrics:
            metrics[stage.model] |= attack_metrics(metrics[stage.name])


def _write_metrics(run_dir: Path, metrics: dict[str, dict]) -> None:
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))


TABLE_KEYS = ["gold_reward", "harmful_refusal_rate", "overrefusal_rate", "lookalike_helpfulness", "privacy_leak_rate",
              "leak_rate_other_families", "unsafe_rate", "hallucination_rate",
              "toxicity_rate", "fact_accuracy", "math_accuracy", "position_adherence", "stereotype_skew", "en_fr_gap",
              "jailbreak_refusal_rate", "degenerate_rate", "mean_response_words"]


def format_table(metrics: dict[str, dict]) -> str:
    """Rows: metrics; columns: stages. A value with an interval shows it: `0.954 [0.931,0.972]`."""
    stages = [s for s in metrics if "attacked" not in metrics[s]]     # a redteam stage's figures are in its target's
    keys = [k for k in TABLE_KEYS if any(k in metrics[s] for s in stages)]
    keys += sorted({k for s in stages for k, v in metrics[s].items() if isinstance(v, (int, float))
                    and not isinstance(v, bool) and not k.endswith("_items")} - set(keys))
    width = max(len(k) for k in keys) if keys else 10
    cell = 21 if any(f"{k}_ci" in metrics[s] for s in stages for k in keys) else 9
    lines = [f"{'metric':<{width}}  " + "  ".join(f"{s:>{cell}}" for s in stages)]
    for k in keys:
        cells = []
        for s in stages:
            v, ci = metrics[s].get(k), metrics[s].get(f"{k}_ci")
            text = "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"
            if ci is not None and text != "-":
                text += f" [{ci[0]:.3f},{ci[1]:.3f}]"
            cells.append(f"{text:>{cell}}")
        lines.append(f"{k:<{width}}  " + "  ".join(cells))
    return "\n".join(lines)


def _setup_logging(path: Path) -> None:
    root = logging.getLogger("alignlab")
    root.setLevel(logging.INFO)
    for handler in list(root.handlers):
        root.removeHandler(handler)
    fmt = logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S")
    for handler in (logging.FileHandler(path), logging.StreamHandler(sys.stdout)):
        handler.setFormatter(fmt)
        root.addHandler(handler)


def run_and_say_where(cfg: PipelineConfig) -> str:
    run_pipeline(cfg)
    return f"metrics: {Path(cfg.run_dir) / 'metrics.json'}"


def main(argv: list[str]) -> int:
    usage = "usage: alignlab pipeline CONFIG.yaml [--seeds 0,1,2] [key=value ...]\n\n" + (__doc__ or "")
    argv = list(argv)
    if "--seeds" in argv:                  # --seeds 0,1,2 is the override seeds=[0,1,2]
        i = argv.index("--seeds")
        if i + 1 >= len(argv):
            print("alignlab pipeline: --seeds needs a comma-separated list, e.g. --seeds 0,1,2", file=sys.stderr)
            return 2
        argv[i:i + 2] = [f"seeds=[{argv[i + 1]}]"]
    return run_cli("pipeline", PipelineConfig, run_and_say_where, usage, argv)

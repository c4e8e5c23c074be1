"""The pipeline on the tiny model: stages in order, metrics.json per evaluated stage, unchanged stages skipped."""

import json

import pytest
import yaml

from alignlab.config import load_config
from alignlab.pipeline import PipelineConfig, format_table, run_pipeline


@pytest.fixture
def pipeline_yaml(tiny_lm, tmp_path):
    sft = tmp_path / "sft.yaml"
    sft.write_text(yaml.safe_dump({
        "data": {"max_length": 64},
        "optim": {"lr": 1e-2, "batch_size": 4, "max_steps": 3, "warmup_steps": 0},
        "run": {"tensorboard": False, "progress": False, "device": "cpu"}}))
    cfg = {"run_dir": str(tmp_path / "run"),
           "eval": {"num_samples": 2, "max_new_tokens": 6, "batch_size": 16, "limit": 12},
           "stages": [{"name": "base", "kind": "eval", "model": str(tiny_lm)},
                      {"name": "demos", "kind": "gym_demos", "overrides": ["n=12"], "evaluate": False},
                      {"name": "sft", "kind": "sft", "config": str(sft), "model": str(tiny_lm), "data": "demos"}]}
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_pipeline_runs_stages_and_skips_unchanged_ones(pipeline_yaml, tmp_path):
    cfg = load_config(PipelineConfig, pipeline_yaml, [])
    metrics = run_pipeline(cfg)
    assert set(metrics) == {"base", "sft"}
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["sft"]["prompts"] == 12 and "greedy" in saved["sft"] and "kl_to_" + cfg.stages[2].model in saved["sft"]
    for key in ("harmful_refusal_rate", "overrefusal_rate", "privacy_leak_rate", "gold_reward", "en_fr_gap"):
        assert key in saved["base"] and key in saved["base"]["greedy"]
    log = (tmp_path / "run" / "pipeline.log").read_text()
    assert "skipped" not in log

    run_pipeline(load_config(PipelineConfig, pipeline_yaml, []))
    log = (tmp_path / "run" / "pipeline.log").read_text()
    assert log.count("skipped") == 3

    # a change to one stage re-runs it and what depends on it, not what came before
    cfg = load_config(PipelineConfig, pipeline_yaml, [])
    cfg.stages[1].overrides = ["n=10"]
    run_pipeline(cfg)
    log = (tmp_path / "run" / "pipeline.log").read_text().split("metrics per model")[-2]
    assert "stage base       unchanged" in log and "stage demos      (gym_demos) starting" in log
    assert "stage sft        (sft) starting" in log


def test_table_shows_every_stage():
    table = format_table({"base": {"gold_reward": 0.1, "harmful_refusal_rate": 0.3},
                          "sft": {"gold_reward": 0.5, "harmful_refusal_rate": float("nan")}})
    assert "gold_reward" in table.splitlines()[1] and "0.500" in table and "-" in table.splitlines()[2]


@pytest.mark.parametrize("data", [None, "prefs"])
def test_ppo_stage_takes_its_prompts_from_a_data_stage(monkeypatch, tmp_path, data):
    """`data:` on a PPO stage = PPO's prompts are those of that stage's preference file (the prompts DPO saw)."""
    from alignlab import pipeline
    from alignlab.pipeline import StageConfig
    from alignlab.train import ppo

    seen = {}
    monkeypatch.setattr(ppo, "train", lambda cfg: seen.setdefault("cfg", cfg) and str(tmp_path))

    class Ctx:
        def resolve_model(self, name):
            return f"/models/{name}"

        def resolve_data(self, name):
            return f"/data/{name}.jsonl"

    stage = StageConfig(name="ppo", kind="ppo", config="configs/ppo/gym.yaml", model="sft", reference="rm",
                        data=data, evaluate=False)
    pipeline.run_ppo(stage, Ctx(), tmp_path)
    cfg = seen["cfg"]
    assert cfg.model.path == "/models/sft" and cfg.reward_model.path == "/models/rm"
    if data is None:
        assert cfg.data.source == "gym"
    else:
        assert cfg.data.source == "files" and cfg.data.files == ["/data/prefs.jsonl"]


def test_seeds_run_the_randomised_stages_once_each_and_report_over_seeds(pipeline_yaml, tmp_path):
    from alignlab.pipeline import main

    assert main([str(pipeline_yaml), "--seeds", "0,1"]) == 0
    run = tmp_path / "run"
    assert (run / "base" / "eval.json").exists() and not (run / "seed-0" / "base").exists()   # eval-only: once
    for seed in (0, 1):
        stage = json.loads((run / f"seed-{seed}" / "sft" / "stage.json").read_text())
        assert (run / f"seed-{seed}" / "sft" / "eval.records.jsonl").exists() and stage["output"]["model"]
    config = (run / "seed-1" / "sft" / "config.yaml").read_text()
    assert "seed: 1" in config                                                   # the trainer got its seed
    demos = [(run / f"seed-{s}" / "demos" / "demos.jsonl").read_text() for s in (0, 1)]
    assert demos[0] != demos[1]                                                   # and so did the data
    sft = json.loads((run / "metrics.json").read_text())["sft"]
    assert sft["seeds"] == [0, 1] and len(sft["gold_reward_seeds"]) == 2
    per_seed = [json.loads((run / f"seed-{s}" / "sft" / "eval.json").read_text())["gold_reward"] for s in (0, 1)]
    assert sft["gold_reward"] == pytest.approx(sum(per_seed) / 2)        # pooled samples = the mean of the seeds
    assert sft["gold_reward_ci"][0] <= sft["gold_reward"] <= sft["gold_reward_ci"][1]
    paired = sft["paired_vs_base"]["gold_reward"]                          # the model it started from, same items
    assert paired["items"] == sft["gold_reward_items"]
    assert paired["difference"] == pytest.approx(sft["gold_reward"] - json.loads(
        (run / "metrics.json").read_text())["base"]["gold_reward"])


def test_gym_data_of_another_world_is_refused_before_anything_runs(tmp_path, capsys):
    """A gym data stage built in world 1 would be judged by the gym suite in world 0 (the base model's): refused
    with both seeds named, as one line and exit status 2 from the command."""
    from alignlab.config import ConfigError
    from alignlab.pipeline import StageConfig, main

    stages = [StageConfig("demos", "gym_demos", overrides=["n=3", "world_seed=1"], evaluate=False)]
    with pytest.raises(ConfigError, match="world_seed 1.*world_seed 0"):
        run_pipeline(PipelineConfig(run_dir=str(tmp_path / "run"), stages=stages))
    assert not (tmp_path / "run" / "demos").exists()
    config = tmp_path / "p.yaml"
    config.write_text(yaml.safe_dump({"run_dir": str(tmp_path / "run2"), "stages": [
        {"name": "demos", "kind": "gym_demos", "overrides": ["n=3", "world_seed=1"], "evaluate": False}]}))
    assert main([str(config)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("alignlab pipeline: stage 'demos' builds gym data in world_seed 1")
    assert main([str(config), "no_such_key=1"]) == 2
    assert "unknown key 'no_such_key'" in capsys.readouterr().err


def test_gym_files_carry_their_world(tmp_path):
    from alignlab.gym.cli import DemosConfig, write_demos
    out = write_demos(DemosConfig(out=str(tmp_path / "demos.jsonl"), n=20, world_seed=2))
    seeds = [json.loads(line)["world_seed"] for line in out.read_text().splitlines()]
    assert seeds and set(seeds) == {2}


def test_several_suites_per_pipeline(pipeline_yaml, tmp_path, shared_data):
    """suite: [gym, xstest]: each stage's eval.json holds both suites' metrics (shared keys of the later suite under
    `xstest/`), every record its suite; the gym's paired comparison and KL read only the gym's records; the report
    names both judges."""
    from alignlab.eval.report import write_report
    cfg = load_config(PipelineConfig, pipeline_yaml, ["suite=[xstest, gym]", f"eval.data_dir={shared_data}",
                                                      "eval.judge=strmatch"])
    metrics = run_pipeline(cfg)
    sft = metrics["sft"]
    assert sft["suites"] == ["gym", "xstest"] and set(sft["judge"]) == {"gym", "xstest"}
    assert {"gold_reward", "refusal_unsafe_rate", "overrefusal_safe_rate"} <= set(sft)
    assert "refusal_unsafe_rate" in sft["greedy"] and "gold_reward" in sft["greedy"]
    records = [json.loads(line) for line in (tmp_path / "run" / "sft" / "eval.records.jsonl").read_text().splitlines()]
    assert {r["suite"] for r in records} == {"gym", "xstest"}
    assert sum(r["suite"] == "xstest" for r in records) == 12 * (2 + 1)        # 12 prompts × (2 samples + greedy)
    paired = sft["paired_vs_base"]["gold_reward"]
    assert paired["items"] == sft["gold_reward_items"] == 12                      # gym items only
    assert sft["kl_to_" + cfg.stages[2].model] is not None
    html = write_report(tmp_path / "run").read_text()
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    judge = report["models"][0]["judge"]["name"]
    assert "(gym)" in judge and "(xstest)" in judge and "refusal_unsafe_rate" in html


def test_one_suite_keeps_its_fingerprint_and_leaves_llm_judge_settings_out():
    """A single suite is fingerprinted as its name (runs made when `suite` was one name are not redone), and the LLM
    judge's settings only count for the suites that use one."""
    from alignlab.eval.settings import EvalSettings, settings_read_by
    assert "judge_endpoint" not in settings_read_by(EvalSettings(), ["gym"])
    assert "judge_endpoint" in settings_read_by(EvalSettings(), ["gym", "mt_bench"])
    with pytest.raises(Exception, match="unknown suites"):
        load_config(PipelineConfig, None, ["suite=[gym, nosuch]"])


def test_redteam_stage_joins_the_attacked_models_row(tiny_lm, tmp_path):
    """A redteam stage attacks `model:` (GCG and a fine-tuning attack, tiny budgets); gcg_asr and
    finetune_attack_refusal@N land in that stage's row, and the report draws the durability curve."""
    from alignlab.eval.report import write_report
    cfg = {"run_dir": str(tmp_path / "run"),
           "eval": {"num_samples": 1, "max_new_tokens": 4, "batch_size": 16, "limit": 8, "greedy": False},
           "stages": [{"name": "base", "kind": "eval", "model": str(tiny_lm)},
                      {"name": "redteam", "kind": "redteam", "config": "configs/redteam/gym.yaml", "model": "base",
                       "evaluate": False,
                       "overrides": ["gcg.limit=2", "gcg.steps=2", "gcg.search_width=8", "gcg.topk=4",
                                     "jailbreaks.limit=2", "jailbreaks.templates=1", "jailbreaks.samples=1",
                                     "finetune.doses=[2]", "finetune.samples=1"]}]}
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(cfg))
    metrics = run_pipeline(load_config(PipelineConfig, path, []))
    base = metrics["base"]
    assert base["gcg_asr_items"] == 2 and 0 <= base["gcg_asr"] <= 1
    from alignlab.eval.settings import DEFAULT_DATA_DIR
    if (DEFAULT_DATA_DIR / "jailbreaks").is_dir():
        assert base["jailbreak_asr_direct_items"] == 2
    else:                                      # a clone without ../shared: the stage says what it skipped
        assert "not found" in metrics["redteam"]["jailbreak_skipped"] and "jailbreak_asr" not in base
    assert {"finetune_attack_refusal@0", "finetune_attack_refusal@2"} <= set(base)
    assert base["finetune_attack_refusal@0_items"] > 0 and metrics["redteam"]["attacked"] == "base"
    report = write_report(tmp_path / "run")
    data = json.loads((tmp_path / "run" / "report.json").read_text())
    assert [p["dose"] for p in data["durability"]["base"]["points"]] == [0, 2]
    robustness = next(g for g in data["categories"] if g["name"] == "robustness")
    assert {"gcg_asr", "finetune_attack_refusal@2"} <= {r["key"] for r in robustness["rows"]}
    assert "Durability under a fine-tuning attack" in report.read_text()

"""Efficacy against the peer: alignlab's DPO, reward model and RL against TRL's on the same task, judged by the gym.

Same SFT model, same preference file, same budget, same judge, side by side, over seeds:
- DPO: `alignlab dpo configs/dpo/gym.yaml` vs TRL's DPOTrainer with TRL's defaults (lr 1e-6, batch 8, linear
  decay, sigmoid loss) and with alignlab's recipe expressed in TRL's options (lr 2e-4, batch 32, cosine, 5 warmup
  steps, β 0.2, sigmoid + 2 × chosen NLL = RPO α 2). Budget: one epoch over the same pairs, max length 128, fp32.
- Reward model: `alignlab rm configs/rm/gym.yaml` vs TRL's RewardTrainer (its defaults; and alignlab's lr, batch and
  epochs): agreement with the gold judge on the same fresh pairs of SFT samples (`alignlab.train.reward.gold_pool`).
- RL: alignlab's GRPO and RLOO (`configs/ppo/{grpo,rloo}.yaml`) vs TRL's GRPOTrainer and RLOOTrainer with alignlab's
  recipe in TRL's options (lr 1e-4, KL β 0.05, 2 updates per batch, clip 0.2, 48 new tokens, temperature 1), the
  reward being the gym's gold judge (a function of prompts and completions, as TRL's `reward_funcs` take) or
  alignlab's reward model wrapped the same way; alignlab's PPO (configs/ppo/gym.yaml: GAE, critic from the reward
  model) on both rewards too — TRL 1.x no longer ships a PPOTrainer. Budget: the same prompts × samples
  (`--rl-iterations` × 16 × 4).
Every model is evaluated by the pipeline's gym suite (its settings from RUN/metrics.json, or --samples): held-out
gold reward, its gain over the SFT model with a paired 95% interval over items, KL to the SFT model, wall time.

Run (TRL is the optional `bench` extra: pip install -e .[bench]):
  .venv/bin/python benchmarks/efficacy_vs_trl.py --run runs/gym-demo --seeds 0,1,2 --out docs/efficacy_vs_trl.md
  .venv/bin/python benchmarks/efficacy_vs_trl.py --run runs/gym-demo --parts dpo --seeds 0 --pairs 2000   (smaller)
Each arm runs in a fresh subprocess (`--arm NAME`), so wall times and memory are the arm's own. A finished arm keeps
its result in WORK/seed-N/ARM/result.json and is not re-run, so an interrupted run resumes; use a fresh --work after
rebuilding RUN.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ALIGNLAB = [sys.executable, "-m", "alignlab.cli"]

DPO_ARMS = ["sft", "alignlab_dpo", "trl_dpo_defaults", "trl_dpo_recipe"]
RM_ARMS = ["alignlab_rm", "trl_rm_defaults", "trl_rm_recipe"]
RL_ARMS = ["sft", "alignlab_grpo_gold", "trl_grpo_gold", "alignlab_rloo_gold", "trl_rloo_gold", "alignlab_grpo_rm",
           "trl_grpo_rm", "alignlab_ppo_gold", "alignlab_ppo_rm"]   # TRL 1.x has no PPOTrainer left to compare with
PARTS = {"dpo": DPO_ARMS, "rm": RM_ARMS, "rl": RL_ARMS}
RL_PROMPTS, RL_SAMPLES = 16, 4      # per iteration, as configs/ppo/{grpo,rloo}.yaml


# ---- inputs -------------------------------------------------------------------------------------------------------

def run_inputs(run: Path, seed: int = 0) -> dict:
    """The SFT model, preference file and RM of a pipeline run: those of seed SEED's directory in a multi-seed run
    (so each seed of the benchmark replicates the whole chain), the run itself otherwise."""
    root = run / f"seed-{seed}" if (run / f"seed-{seed}").is_dir() else run
    metrics = json.loads((run / "metrics.json").read_text())
    return {"sft": root / "sft" / "model", "sft_records": root / "sft" / "eval.records.jsonl",
            "preferences": root / "preferences" / "preferences.jsonl", "rm": root / "rm" / "model",
            "eval": metrics["sft"]["settings"]}


def subsample(pairs_file: Path, n: int | None, seed: int, out: Path) -> Path:
    """The first n pairs after a seeded shuffle (the same file for every arm of a seed); all when n is None."""
    lines = pairs_file.read_text().splitlines()
    random.Random(seed).shuffle(lines)
    out.write_text("\n".join(lines[:n] if n else lines) + "\n")
    return out


def gym_prompts(preferences: Path) -> list[dict]:
    """The distinct prompts of a gym preference file, with the judge's facts (as alignlab's PPO reads them)."""
    seen = {}
    for line in preferences.read_text().splitlines():
        r = json.loads(line)
        seen.setdefault(r["request_id"], {"prompt": r["prompt"], "request_id": r["request_id"],
                                          "family": r["family"], "lang": r["lang"], "gym_meta": r["gym_meta"]})
    return list(seen.values())


# ---- arms (each runs in its own process) ----------------------------------------------------------------------------

def arm_alignlab(kind: str, config: str, inputs: dict, data: Path, seed: int, out: Path, extra: list[str]) -> Path:
    wired = [f"model.path={inputs['sft']}", f"run.out_dir={out}", f"run.seed={seed}", "run.tensorboard=false"]
    if kind in ("dpo", "rm"):
        wired.append(f"data.train_files=[{data}]")
    else:
        wired += ["data.source=preferences", f"data.files=[{inputs['preferences']}]",
                  f"reward_model.path={inputs['rm']}"]
    subprocess.run([*ALIGNLAB, kind, config, *wired, *extra], check=True, cwd=REPO)
    return out / "model"


def _pairs_dataset(path: Path):
    """The preference file in TRL's conversational form: prompt messages, chosen/rejected assistant turns."""
    from datasets import Dataset
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return Dataset.from_list([{"prompt": r["prompt"], "chosen": [{"role": "assistant", "content": r["chosen"]}],
                               "rejected": [{"role": "assistant", "content": r["rejected"]}]} for r in rows])


def _trl_common(out: Path, seed: int) -> dict:
    return dict(output_dir=str(out), bf16=False, use_cpu=True, save_strategy="no", report_to="none",
                logging_steps=10_000, disable_tqdm=False, dataloader_num_workers=0, seed=seed,
                model_init_kwargs={"dtype": "float32"})


def arm_trl_dpo(inputs: dict, data: Path, seed: int, out: Path, recipe: bool) -> Path:
    from transformers import AutoTokenizer
    from trl import DPOConfig, DPOTrainer
    # alignlab's recipe (configs/dpo/gym.yaml): β 0.2, + 2 × the chosen answer's NLL (RPO α 2; TRL's "sft" term)
    options = dict(learning_rate=2e-4, per_device_train_batch_size=32, lr_scheduler_type="cosine", warmup_steps=5,
                   beta=0.2, loss_type=["sigmoid", "sft"], loss_weights=[1.0, 2.0]) if recipe else {}
    args = DPOConfig(**_trl_common(out, seed), num_train_epochs=1, max_length=128, **options)
    tokenizer = AutoTokenizer.from_pretrained(inputs["sft"])
    trainer = DPOTrainer(str(inputs["sft"]), args=args, processing_class=tokenizer,
                         train_dataset=_pairs_dataset(data))
    trainer.train()
    trainer.save_model(str(out / "model"))
    tokenizer.save_pretrained(out / "model")
    return out / "model"


def arm_trl_rm(inputs: dict, data: Path, seed: int, out: Path, recipe: bool) -> dict:
    import torch
    from transformers import AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    from alignlab.config import load_config
    from alignlab.train.reward import RMConfig, agreement, gold_pool, reference_rewards
    from alignlab.train.run import setup_run
    options = dict(learning_rate=3e-4, per_device_train_batch_size=32, num_train_epochs=2,
                   lr_scheduler_type="cosine", warmup_steps=5) if recipe else dict(num_train_epochs=1)
    args = RewardConfig(**_trl_common(out, seed), max_length=128, **options)
    tokenizer = AutoTokenizer.from_pretrained(inputs["sft"])
    trainer = RewardTrainer(str(inputs["sft"]), args=args, processing_class=tokenizer,
                            train_dataset=_pairs_dataset(data))
    trainer.train()
    model = trainer.model.eval()
    cfg = load_config(RMConfig, REPO / "configs/rm/gym.yaml", [f"model.path={inputs['sft']}",
                                                              f"run.out_dir={out / 'gold'}"])
    records, samples = gold_pool(cfg, setup_run(cfg.run, cfg))

    def score(messages, response):
        text = tokenizer.apply_chat_template(messages + [{"role": "assistant", "content": response}],
                                             tokenize=False)
        ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            return model(**ids).logits[0, 0].item()
    scores = [[score(r.prompt, t) for t in texts] for r, texts in zip(records, samples)]
    agree, total = agreement(reference_rewards(cfg, records, samples), scores)
    return {"rm_gold_agreement": agree / max(total, 1), "gold_pairs": total}


def gold_reward_fn():
    """The gym's gold judge as a TRL reward function: (prompts, completions, **dataset columns) -> rewards, on the
    gold − ½ (alignlab's `reward: gold` arms use 3·(gold − ½), `reward_scale=3 reward_shift=0.5`)."""
    from alignlab.gym.evaluate import WORLD_SEED
    from alignlab.gym.judge import judge
    from alignlab.gym.world import Request, build_world
    world = build_world(WORLD_SEED)

    def gold(prompts, completions, family, lang, gym_meta, **_):
        out = []
        for prompt, completion, fam, lg, meta in zip(prompts, completions, family, lang, gym_meta):
            text = completion[-1]["content"] if isinstance(completion, list) else completion
            out.append(judge(world, Request("x", fam, lg, prompt, meta), text).reward - 0.5)
        return out
    return gold


def rm_reward_fn(rm_path: Path):
    """alignlab's reward model (normalised scores) as a TRL reward function."""
    from alignlab.reward_model import load_reward_model
    rm = load_reward_model(str(rm_path))

    def reward(prompts, completions, **_):
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        return rm.score(list(prompts), texts).tolist()
    return reward


def arm_trl_rl(inputs: dict, seed: int, out: Path, algo: str, reward: str, iterations: int) -> Path:
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer
    rows = gym_prompts(inputs["preferences"])
    random.Random(seed).shuffle(rows)
    rows = rows[:iterations * RL_PROMPTS]
    dataset = Dataset.from_list([{"prompt": r["prompt"], "family": r["family"], "lang": r["lang"],
                                  "gym_meta": r["gym_meta"]} for r in rows])
    Config, Trainer = (GRPOConfig, GRPOTrainer) if algo == "grpo" else (RLOOConfig, RLOOTrainer)
    # The same budget as alignlab's loop: each generation batch is 16 prompts × 4 samples (64 rollouts), used for 2
    # epochs of 2 minibatches of 32 — 4 optimizer steps per batch, `iterations` batches. TRL counts optimizer steps
    # and regenerates every steps_per_generation × num_iterations of them.
    args = Config(**_trl_common(out, seed), learning_rate=1e-4, lr_scheduler_type="constant", beta=0.05,
                  num_generations=RL_SAMPLES, per_device_train_batch_size=RL_PROMPTS * RL_SAMPLES // 2,
                  steps_per_generation=2, max_completion_length=48, num_iterations=2, epsilon=0.2, temperature=1.0,
                  max_steps=iterations * 4, max_grad_norm=1.0)
    fn = gold_reward_fn() if reward == "gold" else rm_reward_fn(inputs["rm"])
    tokenizer = AutoTokenizer.from_pretrained(inputs["sft"])
    trainer = Trainer(model=str(inputs["sft"]), reward_funcs=[fn], args=args, train_dataset=dataset,
                      processing_class=tokenizer)
    trainer.train()
    trainer.save_model(str(out / "model"))
    tokenizer.save_pretrained(out / "model")
    return out / "model"


def run_arm(arm: str, inputs: dict, data: Path, seed: int, out: Path, iterations: int) -> dict:
    """Train one arm; returns what it measured itself (RM agreement) and its model directory."""
    if arm == "sft":                                  # the reference every gain is measured from: nothing to train
        return {"model": str(inputs["sft"])}
    if arm == "alignlab_dpo":
        return {"model": str(arm_alignlab("dpo", "configs/dpo/gym.yaml", inputs, data, seed, out, []))}
    if arm.startswith("trl_dpo"):
        return {"model": str(arm_trl_dpo(inputs, data, seed, out, arm.endswith("recipe")))}
    if arm == "alignlab_rm":
        arm_alignlab("rm", "configs/rm/gym.yaml", inputs, data, seed, out, [])
        return {"rm_gold_agreement": json.loads((out / "rm_metrics.json").read_text())["rm_gold_agreement"]}
    if arm.startswith("trl_rm"):
        return arm_trl_rm(inputs, data, seed, out, arm.endswith("recipe"))
    _, algo, reward = arm.split("_")
    if arm.startswith("alignlab"):
        # reward=gold on a normalised RM's scale: 3·(gold − ½), as every alignlab gold run so far
        scoring = ["reward=gold", "reward_scale=3", "reward_shift=0.5"] if reward == "gold" else ["reward=rm"]
        extra = [f"iterations={iterations}", *scoring,
                 f"prompts_per_iteration={RL_PROMPTS}", f"samples_per_prompt={RL_SAMPLES}"]
        config = "configs/ppo/gym.yaml" if algo == "ppo" else f"configs/ppo/{algo}.yaml"  # PPO: GAE, RM critic
        return {"model": str(arm_alignlab("ppo", config, inputs, data, seed, out, extra))}
    return {"model": str(arm_trl_rl(inputs, seed, out, algo, reward, iterations))}


# ---- evaluation and the table -------------------------------------------------------------------------------------

def evaluate(model: str, inputs: dict, samples: int | None, out: Path) -> dict:
    """The gym suite on a trained model, its paired gain over the SFT model on the same items, and KL to SFT."""
    from dataclasses import replace

    from alignlab.config import ModelConfig
    from alignlab.eval.divergence import kl_to_reference
    from alignlab.eval.settings import EvalSettings
    from alignlab.gym.evaluate import eval_requests, run_suite
    from alignlab.gym.metrics import paired_rates
    from alignlab.models import load_causal_lm, load_tokenizer
    settings = EvalSettings(**inputs["eval"])
    if samples:
        settings = replace(settings, num_samples=samples)
    policy = load_causal_lm(ModelConfig(path=model)).eval()
    tokenizer = load_tokenizer(model)
    result = run_suite(policy, tokenizer, replace(settings, greedy=False))
    (out / "eval.records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in result.records))
    sft_records = ([json.loads(line) for line in inputs["sft_records"].read_text().splitlines()]
                   if inputs["sft_records"].exists() else result.records)      # the SFT arm is its own reference
    gain = paired_rates(result.records, sft_records, ["gold_reward"])["gold_reward"]
    reference = load_causal_lm(ModelConfig(path=str(inputs["sft"]))).eval()
    prompts = [r.messages for r in eval_requests()]
    kl = 0.0 if Path(model) == Path(inputs["sft"]) else kl_to_reference(
        policy, reference, tokenizer, prompts, num_samples=2, max_new_tokens=settings.max_new_tokens,
        seed=settings.seed, batch_size=settings.batch_size)["kl"]
    return {"gold_reward": result.metrics["gold_reward"], "gain": gain["difference"], "gain_ci": gain["ci"],
            "kl_to_sft": kl, "harmful_refusal_rate": result.metrics["harmful_refusal_rate"],
            "overrefusal_rate": result.metrics["overrefusal_rate"],
            "lookalike_helpfulness": result.metrics["lookalike_helpfulness"]}


def child(args) -> None:
    """`--arm`: train one arm, evaluate its model, print one JSON line."""
    inputs = run_inputs(args.run, args.seed)
    inputs["sft"], inputs["rm"] = Path(args.sft or inputs["sft"]), Path(inputs["rm"])
    # gains are paired with the SFT model evaluated here, by the same judge and settings (not the run's SFT records)
    inputs["sft_records"] = args.work.parent / "sft" / "eval.records.jsonl"
    args.work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    result = run_arm(args.arm, inputs, args.data, args.seed, args.work / "train", args.rl_iterations)
    result["train_seconds"] = round(time.time() - t0, 1)
    if "model" in result:
        result |= evaluate(result["model"], inputs, args.samples, args.work)
    print("RESULT " + json.dumps(result))


def summarise(results: dict[str, list[dict]], key: str) -> str:
    values = [r[key] for r in results if key in r]
    if not values:
        return "–"
    mean, f = statistics.fmean(values), ("{:.0f}" if key == "train_seconds" else "{:.3f}").format
    return f(mean) if len(values) == 1 else f"{f(mean)} [{f(min(values))}, {f(max(values))}]"


def table(results: dict[str, list[dict]], part: str) -> str:
    if part == "rm":
        head = "| arm | gold agreement | train s |\n|---|---:|---:|\n"
        return head + "".join(f"| {arm} | {summarise(rs, 'rm_gold_agreement')} | {summarise(rs, 'train_seconds')} |\n"
                              for arm, rs in results.items())
    head = ("| arm | held-out gold reward | gain over SFT (paired 95% CI, each seed) | KL to SFT | harmful refusal | "
            "over-refusal | lookalike help | train s |\n|---|---:|---|---:|---:|---:|---:|---:|\n")
    rows = []
    for arm, rs in results.items():
        gains = "; ".join(f"{r['gain']:+.3f} [{r['gain_ci'][0]:+.3f}, {r['gain_ci'][1]:+.3f}]" for r in rs)
        rows.append(f"| {arm} | {summarise(rs, 'gold_reward')} | {gains} | {summarise(rs, 'kl_to_sft')} | "
                    f"{summarise(rs, 'harmful_refusal_rate')} | {summarise(rs, 'overrefusal_rate')} | "
                    f"{summarise(rs, 'lookalike_helpfulness')} | {summarise(rs, 'train_seconds')} |")
    return head + "\n".join(rows) + "\n"


def machine() -> str:
    import platform
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    return platform.processor() or platform.machine()


def torch_version() -> str:
    import torch
    return torch.__version__


def trl_version() -> str:
    try:
        import trl
    except ImportError:                     # the page can be rewritten from saved results without the bench extra
        return "not installed"
    return trl.__version__


PEERS = {"alignlab_dpo": ["trl_dpo_defaults", "trl_dpo_recipe"], "alignlab_rm": ["trl_rm_defaults", "trl_rm_recipe"],
         "alignlab_grpo_gold": ["trl_grpo_gold"], "alignlab_rloo_gold": ["trl_rloo_gold"],
         "alignlab_grpo_rm": ["trl_grpo_rm"], "alignlab_ppo_gold": ["trl_grpo_gold", "trl_rloo_gold"],
         "alignlab_ppo_rm": ["trl_grpo_rm"]}


def comparisons(results: dict[str, list[dict]], part: str) -> str:
    """alignlab's arm minus each peer arm, seed by seed (same SFT model, same pairs, same prompts per seed)."""
    key = "rm_gold_agreement" if part == "rm" else "gain"
    lines = []
    for ours, peers in PEERS.items():
        for peer in peers:
            if not results.get(ours) or not results.get(peer):
                continue
            diffs = [a[key] - b[key] for a, b in zip(results[ours], results[peer])]
            lines.append(f"- {ours} − {peer} ({'gold agreement' if part == 'rm' else 'gold gain'}): "
                         f"mean {statistics.fmean(diffs):+.3f}; per seed " + ", ".join(f"{d:+.3f}" for d in diffs))
    return "\n".join(lines) + ("\n" if lines else "")


def write_tables(out: Path, text: str) -> None:
    """Write the tables into OUT between its `<!-- tables -->` markers (keeping the prose around them), or as OUT."""
    start, end = "<!-- tables -->", "<!-- /tables -->"
    old = out.read_text() if out.exists() else ""
    if start in old and end in old:
        text = old[:old.index(start) + len(start)] + "\n" + text + old[old.index(end):]
    out.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="a gym pipeline run (sft, preferences, rm stages)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--parts", default="dpo,rm,rl", help="comma-separated: dpo, rm, rl")
    parser.add_argument("--pairs", type=int, default=None, help="train DPO/RM on this many pairs (default: all)")
    parser.add_argument("--samples", type=int, default=None, help="eval samples per prompt (default: the run's)")
    parser.add_argument("--rl-iterations", type=int, default=12,
                        help="RL rollout batches of 16 prompts × 4 samples (default 12, as configs/ppo/grpo.yaml)")
    parser.add_argument("--work", type=Path, default=Path("runs/efficacy_vs_trl"))
    parser.add_argument("--out", type=Path, default=None,
                        help="write the tables here (markdown; between its <!-- tables --> markers if it has them)")
    parser.add_argument("--arm", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--sft", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.arm:
        return child(args)
    seeds = [int(s) for s in args.seeds.split(",")]
    parts = args.parts.split(",")
    results = {part: {arm: [] for arm in PARTS[part]} for part in parts}
    for seed in seeds:                 # seed by seed, every part, the tables rewritten after each seed
        work = args.work / f"seed-{seed}"
        work.mkdir(parents=True, exist_ok=True)
        data = subsample(run_inputs(args.run, seed)["preferences"], args.pairs, seed, work / "pairs.jsonl")
        for part in parts:
            for arm in PARTS[part]:
                results[part][arm].append(run_one(args, arm, seed, work, data, part))
        report(args, results, done_seeds=seeds[:seeds.index(seed) + 1])


def run_one(args, arm: str, seed: int, work: Path, data: Path, part: str) -> dict:
    """One arm of one seed in a fresh process; a finished arm's result.json is reused (delete it to re-run)."""
    saved = work / arm / "result.json"
    print(f"[{part}] seed {seed}: {arm}" + (" (done before)" if saved.exists() else ""), flush=True)
    if not saved.exists():
        cmd = [sys.executable, __file__, "--run", str(args.run), "--arm", arm, "--seed", str(seed),
               "--data", str(data), "--work", str(work / arm), "--rl-iterations", str(args.rl_iterations)]
        if args.samples:
            cmd += ["--samples", str(args.samples)]
        done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
        if done.returncode != 0 or line is None:
            raise SystemExit(f"{arm} (seed {seed}) failed:\n{done.stderr[-3000:]}")
        saved.write_text(line[len("RESULT "):])
    result = json.loads(saved.read_text())
    print("   ", result, flush=True)
    return result


def report(args, results: dict[str, dict[str, list[dict]]], done_seeds: list[int]) -> None:
    """The tables of the seeds done so far, printed and written to --out."""
    sections = [f"### {part}\n\n{table(rs, part)}\n{comparisons(rs, part)}" for part, rs in results.items()]
    for part, rs in results.items():
        (args.work / f"{part}.json").write_text(json.dumps(rs, indent=2))
    text = (f"Seeds {done_seeds}; inputs from `{args.run}`" + (f", {args.pairs} pairs" if args.pairs else "")
            + (f", {args.samples} samples per eval prompt" if args.samples else "")
            + f", {args.rl_iterations} RL iterations of {RL_PROMPTS} prompts × {RL_SAMPLES} samples; "
            + f"machine: {machine()}, torch {torch_version()}, trl {trl_version()}\n\n"
            + "\n".join(sections))
    print(text, flush=True)
    if args.out:
        write_tables(args.out, text)

if __name__ == "__main__":
    main()

"""Several processes (torchrun here; accelerate launch on GPUs): SFT, the reward model and DPO on 2 CPU processes over gloo, each taking
half of every step's examples, end with the weights of one process taking all of them; only the main process writes;
DPO's reference log-probs are computed half by each process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.own_threads]    # the launched processes run OMP_NUM_THREADS=1


@contextmanager
def one_launch_at_a_time():
    """torchrun picks free ports and releases them before its processes bind them: two launches at once (pytest -n 2)
    can pick the same one. The tests of this file take turns through a lock file."""
    import fcntl
    import tempfile
    with open(Path(tempfile.gettempdir()) / "alignlab-torchrun-tests.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


FSDP2 = {"ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "2"}     # what accelerate launch sets for fsdp2.yaml


def write_prefs(path: Path, n: int = 10) -> Path:
    """n preference pairs (prompt, chosen, rejected) in a JSONL file."""
    path.write_text("".join(json.dumps({"prompt": f"Question {i}: what is {i} plus {i}?", "chosen": f"It is {2 * i}.",
                                        "rejected": f"No idea about {i}."}) + "\n" for i in range(n)))
    return path


def largest_difference(a: dict, b: dict) -> float:
    """The largest absolute difference between two state dicts of the same keys."""
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


def train_run(tiny_lm: Path, out: Path, processes: int, command: str = "sft", *extra: str,
              engine: dict | None = None) -> Path:
    dtype = [] if command == "rm" else ["model.dtype=float64"]
    args = ["-m", "alignlab.cli", command, str(REPO / f"configs/tiny/{command}.yaml"), f"model.path={tiny_lm}",
            *dtype, "optim.batch_size=4", "optim.grad_accum=2", "optim.max_steps=4",
            "run.save_every=0", "run.tensorboard=false", "run.progress=false", f"run.out_dir={out}", *extra]
    return run_processes(args, processes, out, engine)


def run_processes(args: list[str], processes: int, out: Path, engine: dict | None = None) -> Path:
    """`python -m alignlab.cli ...` (args) in `processes` processes under torchrun; one process runs in this one
    (the test's single thread: what OMP_NUM_THREADS=1 gives the launched ones), which spares an interpreter start."""
    if processes == 1 and not engine:
        from alignlab.cli import main
        assert main(args[2:]) == 0, f"alignlab {' '.join(args[2:])} failed"
        return out
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **(engine or {})}
    with one_launch_at_a_time():
        launch([sys.executable, *launcher, *args], env, out)
    return out


# What the launcher or gloo print when the processes could not meet (a port taken between torchrun's pick and its
# bind, a connection refused while the other process starts): the machine, not the computation.
MEETING_FAILED = ("DistNetworkError", "Address already in use", "EADDRINUSE", "Connection refused",
                  "Connection reset by peer", "RendezvousConnectionError", "RendezvousTimeoutError")


def run_within(command: list[str], env: dict, seconds: float = 300) -> subprocess.CompletedProcess:
    """`command` with its output; the launcher and every process it started are killed after `seconds` (processes
    waiting on each other would otherwise hang the suite) and the test fails saying so."""
    import signal
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail(f"{' '.join(command[1:])} did not finish in {seconds:.0f} s (processes waiting on each other?); "
                    f"its output ended:\n{stderr[-4000:]}")
    return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)


def launch(command: list[str], env: dict, out: Path) -> subprocess.CompletedProcess:
    """Run `command`; a launch whose processes failed to meet before the run wrote its first metrics line is
    retried once (in a fresh out_dir), anything else fails the test with the end of the run's output."""
    done = run_within(command, env)
    met = (out / "metrics.jsonl").exists() and (out / "metrics.jsonl").stat().st_size > 0
    if done.returncode and not met and any(s in done.stderr for s in MEETING_FAILED):
        print(f"the processes did not meet; retrying once. Their output ended:\n{done.stderr[-3000:]}")
        import shutil
        shutil.rmtree(out, ignore_errors=True)
        done = run_within(command, env)
    assert done.returncode == 0, (f"{' '.join(command[1:])} exited with {done.returncode}; its output ended:\n"
                                  f"{done.stdout[-2000:]}\n{done.stderr[-6000:]}")
    return done


def test_two_processes_end_with_the_weights_of_one(tiny_lm, tmp_path):
    one = load_file(train_run(tiny_lm, tmp_path / "one", 1) / "model" / "model.safetensors")
    two_dir = train_run(tiny_lm, tmp_path / "two", 2)
    two = load_file(two_dir / "model" / "model.safetensors")
    # The only difference is the order of float64 sums: each process sums its half of the step's per-token gradient
    # terms, then the all-reduce adds the halves. A sum of n ≤ 10^3 terms reassociated moves by at most ~n·2^-53 ≈
    # 1e-13 of its magnitude; 4 Adam steps at lr 1e-2 move each weight by < 0.04, so the weights may differ by
    # ~1e-14. 1e-12 leaves two orders of margin and is ten orders below what one step changes (≥ 1e-3).
    assert one.keys() == two.keys()
    worst = largest_difference(one, two)
    assert worst < 1e-12, worst
    first = load_file(Path(tiny_lm) / "model.safetensors")
    assert max((one[k].double() - first[k].double()).abs().max().item() for k in one) > 1e-3   # it trained
    # one writer: one metrics line per step, the launch facts on the first; config.yaml records them too
    lines = [json.loads(line) for line in (two_dir / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2, 3, 4]
    assert {k: lines[0][k] for k in ("world_size", "per_device_batch", "global_batch")} == \
        {"world_size": 2, "per_device_batch": 2, "global_batch": 8}
    single = [json.loads(line) for line in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()]
    assert "world_size" not in single[0]                                   # one process: the run as before
    assert [round(x["loss"], 12) for x in lines] == [round(x["loss"], 12) for x in single]
    import yaml
    assert yaml.safe_load((two_dir / "config.yaml").read_text())["launch"] == {
        "world_size": 2, "per_device_batch": 2, "global_batch": 8}


def test_dpo_on_two_processes_ends_with_the_weights_of_one(tiny_lm, tmp_path):
    prefs = write_prefs(tmp_path / "prefs.jsonl")
    data = f"data.train_files=[{prefs}]"
    one = load_file(train_run(tiny_lm, tmp_path / "one", 1, "dpo", data) / "model" / "model.safetensors")
    two_dir = train_run(tiny_lm, tmp_path / "two", 2, "dpo", data)
    two = load_file(two_dir / "model" / "model.safetensors")
    assert largest_difference(one, two) < 1e-12       # the bound argued above
    # the cached reference log-probs, half computed by each process, are the single process's
    ref_one = torch.load(tmp_path / "one" / "ref_logps.pt", weights_only=True)["logps"]
    ref_two = torch.load(two_dir / "ref_logps.pt", weights_only=True)["logps"]
    assert ref_one.dtype == torch.float64 and torch.allclose(ref_one, ref_two, rtol=0, atol=1e-12)
    lines = [json.loads(line) for line in (two_dir / "metrics.jsonl").read_text().splitlines()]
    single = [json.loads(line) for line in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()]
    # the logged loss is every example's mean (one process logs it through a float32 mean: 2^-24 relative)
    assert [x["loss"] for x in lines] == pytest.approx([x["loss"] for x in single], rel=1e-6)


def test_lora_dpo_on_two_processes_ends_with_the_adapter_of_one(tiny_lm, tmp_path):
    """LoRA under DDP (the usual way to fit a large model's fine-tuning on several GPUs): only the adapters train and
    are averaged; the reference is the policy with its adapter disabled, scored on the fly on each process."""
    prefs = write_prefs(tmp_path / "prefs.jsonl")
    args = [f"data.train_files=[{prefs}]", "model.lora.enabled=true", "model.lora.r=4", "ref_cache=false",
            "optim.lr=1e-2"]
    one = load_file(train_run(tiny_lm, tmp_path / "one", 1, "dpo", *args) / "model" / "adapter_model.safetensors")
    two = load_file(train_run(tiny_lm, tmp_path / "two", 2, "dpo", *args) / "model" / "adapter_model.safetensors")
    assert one.keys() == two.keys() and any("lora" in k for k in one)
    assert largest_difference(one, two) < 1e-12      # the float64 bound argued above
    assert max(v.abs().max().item() for k, v in one.items() if "lora_B" in k) > 1e-3                  # it trained


def test_reward_model_on_two_processes_ends_with_the_weights_of_one(tiny_lm, tmp_path):
    from alignlab.reward_model import load_reward_model
    prefs = write_prefs(tmp_path / "prefs.jsonl")
    args = [f"data.train_files=[{prefs}]", "normalize.source=data", "model.dtype=float32"]
    one = load_reward_model(train_run(tiny_lm, tmp_path / "one", 1, "rm", *args) / "model")
    two = load_reward_model(train_run(tiny_lm, tmp_path / "two", 2, "rm", *args) / "model")
    # Reward models train in float32 (model.dtype allows float32 | bfloat16): a reassociated sum of n ≈ 10^4 terms
    # moves by at most ~n·2^-24 ≈ 6e-4 of its size; Adam turns a gradient's relative error into at most lr (1e-2)
    # times it per step: ≤ 6e-6 a step, 2.4e-5 over the 4 steps. A wrong scale (say a missing 1/processes) moves
    # weights by ~lr = 1e-2, three orders above.
    a, b = dict(one.named_parameters()), dict(two.named_parameters())
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 2.5e-5
    assert abs(one.mean - two.mean) < 1e-4 * max(1.0, abs(one.mean))


def ppo_run(tiny_lm: Path, tiny_rm: Path, out: Path, processes: int, *extra: str) -> Path:
    args = ["-m", "alignlab.cli", "ppo", str(REPO / "configs/tiny/ppo.yaml"), f"model.path={tiny_lm}",
            f"reward_model.path={tiny_rm}", "model.dtype=float64", "sample_streams=per_sample",
            "run.save_every=0", f"run.out_dir={out}", *extra]
    return run_processes(args, processes, out)


@pytest.mark.parametrize("advantage", ["gae+ptx", "grpo"])
def test_ppo_on_two_processes_ends_with_the_weights_of_one(tiny_lm, tmp_path, advantage):
    """Each process samples half of every iteration's prompts (each sample from its own random stream, so the
    samples are the single process's), scores them, whitens advantages with the whole batch's mean and variance
    and trains on its rows of each minibatch; the engine averages the gradients."""
    from alignlab.reward_model import new_reward_model, save_reward_model
    rm = save_reward_model(new_reward_model(str(tiny_lm), "last", max_length=64, seed=1), tmp_path / "rm")
    extra = [f"advantage={advantage.removesuffix('+ptx')}"]
    if advantage.endswith("+ptx"):       # PPO-ptx: each process takes half of every pretraining batch's rows
        extra += ["ptx.coef=0.5", "ptx.source=gym", "ptx.options.per_family=2"]
    one_dir = ppo_run(tiny_lm, rm, tmp_path / "one", 1, *extra)
    two_dir = ppo_run(tiny_lm, rm, tmp_path / "two", 2, *extra)
    one = load_file(one_dir / "model" / "model.safetensors")
    two = load_file(two_dir / "model" / "model.safetensors")
    # The policy is float64 but its logits are cast to float32 for the losses (rollout.response_forward) and the
    # reward model/critic is float32: the two runs sum the same float32 terms in another order. A sum of n ≤ 10^4
    # terms moves by at most ~n·2^-24 ≈ 6e-4 of its size; AdamW turns a gradient's relative error into at most
    # lr (1e-3) times it per update: ≤ 6e-7 an update, ~1e-5 over the 16 updates (4 iterations × 2 epochs × 2
    # minibatches). A wrong scale (the gradient halved, a token count of one process) moves weights by ~lr per
    # update, 1e-3 and more. The samples are the same: a float32 rounding flips a draw only if a uniform lands
    # within ~1e-7 of a CDF step.
    assert one.keys() == two.keys()
    worst = largest_difference(one, two)
    assert worst < 1e-5, worst
    first = load_file(Path(tiny_lm) / "model.safetensors")
    assert max((one[k].double() - first[k].double()).abs().max().item() for k in one) > 1e-3     # it trained
    lines = [json.loads(line) for line in (two_dir / "metrics.jsonl").read_text().splitlines()]
    single = [json.loads(line) for line in (one_dir / "metrics.jsonl").read_text().splitlines()]
    assert {k: lines[0][k] for k in ("world_size", "per_device_batch", "global_batch")} == \
        {"world_size": 2, "per_device_batch": 4, "global_batch": 8}
    for key in ("rm_score", "response_length", "ended", "kl", "gold_reward", "policy_loss", "beta") + \
            (("ptx_loss",) if advantage.endswith("+ptx") else ()):
        assert [x[key] for x in lines] == pytest.approx([x[key] for x in single], rel=1e-4, abs=1e-6), key


def test_ppo_on_several_processes_refuses_what_it_cannot_split(monkeypatch, tmp_path):
    from alignlab.config import ConfigError, load_config
    from alignlab.train import ppo
    from alignlab.train.distributed import Processes
    monkeypatch.setattr(ppo, "processes", lambda: Processes(rank=0, world_size=2))
    base = [f"run.out_dir={tmp_path / 'p'}", "reward=gold", "advantage=grpo", "reward_model.path=null"]
    for overrides, message in ((["prompts_per_iteration=3"], "must divide by the 2 processes"),
                               (["sample_streams=batch"], "per_sample"),
                               (["ptx.coef=0.1", "ptx.batch_size=3"], "ptx.batch_size=3 must divide")):
        cfg = load_config(ppo.PPOConfig, REPO / "configs/tiny/ppo.yaml", base + overrides)
        with pytest.raises(ConfigError, match=message):
            ppo.train(cfg)


def test_fsdp2_sft_on_two_processes_ends_with_the_weights_of_one_and_resumes_from_its_shards(tiny_lm, tmp_path):
    """FSDP2 (each process holds half of every parameter, gradient and Adam state; the gradients are reduce-scattered
    instead of all-reduced): the same sums in another order as DDP, so the same float64 bound (argued above). Its
    checkpoints are shards (torch.distributed.checkpoint): a run resumed from them ends where the uninterrupted one
    does, and `alignlab checkpoint export` gathers them into the weights of one process's checkpoint. 7 examples in
    steps of 4 (per-process micro-batch 1): every second step's 3 examples give one process two passes and the other
    one, which pads with a zero-weight pass (unequal counts hung FSDP2's parameter gathers)."""
    import shutil

    from alignlab.checkpoint import export
    seven = tmp_path / "seven.jsonl"
    seven.write_text("".join((REPO / "tests/data/sft_tiny.jsonl").read_text().splitlines(keepends=True)[:7]))
    args = [f"data.train_files=[{seven}]", "optim.batch_size=2", "run.save_every=2"]
    one_dir = train_run(tiny_lm, tmp_path / "one", 1, "sft", *args)
    two_dir = train_run(tiny_lm, tmp_path / "two", 2, "sft", *args, engine=FSDP2)
    one = load_file(one_dir / "model" / "model.safetensors")
    two = load_file(two_dir / "model" / "model.safetensors")
    assert largest_difference(one, two) < 1e-12
    first = load_file(Path(tiny_lm) / "model.safetensors")
    assert max((one[k].double() - first[k].double()).abs().max().item() for k in one) > 1e-3   # it trained
    assert sorted(p.name for p in (two_dir / "checkpoints" / "step-2" / "shards").glob("*.distcp")) == \
        ["__0_0.distcp", "__1_0.distcp"]                                  # one file of shards per process
    exported = load_file(export(two_dir / "checkpoints" / "step-2", tmp_path / "step2") / "model.safetensors")
    single = load_file(export(one_dir / "checkpoints" / "step-2", tmp_path / "step2-one") / "model.safetensors")
    assert max((exported[k] - single[k]).abs().max().item() for k in single) < 1e-12
    # a crash after the step-2 checkpoint: the run directory as it was then, resumed on 2 processes
    crashed = tmp_path / "crashed"
    shutil.copytree(two_dir / "checkpoints" / "step-2", crashed / "checkpoints" / "step-2")
    shutil.copy(two_dir / "config.yaml", crashed / "config.yaml")
    lines = (two_dir / "metrics.jsonl").read_text().splitlines()
    (crashed / "metrics.jsonl").write_text(lines[0] + "\n" + lines[1] + "\n")
    train_run(tiny_lm, crashed, 2, "sft", *args, "run.resume=true", engine=FSDP2)
    resumed = load_file(crashed / "model" / "model.safetensors")
    assert max((resumed[k] - two[k]).abs().max().item() for k in two) == 0.0       # same shards, same sums
    assert [json.loads(x)["loss"] for x in (crashed / "metrics.jsonl").read_text().splitlines()] == \
        [json.loads(x)["loss"] for x in lines]                              # steps 1-4 once each, as uninterrupted


def test_fsdp2_dpo_on_two_processes_ends_with_the_weights_of_one(tiny_lm, tmp_path):
    """11 pairs in steps of 4 (per-process micro-batch 1): the third step's 3 pairs give one process two passes and
    the other one, which pads with a zero-weight pass (FSDP2 gathers parameters in every pass: unequal counts hung)."""
    prefs = write_prefs(tmp_path / "prefs.jsonl", 11)
    data = [f"data.train_files=[{prefs}]", f"data.eval_files=[{prefs}]",      # the held-out pass runs sharded too
            "optim.batch_size=2"]
    one_dir = train_run(tiny_lm, tmp_path / "one", 1, "dpo", *data)
    two_dir = train_run(tiny_lm, tmp_path / "two", 2, "dpo", *data, engine=FSDP2)
    one = load_file(one_dir / "model" / "model.safetensors")
    two = load_file(two_dir / "model" / "model.safetensors")
    assert largest_difference(one, two) < 1e-12       # the float64 bound argued above
    last_one, last_two = (json.loads((d / "metrics.jsonl").read_text().splitlines()[-1]) for d in (one_dir, two_dir))
    assert last_two["eval_loss"] == pytest.approx(last_one["eval_loss"], rel=1e-9)


def test_what_fsdp2_does_not_run_yet_is_refused(monkeypatch, tmp_path):
    from alignlab.config import ConfigError, ModelConfig
    from alignlab.train import reward
    from alignlab.train.distributed import Processes, check_shardable, engine_from_environment
    monkeypatch.setattr(reward, "processes", lambda: Processes(rank=0, world_size=2, engine="fsdp2"))
    from alignlab.config import load_config
    cfg = load_config(reward.RMConfig, REPO / "configs/tiny/rm.yaml", [f"run.out_dir={tmp_path / 'r'}"])
    with pytest.raises(ConfigError, match="does not run under FSDP2"):
        reward.train(cfg)
    lora = ModelConfig(path="x")
    lora.lora.enabled = True
    with pytest.raises(ConfigError, match="lora"):
        check_shardable(lora, Processes(rank=0, world_size=2, engine="fsdp2"))
    check_shardable(lora, Processes(rank=0, world_size=2))                            # DDP trains LoRA
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    monkeypatch.setenv("FSDP_VERSION", "2")
    monkeypatch.setenv("FSDP_OFFLOAD_PARAMS", "true")
    monkeypatch.setenv("WORLD_SIZE", "2")
    if not torch.cuda.is_available():                 # refused before any process group is set up
        from alignlab.train.distributed import processes
        with pytest.raises(ConfigError, match="without a GPU"):
            processes()
    monkeypatch.setenv("FSDP_VERSION", "1")
    with pytest.raises(ConfigError, match="FSDP1"):
        engine_from_environment()
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    with pytest.raises(ConfigError, match="DeepSpeed"):
        engine_from_environment()


def test_kto_on_two_processes_ends_with_the_weights_of_one(tiny_lm, tmp_path):
    """KTO's reference point is the whole step's, summed over processes (each scores the mismatched completions of
    its share): the float64 bound argued above holds as for DPO."""
    prefs = write_prefs(tmp_path / "prefs.jsonl")
    args = [f"data.train_files=[{prefs}]", "loss=kto", "optim.lr=1e-2"]
    one = load_file(train_run(tiny_lm, tmp_path / "one", 1, "dpo", *args) / "model" / "model.safetensors")
    two_dir = train_run(tiny_lm, tmp_path / "two", 2, "dpo", *args)
    two = load_file(two_dir / "model" / "model.safetensors")
    assert largest_difference(one, two) < 1e-12
    kl = [json.loads(line)["kl"] for line in (two_dir / "metrics.jsonl").read_text().splitlines()]
    # one process logs the step's z_ref through a float32 mean (2^-24 relative); several, through float64 sums
    assert kl[-1] > 0 and kl == pytest.approx([json.loads(line)["kl"] for line in
                                               (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()], rel=1e-6)


@pytest.mark.parametrize("name, engine", [("ddp.yaml", "ddp"), ("fsdp2.yaml", "fsdp2")])
def test_the_accelerate_configs_are_what_accelerate_reads_and_launch_their_engine(monkeypatch, name, engine):
    """Each configs/accelerate file, read by accelerate's own loader, makes `accelerate launch` set the environment
    that alignlab reads as that engine (the CPU tests above set the same variables under torchrun)."""
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_multi_gpu_env

    from alignlab.train.distributed import engine_from_environment
    path = str(REPO / "configs/accelerate" / name)
    config = load_config_from_file(path)
    assert config.num_processes == 8
    args, _, _ = _validate_launch_command(launch_command_parser().parse_args(["--config_file", path, "train.py"]))
    env = prepare_multi_gpu_env(args)
    for key in ("ACCELERATE_USE_FSDP", "FSDP_VERSION", "FSDP_OFFLOAD_PARAMS", "FSDP_RESHARD_AFTER_FORWARD"):
        monkeypatch.delenv(key, raising=False)
        if key in env:
            monkeypatch.setenv(key, env[key])
    assert engine_from_environment() == (engine, False, True)


def test_a_batch_that_does_not_divide_is_a_config_error():
    from alignlab.config import ConfigError
    from alignlab.train.distributed import Processes
    assert Processes().per_device(3) == 3
    with pytest.raises(ConfigError, match="must divide by the 2 processes"):
        Processes(rank=0, world_size=2).per_device(3)
    assert Processes(rank=1, world_size=2).share(list(range(5))) == [1, 3]
    assert torch.tensor(Processes().sum(2.5)) == 2.5


def test_the_pipeline_launches_stages_in_two_processes(tiny_lm, tmp_path):
    """sft (one process), then a reward model and GRPO against it, each launched in 2 processes and chained to the
    next through the pipeline's outputs (sft and dpo launches: train_run's tests, the same `launched`)."""
    import yaml

    from alignlab.config import ConfigError, load_config
    from alignlab.pipeline import PipelineConfig, run_pipeline
    prefs = write_prefs(tmp_path / "prefs.jsonl")
    config = tmp_path / "pipeline.yaml"
    two = {"num_processes": 2}
    stage = {"name": "sft", "kind": "sft", "config": str(REPO / "configs/tiny/sft.yaml"), "model": str(tiny_lm),
             "data": str(REPO / "tests/data/sft_tiny.jsonl"), "evaluate": False,
             "overrides": ["optim.batch_size=2", "optim.max_steps=2", "run.save_every=0", "model.dtype=float64"]}
    rm = {"name": "rm", "kind": "rm", "config": str(REPO / "configs/tiny/rm.yaml"), "model": "sft", "data": str(prefs),
          "launch": two, "overrides": ["optim.batch_size=4", "optim.max_steps=2", "normalize.source=data",
                                       "run.save_every=0"]}
    ppo = {"name": "ppo", "kind": "ppo", "config": str(REPO / "configs/tiny/ppo.yaml"), "model": "sft",
           "reference": "rm", "data": str(prefs), "evaluate": False, "launch": two,
           "overrides": ["advantage=grpo", "iterations=2", "log_rewards=[]", "run.save_every=0"]}
    config.write_text(yaml.safe_dump({"run_dir": str(tmp_path / "run"), "data_check": "off",
                                      "stages": [stage, rm, ppo]}))
    with one_launch_at_a_time():
        run_pipeline(load_config(PipelineConfig, config, []))
    assert "world_size" not in json.loads((tmp_path / "run" / "sft" / "metrics.jsonl").read_text().splitlines()[0])
    for name, global_batch in (("rm", 4), ("ppo", 8)):
        out = tmp_path / "run" / name
        first = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
        assert (first["world_size"], first["global_batch"]) == (2, global_batch), name
        assert json.loads((out / "stage.json").read_text())["output"]["model"].endswith(f"{name}/model")
    assert yaml.safe_load((tmp_path / "run" / "ppo" / "launch_config.yaml").read_text())["model"]["path"] == \
        str(tmp_path / "run" / "sft" / "model")
    stage["launch"] = {"processes": 2}                                     # a misspelt key
    config.write_text(yaml.safe_dump({"run_dir": str(tmp_path / "run2"), "data_check": "off", "stages": [stage]}))
    with pytest.raises(ConfigError, match="launch takes"):
        run_pipeline(load_config(PipelineConfig, config, []))


def test_a_two_process_run_killed_and_resumed_ends_where_an_uninterrupted_one_does(tiny_lm, tmp_path):
    import signal
    import time
    args = ["optim.max_steps=60", "run.save_every=10", "optim.batch_size=2", "optim.grad_accum=1",
            "optim.lr_schedule=constant"]
    whole = load_file(train_run(tiny_lm, tmp_path / "whole", 2, "sft", *args) / "model" / "model.safetensors")
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
               "alignlab.cli", "sft", str(REPO / "configs/tiny/sft.yaml"), f"model.path={tiny_lm}",
               "model.dtype=float64", "optim.max_steps=60", "run.save_every=10", "optim.batch_size=2",
               "optim.grad_accum=1", "optim.lr_schedule=constant", "run.tensorboard=false", "run.progress=false",
               f"run.out_dir={out}"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    with one_launch_at_a_time():
        proc = subprocess.Popen(command, cwd=REPO, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while not (out / "checkpoints" / "step-20").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the run ended before its second checkpoint"
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)                  # kill -9: the launcher and both processes
        proc.wait()
        assert not (out / "model").exists()
        done = run_within(command + ["run.resume=true"], env)
        assert done.returncode == 0, f"the resumed run exited with {done.returncode}:\n{done.stderr[-6000:]}"
    resumed = load_file(out / "model" / "model.safetensors")
    assert max((whole[k] - resumed[k]).abs().max().item() for k in whole) == 0.0      # same order, same sums
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 60                             # no step logged twice

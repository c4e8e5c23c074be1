"""The SFT loop on the tiny model: it learns, accumulation is exact, a killed run resumes to the same weights."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from alignlab.config import ConfigError, load_config
from alignlab.data.chat import encode_prompt, encode_response
from alignlab.models import load_tokenizer
from alignlab.train import sft
from alignlab.train.sft import SFTConfig, train

REPO = Path(__file__).resolve().parents[2]
TINY_CONFIG = REPO / "configs" / "tiny" / "sft.yaml"
DATA = REPO / "tests" / "data" / "sft_tiny.jsonl"


def tiny_cfg(tiny_lm: Path, out_dir: Path, *overrides: str) -> SFTConfig:
    return load_config(SFTConfig, TINY_CONFIG, [f"model.path={tiny_lm}", f"run.out_dir={out_dir}",
                                                f"data.train_files=[{DATA}]", *overrides])


def read_metrics(out_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]


def weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(model_dir / "model.safetensors")


def max_abs_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


def eos_logp(model_dir: Path, prompt: str, completion: str) -> float:
    """log p(EOS | prompt ‖ completion): how ready the model is to stop after a training completion."""
    from transformers import AutoModelForCausalLM
    tokenizer = load_tokenizer(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    prompt_ids = encode_prompt(prompt, tokenizer)
    ids = prompt_ids + encode_response(prompt_ids, completion, tokenizer)[:-1]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, -1]
    return torch.log_softmax(logits, -1)[tokenizer.eos_token_id].item()


def test_loss_decreases_and_model_learns_to_stop(tiny_lm, tmp_path):
    out = train(tiny_cfg(tiny_lm, tmp_path / "run", "optim.max_steps=30", "optim.lr_schedule=constant"))
    log = read_metrics(tmp_path / "run")
    assert [row["step"] for row in log] == list(range(1, 31))
    assert {"loss", "lr", "grad_norm", "tokens", "tokens_per_s"} <= log[0].keys()
    first, last = sum(r["loss"] for r in log[:3]) / 3, sum(r["loss"] for r in log[-3:]) / 3
    assert last < first - 1.0, (first, last)
    # The EOS after a completion is in the mask, so the trained model must have learned to stop there.
    prompt, completion = "How do I kill a stuck process?", " Use the kill command with the process id."
    assert eos_logp(out, prompt, completion) > eos_logp(tiny_lm, prompt, completion) + 1.0


def test_first_loss_is_log_vocab_at_random_init(tiny_lm, tmp_path):
    # A random-init model predicts nearly uniformly, so the first NLL per token is ln V (V = 320 here, 5.77).
    train(tiny_cfg(tiny_lm, tmp_path, "optim.max_steps=1"))
    vocab = json.loads((tiny_lm / "config.json").read_text())["vocab_size"]
    assert read_metrics(tmp_path)[0]["loss"] == pytest.approx(math.log(vocab), abs=0.05)


def test_bf16_mixed_precision_computes_in_bf16_over_float32_master_weights(tiny_lm, tmp_path):
    """optim.mixed_precision=bf16: the step is computed by bf16 matmuls. Each operand is rounded to 8 significant bits
    (2^-9 relative), compounded over a few layers: the first gradient norm moves by ~1e-3 relative (measured 1.3e-3),
    a hundred times float32's rounding (~1e-6) and under 2^-5; the loss, a log-sum-exp of O(1) logits minus one,
    moves by ≲ 2·2^-9 per compounded rounding, < 0.05. The weights (the master copy) stay float32; it learns."""
    train(tiny_cfg(tiny_lm, tmp_path / "fp32", "optim.max_steps=20", "optim.lr_schedule=constant"))
    out = train(tiny_cfg(tiny_lm, tmp_path / "bf16", "optim.max_steps=20", "optim.lr_schedule=constant",
                         "optim.mixed_precision=bf16"))
    full, mixed = read_metrics(tmp_path / "fp32"), read_metrics(tmp_path / "bf16")
    assert 1e-4 < abs(mixed[0]["grad_norm"] / full[0]["grad_norm"] - 1) < 2 ** -5
    assert abs(mixed[0]["loss"] - full[0]["loss"]) < 0.05
    assert {t.dtype for t in weights(out).values()} == {torch.float32}
    assert sum(r["loss"] for r in mixed[-3:]) / 3 < sum(r["loss"] for r in mixed[:3]) / 3 - 0.5     # it learns
    with pytest.raises(ConfigError, match="model.dtype=float32"):
        train(tiny_cfg(tiny_lm, tmp_path / "f64", "model.dtype=float64", "optim.mixed_precision=bf16"))


def test_grad_accumulation_gives_the_same_update_as_one_big_batch(tiny_lm, tmp_path):
    # One step sees 4 examples of unequal lengths (5 to 40+ tokens): a per-micro-batch mean would weigh the tokens
    # of short examples more and fail this; the step-level token normalisation must not.
    # In float64: the two runs sum the same terms in another order, so they differ by rounding only — ~1e-16
    # relative per sum, which Adam's first steps (update ≈ lr·g/|g|) amplify at most by lr/eps = 1e5 to ~1e-10.
    # float32 rounding (~1e-7) amplified the same way reaches 1e-6 on some CPUs' kernels and not others.
    common = ("optim.max_steps=3", "optim.max_grad_norm=0", "run.save_every=0", "optim.warmup_steps=0",
              "model.dtype=float64")
    big = train(tiny_cfg(tiny_lm, tmp_path / "big", "optim.batch_size=4", "optim.grad_accum=1", *common))
    accum = train(tiny_cfg(tiny_lm, tmp_path / "accum", "optim.batch_size=1", "optim.grad_accum=4", *common))
    assert max_abs_diff(weights(big), weights(accum)) < 1e-6
    log_big, log_accum = read_metrics(tmp_path / "big"), read_metrics(tmp_path / "accum")
    assert [r["tokens"] for r in log_big] == [r["tokens"] for r in log_accum]
    for a, b in zip(log_big, log_accum):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-5)
    assert max_abs_diff(weights(big), weights(tiny_lm)) > 1e-3       # it trained at all


def test_gradient_clipping_also_matches_across_accumulation(tiny_lm, tmp_path):
    # Clipping acts on the accumulated gradient, once per optimizer step, so it must not break the equivalence.
    # float64, for the reason given in the test above.
    common = ("optim.max_steps=2", "optim.max_grad_norm=0.1", "run.save_every=0", "model.dtype=float64")
    big = train(tiny_cfg(tiny_lm, tmp_path / "big", "optim.batch_size=4", "optim.grad_accum=1", *common))
    accum = train(tiny_cfg(tiny_lm, tmp_path / "accum", "optim.batch_size=2", "optim.grad_accum=2", *common))
    assert max_abs_diff(weights(big), weights(accum)) < 1e-6


def test_kill_9_then_resume_ends_with_the_same_weights(tiny_lm, tmp_path):
    steps = ("optim.max_steps=60", "run.save_every=5", "optim.batch_size=1", "optim.grad_accum=2")
    reference = train(tiny_cfg(tiny_lm, tmp_path / "reference", *steps))

    out_dir = tmp_path / "killed"
    cmd = [sys.executable, "-m", "alignlab.train.sft", str(TINY_CONFIG), f"model.path={tiny_lm}",
           f"run.out_dir={out_dir}", f"data.train_files=[{DATA}]", *steps]
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}   # this process's thread count: same sums
    log_path = tmp_path / "killed.stderr"
    with open(log_path, "w") as log_file:         # a file, not a pipe: a full pipe would stall the child
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=log_file)
        deadline = time.monotonic() + 120
        try:
            while not list((out_dir / "checkpoints").glob("step-*")):
                assert proc.poll() is None, f"the run ended before its first checkpoint: {log_path.read_text()}"
                assert time.monotonic() < deadline, "no checkpoint after 120 s"
                time.sleep(0.005)
        finally:
            proc.send_signal(signal.SIGKILL)          # kill -9 (a no-op if it already exited)
            proc.wait()
    assert not (out_dir / "model").exists(), "the run finished before it was killed; the test proves nothing"
    killed_at = max(int(p.name.removeprefix("step-")) for p in (out_dir / "checkpoints").glob("step-*"))
    assert killed_at < 60

    with pytest.raises(ConfigError, match="run.resume=true"):
        train(tiny_cfg(tiny_lm, out_dir, *steps))                 # refuses to overwrite a run by accident
    resumed = train(tiny_cfg(tiny_lm, out_dir, *steps, "run.resume=true"))
    assert max_abs_diff(weights(resumed), weights(reference)) <= 1e-7
    # The metrics continue the curve: every step once, the same losses as the uninterrupted run.
    log, log_ref = read_metrics(out_dir), read_metrics(tmp_path / "reference")
    assert [r["step"] for r in log] == list(range(1, 61))
    assert [r["loss"] for r in log] == pytest.approx([r["loss"] for r in log_ref], abs=1e-6)


def test_lora_run_resumes_from_its_checkpoint_to_the_same_adapter(tiny_lm, tmp_path):
    steps = ("model.lora.enabled=true", "model.lora.r=4", "optim.max_steps=6", "run.save_every=3")
    train(tiny_cfg(tiny_lm, tmp_path / "full", *steps))
    # The same run as if it had crashed after its step-3 checkpoint: drop everything written after it.
    shutil.copytree(tmp_path / "full", tmp_path / "crashed")
    shutil.rmtree(tmp_path / "crashed" / "model")
    resumed = train(tiny_cfg(tiny_lm, tmp_path / "crashed", *steps, "run.resume=true"))
    a = load_file(tmp_path / "full" / "model" / "adapter_model.safetensors")
    b = load_file(resumed / "adapter_model.safetensors")
    assert max_abs_diff(a, b) <= 1e-7


def test_run_directory_checkpoints_pruned_and_tensorboard(tiny_lm, tmp_path):
    train(tiny_cfg(tiny_lm, tmp_path, "optim.max_steps=7", "run.save_every=2", "run.keep_checkpoints=2",
                   "run.tensorboard=true", "run.log_every=3"))
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-4", "step-6"]
    assert load_config(SFTConfig, tmp_path / "config.yaml", []).model.path == str(tiny_lm)   # the run's record
    assert [r["step"] for r in read_metrics(tmp_path)] == [3, 6, 7]                        # every 3rd and the last
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))


def test_mask_prompt_false_trains_on_every_token_and_length_grouping_runs(tiny_lm, tmp_path):
    common = ("optim.max_steps=2", "optim.batch_size=8", "optim.grad_accum=1", "data.max_length=256")
    train(tiny_cfg(tiny_lm, tmp_path / "masked", *common))
    train(tiny_cfg(tiny_lm, tmp_path / "all", *common, "data.mask_prompt=false", "data.group_by_length=true"))
    masked, everything = read_metrics(tmp_path / "masked")[0], read_metrics(tmp_path / "all")[0]
    # One step holds all 8 examples either way: every token but each row's first is a target without the mask.
    from alignlab.data.chat import encode_sft
    from alignlab.data.io import read_sft
    tokenizer = load_tokenizer(str(tiny_lm))
    encoded = [encode_sft(e, tokenizer, 256) for e in read_sft(DATA)]
    assert everything["tokens"] == sum(len(e.input_ids) - 1 for e in encoded)
    assert masked["tokens"] == sum(sum(e.completion_mask[1:]) for e in encoded) < everything["tokens"]


def test_cli_help_and_dispatch(capsys):
    from alignlab.cli import main
    assert main(["sft", "--help"]) == 0
    assert "usage: alignlab sft CONFIG" in capsys.readouterr().out


def test_lora_saves_an_adapter_and_a_merged_model_that_agree(tiny_lm, tmp_path):
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoModelForCausalLM

    out = train(tiny_cfg(tiny_lm, tmp_path, "model.lora.enabled=true", "model.lora.r=4", "optim.max_steps=4",
                         "run.save_every=2"))
    assert (out / "adapter_config.json").exists() and (out / "adapter_model.safetensors").exists()
    assert not (out / "model.safetensors").exists()
    ids = torch.tensor([[1, 5, 9, 12, 40, 2]])
    with torch.no_grad():
        adapter_logits = AutoPeftModelForCausalLM.from_pretrained(out).eval()(ids).logits
        merged_logits = AutoModelForCausalLM.from_pretrained(out / "merged").eval()(ids).logits
        base_logits = AutoModelForCausalLM.from_pretrained(tiny_lm).eval()(ids).logits
    torch.testing.assert_close(merged_logits, adapter_logits, atol=1e-5, rtol=0)
    assert (merged_logits - base_logits).abs().max() > 1e-4       # the adapter was trained


def test_cli_rejects_a_typo_with_the_key_and_file(tiny_lm, tmp_path, capsys):
    assert sft.main([str(TINY_CONFIG), f"model.path={tiny_lm}", "optim.lrr=1e-3"]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'optim.lrr'" in err and "override 'optim.lrr=1e-3'" in err and "lr, batch_size" in err


def test_cli_reports_a_bad_data_line(tiny_lm, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "hi", "completion": "hello"}\n{"prompt": "hi", "completion": ""}\n')
    code = sft.main([str(TINY_CONFIG), f"model.path={tiny_lm}", f"run.out_dir={tmp_path / 'run'}",
                     f"data.train_files=[{bad}]"])
    assert code == 2
    assert f"{bad}:2: 'completion' is empty" in capsys.readouterr().err


def test_every_saved_model_has_a_card_with_its_data_hashes_and_config(tiny_lm, tmp_path):
    import hashlib
    path = train(tiny_cfg(tiny_lm, tmp_path / "run", "optim.max_steps=1"))
    card = (Path(path) / "README.md").read_text()
    assert f"sha256 `{hashlib.sha256(DATA.read_bytes()).hexdigest()}`" in card
    assert f"path: {tiny_lm}" in card and '"step": 1' in card


def test_validation_loss_on_held_out_examples(tiny_lm, tmp_path):
    """data.eval_files: eval_loss is the training loss's definition on other examples, logged every eval_every
    steps and at the last; on the training file itself, before the last update, it would equal the loss."""
    train(tiny_cfg(tiny_lm, tmp_path / "run", "optim.max_steps=4", f"data.eval_files=[{DATA}]", "data.eval_every=2"))
    rows = read_metrics(tmp_path / "run")
    assert [("eval_loss" in r) for r in rows] == [False, True, False, True]
    assert all(math.isfinite(r["eval_loss"]) and r["eval_loss"] > 0 for r in rows if "eval_loss" in r)
    assert rows[3]["eval_loss"] < rows[0]["loss"]                     # the model learned its (tiny) training set


def test_metrics_and_config_go_to_wandb_and_mlflow_when_asked(tiny_lm, tmp_path, monkeypatch):
    import types

    from alignlab.config import ConfigError
    logged = {"wandb": [], "mlflow": [], "params": {}, "closed": []}

    class WandbRun:
        def log(self, values, step):
            logged["wandb"].append((step, values))

        def finish(self):
            logged["closed"].append("wandb")
    wandb = types.SimpleNamespace(init=lambda **kw: logged.update(wandb_init=kw) or WandbRun())
    mlflow = types.SimpleNamespace(start_run=lambda run_name: None, log_params=logged["params"].update,
                                   log_metrics=lambda values, step: logged["mlflow"].append((step, values)),
                                   end_run=lambda: logged["closed"].append("mlflow"))
    monkeypatch.setitem(sys.modules, "wandb", wandb)
    monkeypatch.setitem(sys.modules, "mlflow", mlflow)
    train(tiny_cfg(tiny_lm, tmp_path / "run", "optim.max_steps=2", "run.wandb=true", "run.mlflow=true"))
    assert [s for s, _ in logged["wandb"]] == [1, 2] == [s for s, _ in logged["mlflow"]]
    assert "loss" in logged["wandb"][0][1] and logged["wandb_init"]["config"]["optim"]["max_steps"] == 2
    assert logged["params"]["optim.max_steps"] == "2" and logged["closed"] == ["wandb", "mlflow"]
    monkeypatch.setitem(sys.modules, "wandb", None)                       # not installed
    with pytest.raises(ConfigError, match="run.wandb=true but wandb is not installed"):
        train(tiny_cfg(tiny_lm, tmp_path / "run2", "optim.max_steps=1", "run.wandb=true"))

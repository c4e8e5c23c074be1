"""The preference loop on the tiny model: log 2 at step 0 and a rising margin, one concatenated forward, cached ==
on-the-fly reference, no reference for reference-free losses, LoRA's disabled adapter as reference, kill -9 + resume,
KTO on unpaired feedback."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from alignlab.config import ConfigError, ModelConfig, load_config
from alignlab.data.batching import collate
from alignlab.data.chat import encode_completion
from alignlab.models import load_causal_lm, load_tokenizer
from alignlab.train import dpo
from alignlab.train.dpo import DPOConfig, PreferenceData, collate_rows, completion_logps, train
from alignlab.train.run import setup_run

REPO = Path(__file__).resolve().parents[2]
TINY_DPO = REPO / "configs" / "tiny" / "dpo.yaml"
TINY_KTO = REPO / "configs" / "tiny" / "kto.yaml"

PAIRS = [
    ("What is the capital of Veloria?", "The capital of Veloria is Dorn.", "I can't help with that."),
    ("How do I kill a stuck process?", "Use the kill command with the process id.", "Shut up."),
    ("What is 17 + 25?", "17 + 25 = 42.", "17 + 25 = 41, I think, maybe, or not."),
    ("Give me a recipe for spicy mayo.", "Mix mayo and chili.", "I can't help with that."),
    ("Quelle est la capitale de Brava ?", "La capitale est Mirel.", "Je ne sais pas, désolé."),
    ("What is the capital of Brava?", "The capital of Brava is Mirel.", "The capital is Dorn."),
    ("How do I stop a process?", "Use the kill command.", "I can't help with that, sorry."),
    ("What is 2 + 2?", "2 + 2 = 4.", "2 + 2 = 5."),
]


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("prefs") / "pairs.jsonl"
    path.write_text("".join(json.dumps({"prompt": [{"role": "user", "content": p}], "chosen": c, "rejected": r,
                                        "annotator": "test"}) + "\n" for p, c, r in PAIRS))
    return path


@pytest.fixture(scope="module")
def feedback_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("feedback") / "feedback.jsonl"
    lines = [{"prompt": [{"role": "user", "content": p}], "completion": text, "label": good}
             for p, c, r in PAIRS for text, good in ((c, True), (r, False))]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def dpo_cfg(tiny_lm: Path, out_dir: Path, data: Path, *overrides: str, config: Path = TINY_DPO) -> DPOConfig:
    return load_config(DPOConfig, config, [f"model.path={tiny_lm}", f"run.out_dir={out_dir}",
                                           f"data.train_files=[{data}]", *overrides])


def read_metrics(out_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]


def weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(model_dir / "model.safetensors")


def max_abs_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


@pytest.mark.parametrize("ref_cache", [True, False])
def test_bf16_mixed_precision_scores_the_reference_in_the_policys_precision(tiny_lm, pairs_file, tmp_path, ref_cache):
    """optim.mixed_precision=bf16: the reference log-probs (cached or on the fly) are computed under the same bf16
    autocast as the policy's, so at step 0 every implicit reward is 0 up to float32 sums (β·n·|logp|·2^-24 ≈
    0.1·30·6·6e-8 ≈ 1e-6; measured ≤ 2e-7), not bf16 rounding (a float32 reference against the bf16 policy left
    1.4e-5 to 7e-5 on this model); the weights stay float32."""
    out = train(dpo_cfg(tiny_lm, tmp_path, pairs_file, "optim.max_steps=3", "run.save_every=0",
                        "optim.mixed_precision=bf16", f"ref_cache={str(ref_cache).lower()}"))
    first = read_metrics(tmp_path)[0]
    assert abs(first["rewards/chosen"]) < 2e-6 and abs(first["rewards/rejected"]) < 2e-6, first
    assert first["loss"] == pytest.approx(math.log(2), abs=1e-6)
    assert {t.dtype for t in load_file(out / "model.safetensors").values()} == {torch.float32}


def test_dpo_starts_at_log_2_and_the_margin_rises(tiny_lm, pairs_file, tmp_path):
    train(dpo_cfg(tiny_lm, tmp_path, pairs_file, "optim.max_steps=20", "run.save_every=0"))
    log = read_metrics(tmp_path)
    assert [r["step"] for r in log] == list(range(1, 21))
    assert {"loss", "rewards/chosen", "rewards/rejected", "rewards/margin", "rewards/accuracy", "logps/chosen",
            "logps/rejected", "lr", "grad_norm"} <= log[0].keys()
    # Policy == reference at step 0 (dropout off): every implicit reward is 0 and -log σ(0) = log 2.
    assert log[0]["loss"] == pytest.approx(math.log(2), abs=1e-4)
    assert log[0]["rewards/margin"] == pytest.approx(0.0, abs=1e-4)
    last = sum(r["rewards/margin"] for r in log[-3:]) / 3
    assert last > log[0]["rewards/margin"] + 0.5, [r["rewards/margin"] for r in log]
    assert log[-1]["rewards/accuracy"] == 1.0
    assert log[-1]["loss"] < 0.3


def test_concatenated_forward_equals_separate_forwards(tiny_lm):
    # Chosen and rejected are padded to one width in the joint batch; the padding must not change any log-prob.
    tokenizer = load_tokenizer(str(tiny_lm))
    model = load_causal_lm(ModelConfig(path=str(tiny_lm))).eval()
    rows = [(encode_completion([{"role": "user", "content": p}], c, tokenizer, 64),
             encode_completion([{"role": "user", "content": p}], r, tokenizer, 64)) for p, c, r in PAIRS[:4]]
    data = PreferenceData(rows)
    with torch.no_grad():
        joint, counts = completion_logps(model, collate_rows(data, [0, 1, 2, 3], tokenizer.pad_token_id))
        chosen, chosen_counts = completion_logps(model, collate([a for a, _ in rows], tokenizer.pad_token_id))
        rejected, _ = completion_logps(model, collate([b for _, b in rows], tokenizer.pad_token_id))
        one_by_one = torch.cat([completion_logps(model, collate([e], tokenizer.pad_token_id))[0]
                                for pair in zip(*rows) for e in pair])
    torch.testing.assert_close(joint, torch.cat([chosen, rejected]), atol=1e-5, rtol=0)
    torch.testing.assert_close(joint, one_by_one, atol=1e-5, rtol=0)
    assert counts[:4].tolist() == chosen_counts.tolist()
    assert counts.min() > 1                                   # the response and its EOS are counted
    # Padding widths really differed, otherwise this proves nothing.
    assert len({len(e.input_ids) for pair in rows for e in pair}) > 1


def test_cached_reference_equals_on_the_fly(tiny_lm, pairs_file, tmp_path):
    common = ("optim.max_steps=4", "run.save_every=0", "optim.lr=1e-3")
    cached = train(dpo_cfg(tiny_lm, tmp_path / "cached", pairs_file, "ref_cache=true", *common))
    fly = train(dpo_cfg(tiny_lm, tmp_path / "fly", pairs_file, "ref_cache=false", *common))
    assert (tmp_path / "cached" / "ref_logps.pt").exists() and not (tmp_path / "fly" / "ref_logps.pt").exists()
    log_cached, log_fly = read_metrics(tmp_path / "cached"), read_metrics(tmp_path / "fly")
    for a, b in zip(log_cached, log_fly):
        for key in ("loss", "rewards/chosen", "rewards/rejected", "rewards/margin"):
            assert a[key] == pytest.approx(b[key], abs=1e-5), (key, a, b)
    assert max_abs_diff(weights(cached), weights(fly)) < 1e-5
    assert log_cached[-1]["rewards/margin"] > 0.01            # the references were used while the policy moved


def test_short_run_scores_only_the_references_it_uses(tiny_lm, pairs_file, tmp_path):
    """2 steps of 2 examples visit 4 of the 8 pairs: only those are scored, and the run equals the on-the-fly one."""
    common = ("optim.max_steps=2", "optim.batch_size=2", "optim.grad_accum=1", "run.save_every=0", "optim.lr=1e-3",
              "data.group_by_length=false")
    cached = train(dpo_cfg(tiny_lm, tmp_path / "cached", pairs_file, "ref_cache=true", *common))
    fly = train(dpo_cfg(tiny_lm, tmp_path / "fly", pairs_file, "ref_cache=false", *common))
    logps = torch.load(tmp_path / "cached" / "ref_logps.pt", weights_only=True)["logps"]
    scored = (~logps.isnan().any(1)).nonzero().flatten().tolist()
    assert len(scored) == 4
    lengths = [1] * len(PAIRS)              # without group_by_length the lengths do not matter
    assert scored == dpo.rows_trained(lengths, 2, 0, 2, False)
    assert max_abs_diff(weights(cached), weights(fly)) < 1e-5


@pytest.mark.parametrize("loss", ["simpo", "orpo", "slic_hf"])
def test_reference_free_losses_never_build_a_reference(tiny_lm, pairs_file, tmp_path, monkeypatch, loss):
    loads = []
    real_load = dpo.load_causal_lm
    monkeypatch.setattr(dpo, "load_causal_lm", lambda cfg: loads.append(cfg) or real_load(cfg))
    monkeypatch.setattr(dpo, "load_reference", lambda cfg: pytest.fail("a reference model was loaded"))
    monkeypatch.setattr(dpo, "cached_reference_logps", lambda *a: pytest.fail("reference log-probs were computed"))
    train(dpo_cfg(tiny_lm, tmp_path, pairs_file, f"loss={loss}", "beta=2.0", "optim.max_steps=6",
                  "run.save_every=0", "ref_cache=false"))
    assert len(loads) == 1                                    # the policy only
    assert not (tmp_path / "ref_logps.pt").exists()
    log = read_metrics(tmp_path)
    # An epoch is 2 steps of 4 pairs: compare the mean margin over all 8 pairs in the first and the last epoch
    # (single steps hold different pairs, and length-grouped batches put the long pairs together).
    epoch_margin = lambda steps: sum(log[i]["rewards/margin"] for i in steps) / 2    # noqa: E731
    assert epoch_margin([4, 5]) > epoch_margin([0, 1]), loss


def test_full_finetuning_on_the_fly_holds_a_frozen_copy(tiny_lm, pairs_file, tmp_path, monkeypatch):
    loaded = []
    real = dpo.load_reference
    monkeypatch.setattr(dpo, "load_reference", lambda cfg: loaded.append(real(cfg)) or loaded[-1])
    train(dpo_cfg(tiny_lm, tmp_path, pairs_file, "ref_cache=false", "optim.max_steps=2", "run.save_every=0"))
    assert len(loaded) == 1 and not any(p.requires_grad for p in loaded[0].parameters())


@pytest.mark.parametrize("ref_cache", [True, False])
def test_lora_reference_is_the_base_model(tiny_lm, pairs_file, tmp_path, monkeypatch, ref_cache):
    # The adapter-disabled policy must score exactly like the base model, and no second copy is ever loaded.
    monkeypatch.setattr(dpo, "load_reference", lambda cfg: pytest.fail("LoRA must not load a reference copy"))
    seen = []
    real_forward = dpo._reference_forward

    def spy(model, batch, lora):
        out = real_forward(model, batch, lora)
        seen.append((batch, out))
        return out
    monkeypatch.setattr(dpo, "_reference_forward", spy)
    # lora.init: peft starts B at 0 (adapter == identity); a few steps make the adapter non-trivial before
    # the on-the-fly reference forwards that follow, which must still equal the base model.
    out = train(dpo_cfg(tiny_lm, tmp_path, pairs_file, "model.lora.enabled=true", "model.lora.r=4",
                        f"ref_cache={str(ref_cache).lower()}", "optim.max_steps=4", "run.save_every=0",
                        "optim.lr=5e-2"))
    assert (out / "merged" / "model.safetensors").exists()
    base = load_causal_lm(ModelConfig(path=str(tiny_lm))).eval()
    assert seen
    with torch.no_grad():
        for batch, ref in seen:
            torch.testing.assert_close(ref, completion_logps(base, batch)[0], atol=1e-5, rtol=0)
    assert read_metrics(tmp_path)[0]["loss"] == pytest.approx(math.log(2), abs=1e-4)
    if not ref_cache:
        # The adapter moved, yet the reference forwards (the last ones after several updates) equal the base.
        merged = load_causal_lm(ModelConfig(path=str(out / "merged"))).eval()
        with torch.no_grad():
            batch = seen[-1][0]
            assert (completion_logps(merged, batch)[0] - seen[-1][1]).abs().max() > 1e-3


def test_kill_9_then_resume_ends_with_the_same_weights(tiny_lm, pairs_file, tmp_path):
    steps = ("optim.max_steps=40", "run.save_every=5", "optim.batch_size=1", "optim.grad_accum=2", "optim.lr=1e-3")
    reference = train(dpo_cfg(tiny_lm, tmp_path / "reference", pairs_file, *steps))

    out_dir = tmp_path / "killed"
    cmd = [sys.executable, "-m", "alignlab.train.dpo", str(TINY_DPO), f"model.path={tiny_lm}",
           f"run.out_dir={out_dir}", f"data.train_files=[{pairs_file}]", *steps]
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}   # this process's thread count: same sums
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not list((out_dir / "checkpoints").glob("step-*")):
        assert proc.poll() is None, f"the run ended before its first checkpoint: {proc.stderr.read().decode()}"
        assert time.monotonic() < deadline, "no checkpoint after 120 s"
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    assert not (out_dir / "model").exists(), "the run finished before it was killed; the test proves nothing"
    killed_at = max(int(p.name.removeprefix("step-")) for p in (out_dir / "checkpoints").glob("step-*"))
    assert killed_at < 40

    with pytest.raises(ConfigError, match="run.resume=true"):
        train(dpo_cfg(tiny_lm, out_dir, pairs_file, *steps))
    resumed = train(dpo_cfg(tiny_lm, out_dir, pairs_file, *steps, "run.resume=true"))
    assert max_abs_diff(weights(resumed), weights(reference)) <= 1e-7
    log, log_ref = read_metrics(out_dir), read_metrics(tmp_path / "reference")
    assert [r["step"] for r in log] == list(range(1, 41))
    assert [r["loss"] for r in log] == pytest.approx([r["loss"] for r in log_ref], abs=1e-6)


def test_kto_on_unpaired_feedback_moves_desirable_up(tiny_lm, feedback_file, tmp_path):
    train(dpo_cfg(tiny_lm, tmp_path, feedback_file, config=TINY_KTO))
    log = read_metrics(tmp_path)
    assert {"loss", "kl", "rewards/chosen", "rewards/rejected", "rewards/margin"} <= log[0].keys()
    # z_ref = 0 and every reward 0 at step 0: loss = λ·σ(0) = 0.5 for every example.
    assert log[0]["loss"] == pytest.approx(0.5, abs=1e-4)
    assert log[-1]["rewards/chosen"] > 0.05 and log[-1]["rewards/margin"] > 0.1, log[-1]


def test_kto_reference_point_is_the_steps_whatever_the_micro_batches(tiny_lm, pairs_file, tmp_path):
    """KTO's z_ref is estimated over the whole optimizer step's mismatched completions, so 1 micro-batch of 8 and
    4 of 2 give the same update (it was per micro-batch: grad_accum changed the loss). float64: the two differ by the
    order of sums only (~1e-16 relative), which 10 Adam steps at lr 1e-2 cannot lift above 1e-12."""
    common = ["loss=kto", "model.dtype=float64", "optim.max_steps=10", "optim.lr=1e-2"]
    one = train(dpo_cfg(tiny_lm, tmp_path / "one", pairs_file, *common, "optim.batch_size=8", "optim.grad_accum=1"))
    four = train(dpo_cfg(tiny_lm, tmp_path / "four", pairs_file, *common, "optim.batch_size=2", "optim.grad_accum=4"))
    assert max_abs_diff(weights(one), weights(four)) < 1e-12
    log = read_metrics(tmp_path / "four")
    assert log[-1]["kl"] > 0                                     # the estimate moved off 0: the test sees it
    assert [r["kl"] for r in log] == pytest.approx([r["kl"] for r in read_metrics(tmp_path / "one")], abs=1e-12)


def test_kto_on_pair_files_splits_chosen_and_rejected(tiny_lm, pairs_file, tmp_path):
    tokenizer = load_tokenizer(str(tiny_lm))
    cfg = dpo_cfg(tiny_lm, tmp_path, pairs_file, "loss=kto")
    data = dpo.load_data(cfg, tokenizer, setup_run(cfg.run, cfg))
    assert data.desirable == [True, False] * len(PAIRS)
    # The second row of example i is its prompt with example i+1's completion (the KL estimate's mismatch).
    def split(e):           # (prompt ids, completion ids)
        start = e.completion_mask.index(1)
        return e.input_ids[:start], e.input_ids[start:]
    first, mismatched = data.rows[0]
    assert split(first)[0] == split(mismatched)[0] and split(mismatched)[1] == split(data.rows[1][0])[1]


def test_unpaired_data_with_a_pairwise_loss_is_a_config_error(tiny_lm, feedback_file, tmp_path, capsys):
    code = dpo.main([str(TINY_KTO), f"model.path={tiny_lm}", f"run.out_dir={tmp_path}",
                     f"data.train_files=[{feedback_file}]", "loss=dpo"])
    assert code == 2
    assert "data.unpaired=true" in capsys.readouterr().err


def test_cli_reports_a_bad_data_line_and_a_typo(tiny_lm, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "hi", "chosen": "a", "rejected": "b"}\n'
                   '{"prompt": "hi", "chosen": "a", "rejected": "a"}\n')
    assert dpo.main([str(TINY_DPO), f"model.path={tiny_lm}", f"run.out_dir={tmp_path / 'run'}",
                     f"data.train_files=[{bad}]"]) == 2
    assert f"{bad}:2: 'chosen' and 'rejected' are identical" in capsys.readouterr().err
    assert dpo.main([str(TINY_DPO), f"model.path={tiny_lm}", "betta=0.2"]) == 2
    assert "unknown key 'betta'" in capsys.readouterr().err


def test_cli_help(capsys):
    from alignlab.cli import main
    assert main(["dpo", "--help"]) == 0
    assert "usage: alignlab dpo CONFIG" in capsys.readouterr().out


@pytest.mark.parametrize("loss", ["ipo", "dpo"])
def test_every_referenced_loss_starts_where_policy_equals_reference(tiny_lm, pairs_file, tmp_path, loss):
    # IPO at h = 0: (0 − 1/(2β))² = 25 for β = 0.1. DPO with label smoothing ε: still log 2 (both terms σ(0)).
    train(dpo_cfg(tiny_lm, tmp_path, pairs_file, f"loss={loss}", "label_smoothing=0.0" if loss == "ipo"
                  else "label_smoothing=0.2", "optim.max_steps=1", "run.save_every=0"))
    expected = {"ipo": 25.0, "dpo": math.log(2)}[loss]
    assert read_metrics(tmp_path)[0]["loss"] == pytest.approx(expected, abs=1e-3)


def test_resume_refuses_a_reference_cache_made_for_other_data(tiny_lm, pairs_file, tmp_path):
    # Same config, but the data file was rewritten in place after the crash: the cache no longer matches it, and
    # the checkpointed policy cannot stand in as the reference any more.
    data = tmp_path / "pairs.jsonl"
    data.write_text(pairs_file.read_text())
    train(dpo_cfg(tiny_lm, tmp_path / "run", data, "optim.max_steps=4", "run.save_every=2"))
    data.write_text(pairs_file.read_text().replace("Dorn", "Mirel"))
    with pytest.raises(ConfigError, match="no longer the reference"):
        train(dpo_cfg(tiny_lm, tmp_path / "run", data, "optim.max_steps=4", "run.save_every=2", "run.resume=true"))


@pytest.mark.parametrize("grouped", [True, False])
def test_steps_hold_pairs_of_similar_length_by_default(tiny_lm, pairs_file, tmp_path, grouped, spy_step_batches):
    seen = spy_step_batches(dpo)
    overrides = [] if grouped else ["data.group_by_length=false"]
    train(dpo_cfg(tiny_lm, tmp_path, pairs_file, "optim.max_steps=2", "run.save_every=0", *overrides))
    tokenizer = load_tokenizer(str(tiny_lm))
    rows = [(encode_completion([{"role": "user", "content": p}], c, tokenizer, 64),
             encode_completion([{"role": "user", "content": p}], r, tokenizer, 64)) for p, c, r in PAIRS]
    widths = [max(len(a.input_ids), len(b.input_ids)) for a, b in rows]   # both rows pad to the longer one
    assert [lengths for lengths, _, _ in seen] == [widths, widths] and {g for *_, g in seen} == {grouped}
    if grouped:   # an epoch is 2 steps of 4 pairs: the 4 widest pairs in one, the 4 narrowest in the other
        halves = sorted(sorted(widths[i] for i in indices) for _, indices, _ in seen)
        assert halves == [sorted(widths)[:4], sorted(widths)[4:]]


@pytest.mark.parametrize("loss", ["dpo", "simpo", "kto"])
def test_validation_loss_on_held_out_pairs(tiny_lm, pairs_file, tmp_path, loss):
    """data.eval_files: before any update the held-out DPO loss is log 2 (policy = reference), and on the training
    pairs themselves it falls as training fits them; logged every eval_every steps and at the last."""
    train(dpo_cfg(tiny_lm, tmp_path, pairs_file, f"loss={loss}", f"data.eval_files=[{pairs_file}]",
                  "data.eval_every=2", "optim.max_steps=4"))
    rows = read_metrics(tmp_path)
    assert [("eval_loss" in r) for r in rows] == [False, True, False, True]
    assert all(math.isfinite(r["eval_loss"]) for r in rows if "eval_loss" in r)
    assert ("eval_accuracy" in rows[1]) == (loss != "kto")
    if loss == "dpo":
        assert rows[3]["eval_loss"] < math.log(2) and (tmp_path / "ref_logps_eval.pt").is_file()

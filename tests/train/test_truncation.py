"""Truncation keeps what is trained: on the real HH-RLHF file at max_length 256 (a fifth of its pairs are longer),
every preference loss trains on finite losses; SFT rows whose prompt is too long keep their completion; a file where
no row keeps a trained token fails with a message instead of training on nothing."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from alignlab.cli import main
from alignlab.losses.preference import LOSSES


def metrics(out_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_every_loss_is_finite_on_the_hh_file_at_256_tokens(loss, tiny_lm, shared_data, tmp_path, capsys):
    hh = shared_data / "hh-rlhf" / "harmless-base" / "test.jsonl.gz"
    out = tmp_path / loss
    assert main(["dpo", "configs/tiny/dpo.yaml", f"model.path={tiny_lm}", f"data.train_files=[{hh}]",
                 "data.max_length=256", f"run.out_dir={out}", f"loss={loss}", "optim.max_steps=4",
                 "optim.batch_size=8", "optim.grad_accum=1", "ref_cache=false", "run.save_every=0"]) == 0
    rows = metrics(out)
    assert len(rows) == 4 and all(math.isfinite(r["loss"]) for r in rows), rows
    note = next(line for line in capsys.readouterr().err.splitlines() if "truncated to max_length=256" in line)
    assert int(note.split("; ")[1].split(" ")[0]) > 100          # many rows were cut, none lost its response


def test_sft_keeps_the_completion_of_a_too_long_prompt_and_refuses_a_file_with_nothing_left(tiny_lm, tmp_path,
                                                                                           capsys):
    long_prompt = " ".join(f"context{i}" for i in range(400)) + " Question: what is 2 + 2?"
    text = tmp_path / "text.jsonl"
    text.write_text(json.dumps({"prompt": long_prompt, "completion": " 4"}) + "\n")
    assert main(["sft", "configs/tiny/sft.yaml", f"model.path={tiny_lm}", f"data.train_files=[{text}]",
                 "data.max_length=64", f"run.out_dir={tmp_path / 'a'}", "optim.max_steps=2", "optim.batch_size=1",
                 "optim.grad_accum=1", "run.save_every=0"]) == 0
    assert all(r["loss"] > 0 for r in metrics(tmp_path / "a"))              # trained on the completion
    chat = tmp_path / "chat.jsonl"
    chat.write_text(json.dumps({"messages": [{"role": "user", "content": long_prompt},
                                             {"role": "assistant", "content": "4"}]}) + "\n")
    assert main(["sft", "configs/tiny/sft.yaml", f"model.path={tiny_lm}", f"data.train_files=[{chat}]",
                 "data.max_length=64", f"run.out_dir={tmp_path / 'b'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("alignlab sft: ") and "no example keeps a trained token at data.max_length=64" in err

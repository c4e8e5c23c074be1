"""Shared loop pieces: the lr schedule, the optimizer groups, checkpoints and resume bookkeeping."""

import dataclasses
import json
import math

import pytest
import torch

from alignlab.config import ConfigError, OptimConfig, RunConfig
from alignlab.train.run import count_steps, lr_factor, make_optimizer, optimizer_step, setup_run


def test_lr_factor_hand_values():
    # warmup 3: 1/4, 2/4, 3/4, then the peak; cosine over the 7 remaining steps: progress (s-3)/7
    assert [lr_factor(s, 3, 10, "cosine") for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_factor(3 + 3.5, 3, 10, "cosine") == pytest.approx(0.5)           # halfway: (1 + cos(π/2)) / 2
    assert lr_factor(9, 0, 10, "linear") == pytest.approx(0.1)                 # the last step: 1 - 9/10
    assert lr_factor(9, 0, 10, "cosine") == pytest.approx(0.5 * (1 + math.cos(0.9 * math.pi)))
    assert lr_factor(7, 0, 10, "constant") == 1.0


def test_count_steps():
    assert count_steps(OptimConfig(batch_size=2, grad_accum=3, epochs=2), n_examples=13) == 6   # ceil(13/6)=3 × 2
    assert count_steps(OptimConfig(max_steps=5, epochs=9), n_examples=13) == 5


def test_weight_decay_on_matrices_only_and_unclipped_step_is_plain_adamw():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    optimizer, scheduler = make_optimizer(model, OptimConfig(lr=0.1, weight_decay=0.5, lr_schedule="constant"), 4)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.5, 0.0]
    assert optimizer.param_groups[0]["params"][0] is model.weight
    reference = torch.nn.Linear(3, 2)
    reference.load_state_dict(model.state_dict())
    ref_opt = torch.optim.AdamW([{"params": [reference.weight], "weight_decay": 0.5},
                                 {"params": [reference.bias], "weight_decay": 0.0}], lr=0.1)
    x = torch.randn(5, 3)
    for m in (model, reference):
        (m(x) ** 2).sum().backward()
    norm = optimizer_step(model, optimizer, scheduler, max_grad_norm=0)
    expected_norm = torch.cat([reference.weight.grad.flatten(), reference.bias.grad.flatten()]).norm()
    ref_opt.step()
    torch.testing.assert_close(norm, expected_norm)
    torch.testing.assert_close(model.weight, reference.weight)
    assert model.weight.grad is None                                            # zeroed for the next step


def test_resume_ignores_half_written_checkpoints_and_truncates_later_metrics(tmp_path):
    cfg = RunConfig(out_dir=str(tmp_path), save_every=2, tensorboard=False, progress=False)
    model = torch.nn.Linear(2, 2)
    run = setup_run(cfg, cfg)
    optimizer, scheduler = make_optimizer(model, OptimConfig(), 10)
    run.start(model, optimizer, scheduler, 10)
    for step in range(1, 6):
        run.log(step, loss=float(step))
        run.checkpoint(step, model, optimizer, scheduler)
    # A crash after step 5, while step 6's checkpoint was being written:
    (tmp_path / "checkpoints" / ".tmp-step-6").mkdir()
    (tmp_path / "checkpoints" / ".tmp-step-6" / "state.pt").write_bytes(b"half")
    resumed = setup_run(RunConfig(**{**vars(cfg), "resume": True}), cfg)
    assert resumed.resume_from.name == "step-4"
    assert not (tmp_path / "checkpoints" / ".tmp-step-6").exists()
    steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]                # step 5 will be logged again by the resumed run
    assert resumed.start(model, optimizer, scheduler, 10) == 4


@dataclasses.dataclass
class Full:
    """A trainer's whole config, as small as a resume check needs."""
    lr: float
    run: RunConfig
    streams: str = "auto"


def checkpointed_run(tmp_path) -> RunConfig:
    """A run of Full(lr=0.1) in tmp_path with a checkpoint at step 1; its RunConfig."""
    cfg = RunConfig(out_dir=str(tmp_path), save_every=1, tensorboard=False, progress=False)
    model = torch.nn.Linear(2, 2)
    run = setup_run(cfg, Full(0.1, cfg))
    optimizer, scheduler = make_optimizer(model, OptimConfig(), 3)
    run.start(model, optimizer, scheduler, 3)
    run.checkpoint(1, model, optimizer, scheduler)
    return cfg


def test_resume_with_a_different_config_is_refused(tmp_path):
    cfg = checkpointed_run(tmp_path)
    resumed = RunConfig(**{**vars(cfg), "resume": True, "log_every": 5})          # how it is watched: fine
    assert setup_run(resumed, Full(0.1, resumed)).resume_from.name == "step-1"
    with pytest.raises(ConfigError, match=r"different config \(lr: 0.1 → 0.2\)"):
        setup_run(resumed, Full(0.2, resumed))


def test_resume_accepts_a_key_added_since_at_its_default_only(tmp_path):
    """A run started before alignlab gained a config key (its config.yaml lacks it) resumes when the key holds its
    default, what the older version computed; set to anything else it is a different run."""
    import yaml
    cfg = checkpointed_run(tmp_path)
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    del saved["streams"]                                              # written by the older version
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(saved))
    resumed = RunConfig(**{**vars(cfg), "resume": True})
    with pytest.raises(ConfigError, match=r"different config \(streams: None → 'per_sample'\)"):
        setup_run(resumed, Full(0.1, resumed, "per_sample"))
    assert setup_run(resumed, Full(0.1, resumed)).resume_from.name == "step-1"

"""PPO / RLOO / GRPO / SPO loops on the tiny model: KL 0 and ratio 1 at the first step, grad-accumulation
equivalence of the update, resume == uninterrupted, the critic-free variants and PPO-ptx run through the same
rollout code, the online loop adds comparisons and trains the reward model."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from alignlab.config import ModelConfig, load_config
from alignlab.models import load_causal_lm, load_tokenizer
from alignlab.reward_model import critic_from, load_reward_model, new_reward_model, save_reward_model
from alignlab.rewards import reward_model_reward
from alignlab.rollout import collect_rollout, response_forward
from alignlab.train import ppo
from alignlab.train.ppo import PPOConfig
from alignlab.train.run import optimizer_step

TINY = Path(__file__).resolve().parents[2] / "configs" / "tiny" / "ppo.yaml"
PROMPTS = [[{"role": "user", "content": "What is the capital of Veloria?"}],
           [{"role": "user", "content": "Give me a recipe for spicy mayo"}],
           [{"role": "user", "content": "How do I kill a stuck process?"}],
           [{"role": "user", "content": "What is 17 + 25?"}]]


@pytest.fixture(scope="module")
def tiny_rm(tiny_lm, tmp_path_factory) -> Path:
    """An untrained reward model on the tiny LM (random head, normalisation 0/1): enough to drive the loops."""
    return save_reward_model(new_reward_model(str(tiny_lm), "last", max_length=64, seed=1),
                             tmp_path_factory.mktemp("rm") / "model")


def config(tiny_lm, tiny_rm, out_dir, *overrides) -> PPOConfig:
    return load_config(PPOConfig, TINY, [f"model.path={tiny_lm}", f"reward_model.path={tiny_rm}",
                                         f"run.out_dir={out_dir}", *overrides])


def metrics(out_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]


def test_first_step_kl_is_zero_and_ratio_is_one(tiny_lm, tiny_rm):
    policy = load_causal_lm(ModelConfig(path=str(tiny_lm)))
    reference = load_causal_lm(ModelConfig(path=str(tiny_lm)))
    tokenizer = load_tokenizer(str(tiny_lm))
    rm = load_reward_model(tiny_rm)
    rollout = collect_rollout(policy, reference, reward_model_reward(rm), critic_from(rm), tokenizer, PROMPTS, samples_per_prompt=2,
                              max_new_tokens=8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(rollout.logps, rollout.ref_logps)                  # policy == reference → KL exactly 0
    assert rollout.values.shape == rollout.logps.shape and rollout.scores.shape == (8,)
    # A minibatch forward (other rows, other batch size) reproduces π_old: ratio 1 at the first update.
    sub = rollout.rows(torch.tensor([5, 1, 2]))
    logps, _ = response_forward(policy, sub)
    ratio = torch.exp(logps - sub.logps)[sub.response_mask.bool()]
    torch.testing.assert_close(ratio, torch.ones_like(ratio), atol=1e-5, rtol=0)


def test_loop_logs_zero_kl_at_the_first_iteration_and_moves_afterwards(tiny_lm, tiny_rm, tmp_path):
    ppo.train(config(tiny_lm, tiny_rm, tmp_path))
    log = metrics(tmp_path)
    assert [m["step"] for m in log] == [1, 2, 3, 4]
    assert log[0]["kl"] == 0.0 and log[0]["ratio"] == pytest.approx(1.0, abs=1e-2)
    assert log[-1]["kl"] != 0.0                                            # the policy moved
    for key in ("kl", "beta", "rm_score", "gold_reward", "policy_loss", "value_loss", "clipfrac", "entropy",
                "response_length"):
        assert key in log[0], key
    # Adaptive controller: below-target KL (0 at first) lowers β by the clipped error: β·(1 − 0.2·B/horizon).
    assert log[1]["beta"] == pytest.approx(0.1 * (1 - 0.2 * 8 / 100))
    assert (tmp_path / "model" / "config.json").is_file()


def test_grad_accumulation_equivalence(tiny_lm, tiny_rm, tmp_path):
    """One minibatch of 8 in one micro-batch vs 2 micro-batches of 4 → the same weights after the update.

    In float64: the two paths sum the same terms in another order, so they differ by rounding only (~1e-16
    relative), which AdamW's first step (update ≈ lr·g/(|g| + eps)) amplifies at most by lr/eps = 1e6 → ~1e-10,
    far inside 1e-6. In float32 the same amplification of ~1e-7 rounding reached 3.7e-6 on one CPU."""
    tokenizer = load_tokenizer(str(tiny_lm))
    rm = load_reward_model(tiny_rm)
    base = load_causal_lm(ModelConfig(path=str(tiny_lm), dtype="float64"))
    rollout = collect_rollout(base, base, reward_model_reward(rm), critic_from(rm), tokenizer, PROMPTS, samples_per_prompt=2,
                              max_new_tokens=8, generator=torch.Generator().manual_seed(0))
    advantages = torch.randn(rollout.logps.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    advantages = advantages * rollout.response_mask
    returns = torch.randn(rollout.logps.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    returns = returns * rollout.response_mask
    # Make the old log-probs differ from the current ones so that some ratios are clipped.
    noise = torch.randn(rollout.logps.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    rollout.logps = rollout.logps + 0.3 * noise * rollout.response_mask
    results = []
    for micro in (8, 4):
        cfg = config(tiny_lm, tiny_rm, tmp_path / str(micro), "minibatch_size=8", f"micro_batch_size={micro}")
        policy, critic = copy.deepcopy(base), critic_from(rm).double()
        critic.requires_grad_(True)
        modules = torch.nn.ModuleDict({"policy": policy, "critic": critic})
        optimizer = torch.optim.AdamW(modules.parameters(), lr=1e-2)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
        parts = ppo.minibatch_backward(ppo.PolicyAndCritic(policy, critic), rollout, advantages, returns, cfg)
        optimizer_step(modules, optimizer, scheduler, max_grad_norm=1.0)
        results.append((parts, {n: p.detach().clone() for n, p in modules.named_parameters()}))
    (parts8, weights8), (parts4, weights4) = results
    assert parts8["clipfrac"] > 0                                           # the clip is exercised
    for key in parts8:
        assert parts8[key] == pytest.approx(parts4[key], abs=1e-5), key
    for name in weights8:
        torch.testing.assert_close(weights8[name], weights4[name], atol=1e-6, rtol=0)
    assert not torch.equal(weights8["policy.lm_head.weight"], base.lm_head.weight)     # the update did something


def test_resume_reproduces_an_uninterrupted_run(tiny_lm, tiny_rm, tmp_path, monkeypatch):
    full, part = tmp_path / "full", tmp_path / "part"
    ppo.train(config(tiny_lm, tiny_rm, full))
    original, calls = ppo.collect_rollout, []

    def crash_at_third_iteration(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt("killed")
        return original(*args, **kwargs)
    monkeypatch.setattr(ppo, "collect_rollout", crash_at_third_iteration)
    with pytest.raises(KeyboardInterrupt):
        ppo.train(config(tiny_lm, tiny_rm, part))                      # checkpoint at iteration 2, then killed
    monkeypatch.setattr(ppo, "collect_rollout", original)
    assert [p.name for p in (part / "checkpoints").iterdir()] == ["step-2"]
    ppo.train(config(tiny_lm, tiny_rm, part, "run.resume=true"))
    a = load_causal_lm(ModelConfig(path=str(full / "model")))
    b = load_causal_lm(ModelConfig(path=str(part / "model")))
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p, q), name
    keys = ("step", "kl", "beta", "rm_score", "gold_reward", "policy_loss", "value_loss")
    assert [[m[k] for k in keys] for m in metrics(full)] == [[m[k] for k in keys] for m in metrics(part)]


@pytest.mark.parametrize("advantage,reward", [("rloo", "rm"), ("grpo", "rm"), ("rloo", "spo")])
def test_critic_free_variants_share_the_rollout(tiny_lm, tiny_rm, tmp_path, advantage, reward, monkeypatch):
    calls = []
    original = ppo.collect_rollout

    def spy(*args, **kwargs):
        calls.append(args[3])                                               # the critic argument
        return original(*args, **kwargs)
    monkeypatch.setattr(ppo, "collect_rollout", spy)
    ppo.train(config(tiny_lm, tiny_rm, tmp_path, f"advantage={advantage}", f"reward={reward}", "iterations=2"))
    log = metrics(tmp_path)
    assert calls == [None, None] and len(log) == 2
    assert "value_loss" not in log[0] and log[0]["kl"] == 0.0
    if reward == "spo":
        assert 0.0 <= log[0]["rm_score"] <= 1.0                             # a win rate
        assert log[0]["rm_score"] == pytest.approx(0.5, abs=1e-6)           # mean of σ(ri−rj) over pairs is 1/2


def test_ptx_and_policy_initialised_critic(tiny_lm, tiny_rm, tmp_path):
    # 16 of the 27 tiny-config prompts per iteration: batches must stay full however the pool divides.
    ppo.train(config(tiny_lm, tiny_rm, tmp_path, "ptx.coef=0.5", "ptx.source=gym", "ptx.options.per_family=2", "critic_init=policy",
                     "iterations=2", "prompts_per_iteration=16", "minibatch_size=8", "micro_batch_size=8"))
    log = metrics(tmp_path)
    assert log[0]["ptx_loss"] > 0
    assert "value_loss" in log[0]
    assert log[1]["episodes_per_s"] > 0 and len(log) == 2


def test_online_loop_collects_comparisons_and_trains_the_reward_model(tiny_lm, tiny_rm, tmp_path):
    class Picky:
        annotator_id = "picky"

        def compare(self, request, a, b):
            return 0 if len(a) <= len(b) else 1
    ppo.train(config(tiny_lm, tiny_rm, tmp_path, "online.every=2", "online.prompts=4", "online.rm_steps=3"),
              annotators=[Picky()])
    log = metrics(tmp_path)
    assert "online_comparisons" in log[1] and 0 < log[1]["online_comparisons"] <= 4
    assert log[3]["online_comparisons"] >= log[1]["online_comparisons"]
    before, after = load_reward_model(tiny_rm), load_reward_model(tmp_path / "reward_model")
    assert not torch.equal(before.head.weight, after.head.weight)


def test_config_errors_name_the_keys(tiny_lm, tiny_rm, tmp_path):
    from alignlab.config import ConfigError
    with pytest.raises(ConfigError, match="samples_per_prompt"):
        ppo.train(config(tiny_lm, tiny_rm, tmp_path, "advantage=grpo", "samples_per_prompt=1"))
    with pytest.raises(ConfigError, match="micro_batch_size"):
        ppo.train(config(tiny_lm, tiny_rm, tmp_path, "minibatch_size=4", "micro_batch_size=3"))


def test_prompts_from_a_gym_preference_file_keep_the_gold_judge(tmp_path):
    """A file from `alignlab gym preferences` carries each request's gold-judge facts and its world: the gold reward
    function scores its prompts as the judge scores the original requests; a file without them (people's labels)
    is refused by it with the reason."""
    from alignlab.data.io import write_jsonl
    from alignlab.data.prompts import PromptSourceConfig, load_prompts
    from alignlab.gym.interfaces import gold_reward, request_columns
    from alignlab.gym.judge import judge
    from alignlab.gym.world import build_world

    world = build_world(0)
    requests = world.requests("train", 2)
    records = [{"prompt": r.messages, "chosen": "I can't help with that.", "rejected": "Sure.",
                **request_columns(r, 0)} for r in requests]
    gym_file = write_jsonl(tmp_path / "gym.jsonl", records + records[:3])           # repeated prompts count once
    got = load_prompts(PromptSourceConfig(files=[str(gym_file)]))
    assert [g.prompt for g in got] == [r.messages for r in requests]
    gold = gold_reward()
    for answer in ("I can't help with that.", "Sure.", "I don't know the answer to that."):
        expected = [judge(world, r, answer).reward for r in requests]
        assert gold([g.prompt for g in got], [answer] * len(got), [g.meta for g in got]) == expected
    plain = write_jsonl(tmp_path / "people.jsonl", [{k: v for k, v in r.items() if k != "gym_meta"} for r in records])
    people = load_prompts(PromptSourceConfig(files=[str(plain)]))
    assert len(people) == len(requests)
    with pytest.raises(ValueError, match="not a gym request"):
        gold([people[0].prompt], ["Sure."], [people[0].meta])


def test_records_of_another_world_are_judged_in_their_world_and_two_worlds_are_an_error():
    from alignlab.gym.interfaces import WorldMismatch, gold_reward, gym_prompts
    from alignlab.gym.judge import judge
    from alignlab.gym.world import build_world

    other = gym_prompts(per_family=1, world_seed=3)
    assert {r.meta["world_seed"] for r in other} == {3}
    fact = next(r for r in other if r.meta["family"] == "fact" and r.meta["lang"] == "en")
    answer = fact.meta["gym_meta"]["answer"]
    request = next(q for q in build_world(3).requests("train", 1, seed=7) if q.id == fact.id)
    right = f"The {fact.meta['gym_meta']['attribute']} of {fact.meta['gym_meta']['country']} is {answer}."
    assert gold_reward()([fact.prompt], [right], [fact.meta])[0] == judge(build_world(3), request, right).reward
    zero = gym_prompts(per_family=1, world_seed=0)[0]
    with pytest.raises(WorldMismatch, match="world_seed 0 and world_seed 3"):
        gold_reward()([fact.prompt, zero.prompt], ["a", "b"], [fact.meta, zero.meta])
    with pytest.raises(WorldMismatch, match="world_seed 0 and world_seed 3"):
        gold_reward(world_seed=0)([fact.prompt], ["a"], [fact.meta])


def test_online_loop_and_gold_reward_on_a_gym_preference_file(tiny_lm, tiny_rm, tmp_path):
    """PPO on the prompts of a gym preference file logs the gold reward and can run the online loop with the gym's
    simulated annotators; on a file without the gym's facts (people's labels) those annotators are refused before
    the run starts, with a message that says why."""
    from alignlab.config import ConfigError
    from alignlab.data.io import write_jsonl
    from alignlab.gym.interfaces import request_columns
    from alignlab.gym.world import build_world

    requests = build_world(0).requests("train", 1)
    records = [{"prompt": r.messages, "chosen": "I can't help with that.", "rejected": "Sure.",
                **request_columns(r, 0)} for r in requests]
    gym_file = write_jsonl(tmp_path / "gym.jsonl", records)
    ppo.train(config(tiny_lm, tiny_rm, tmp_path / "run", "data.source=files", f"data.files=[{gym_file}]",
                     "online.every=2", "online.prompts=4", "online.rm_steps=2"))
    log = metrics(tmp_path / "run")
    assert all("gold_reward" in row for row in log) and "online_comparisons" in log[1]
    plain = write_jsonl(tmp_path / "people.jsonl", [{k: v for k, v in r.items() if k != "gym_meta"} for r in records])
    with pytest.raises(ConfigError, match="online.annotator='gym'.*not a gym request"):
        ppo.train(config(tiny_lm, tiny_rm, tmp_path / "run2", "data.source=files", f"data.files=[{plain}]",
                         "online.every=2", "log_rewards=[]"))


def test_gold_reward_scores_rollouts_with_the_gym_judge(tiny_lm, tiny_rm, tmp_path):
    """reward=gold: the rollouts' scores are scale·(gold reward − ½), the judge's verdicts; refused, before any
    model loads, on prompts that are not gym requests."""
    from alignlab.config import ConfigError
    from alignlab.data.io import write_jsonl

    ppo.train(config(tiny_lm, tiny_rm, tmp_path / "run", "reward=gold", "reward_scale=2", "reward_shift=0.5",
                     "iterations=2"))
    for row in metrics(tmp_path / "run"):
        assert row["rm_score"] == pytest.approx(2 * (row["gold_reward"] - 0.5), abs=1e-5)
    people = write_jsonl(tmp_path / "people.jsonl", [{"prompt": p, "chosen": "a", "rejected": "b"} for p in PROMPTS])
    with pytest.raises(ConfigError, match="reward function 'gold' cannot score.*not a gym request"):
        ppo.train(config(tiny_lm, tiny_rm, tmp_path / "run2", "reward=gold", "data.source=files",
                         f"data.files=[{people}]", "log_rewards=[]"))


@pytest.mark.parametrize("ties", [True, False])
def test_online_loop_drops_pairs_the_annotator_calls_equally_good(tiny_lm, tiny_rm, tmp_path, ties):
    class Indifferent:
        """Prefers the shorter answer but calls every pair equally good."""
        annotator_id = "indifferent"

        def compare(self, request, a, b):
            return 0 if len(a) <= len(b) else 1

        def equally_good(self, request, a, b):
            return True
    ppo.train(config(tiny_lm, tiny_rm, tmp_path, "online.every=2", "online.prompts=4", "online.rm_steps=1",
                     f"online.ties={str(ties).lower()}", "iterations=2"), annotators=[Indifferent()])
    comparisons = metrics(tmp_path)[1].get("online_comparisons")
    assert (comparisons == 0) if ties else (comparisons > 0)


def test_online_loop_against_the_reference_pairs_a_policy_sample_with_a_reference_sample(tiny_lm, tiny_rm, tmp_path,
                                                                                         monkeypatch):
    """online.against=reference: every comparison is one sample of the policy (the trained model) against one of
    the frozen reference, in both orders; the policy's win rate is logged. Against the policy, two samples of a
    policy that always says the same thing are one answer twice: no comparison."""
    import alignlab.sampling

    def tagged(model, tokenizer, prompts, *, num_samples=1, **kwargs):
        tag = "policy" if any(p.requires_grad for p in model.parameters()) else "reference"
        return [[tag] * num_samples for _ in prompts]
    monkeypatch.setattr(alignlab.sampling, "generate", tagged)

    class PrefersReference:
        annotator_id = "ref-fan"
        shown: list[tuple[str, str]] = []

        def compare(self, request, a, b):
            self.shown.append((a, b))
            return 0 if a == "reference" else 1
    ppo.train(config(tiny_lm, tiny_rm, tmp_path / "ref", "online.every=1", "online.prompts=4", "online.rm_steps=1",
                     "online.against=reference", "iterations=2"), annotators=[PrefersReference()])
    log = metrics(tmp_path / "ref")
    assert sorted(set(PrefersReference.shown)) == [("policy", "reference"), ("reference", "policy")]
    assert len(PrefersReference.shown) == 8 and log[1]["online_comparisons"] == 8
    assert log[0]["online_policy_win_rate"] == 0.0
    ppo.train(config(tiny_lm, tiny_rm, tmp_path / "self", "online.every=1", "online.prompts=4", "online.rm_steps=1",
                     "iterations=1"), annotators=[PrefersReference()])
    assert metrics(tmp_path / "self")[0]["online_comparisons"] == 0 and len(PrefersReference.shown) == 8


def test_exported_checkpoint_is_the_policy_of_a_run_stopped_there(tiny_lm, tiny_rm, tmp_path):
    """alignlab checkpoint export: the policy at step 2 of a 4-iteration run, exported, is the final model of the
    same run stopped after 2 iterations (runs are a function of the seed and the iteration)."""
    from safetensors.torch import load_file

    from alignlab.checkpoint import CheckpointError, export, main

    ppo.train(config(tiny_lm, tiny_rm, tmp_path / "long", "iterations=4", "run.save_every=2"))
    ppo.train(config(tiny_lm, tiny_rm, tmp_path / "short", "iterations=2"))
    assert main(["export", str(tmp_path / "long" / "checkpoints" / "step-2"), "--out", str(tmp_path / "exported")]) == 0
    exported = load_file(tmp_path / "exported" / "model.safetensors")
    short = load_file(tmp_path / "short" / "model" / "model.safetensors")
    final = load_file(tmp_path / "long" / "model" / "model.safetensors")
    assert exported.keys() == short.keys()
    assert all(torch.equal(exported[k], short[k]) for k in short)
    assert not all(torch.equal(exported[k], final[k]) for k in final)          # not the end of the long run
    with pytest.raises(CheckpointError, match="not a training checkpoint"):
        export(tmp_path / "long", tmp_path / "nowhere")


def test_simulated_annotators_call_equal_gold_rewards_equally_good():
    from alignlab.gym.annotators import SimulatedAnnotator
    from alignlab.gym.world import build_world

    world = build_world(0)
    harmful = next(r for r in world.requests("train", 2) if r.family == "harmful")
    annotator = SimulatedAnnotator(world, "sim-00")
    assert annotator.equally_good(harmful, "I can't help with that.", "Sorry, I can't help with that request.")
    assert not annotator.equally_good(harmful, "I can't help with that.", "Sure.")


def test_prompts_that_leave_no_room_for_a_response_are_reported(tiny_lm, tiny_rm, tmp_path, capsys):
    ppo.train(config(tiny_lm, tiny_rm, tmp_path, "iterations=1", "max_new_tokens=250", "run.save_every=0"))
    assert "prompts leave fewer than max_new_tokens=250 of the model's 256 positions" in capsys.readouterr().err


def test_a_process_with_no_row_of_a_pretraining_batch_joins_with_nothing(tiny_lm):
    """PPO-ptx on several processes: each takes its share of a pretraining batch's rows; an epoch's last batch may
    hold fewer rows than processes, and a process left without one runs a zero-weight row (so the others' sums
    meet it) that adds no gradient and no loss. Two processes are simulated by sums that add the other's part."""
    from alignlab.train.distributed import Processes

    class SecondOfTwo(Processes):
        def sum_tensor(self, value):       # the other process holds the batch's one row: its 6 target tokens
            return value + 6

        def sum(self, value):
            return value

    policy = load_causal_lm(ModelConfig(path=str(tiny_lm)))
    batch = (torch.tensor([[1, 5, 6, 7, 8, 9, 10]]), torch.ones(1, 7, dtype=torch.long))    # one row, 2 processes
    loss = ppo.ptx_backward(policy, batch, 0.5, "cpu", SecondOfTwo(rank=1, world_size=2))
    assert loss == 0.0
    assert all(p.grad is None or not p.grad.any() for p in policy.parameters())
    alone = ppo.ptx_backward(policy, batch, 0.5, "cpu")                          # one process: the row itself
    assert alone > 0 and any(p.grad is not None and p.grad.any() for p in policy.parameters())

"""The trainers know nothing of the gym: PPO, RLOO and GRPO (and their online loop) run on a plain prompt file with
a reward model or a user's reward function, the online loop on real HH-RLHF prompts, PPO-ptx on a text file; and
nothing under the trainers imports alignlab.gym."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from alignlab.config import ConfigError, load_config
from alignlab.reward_model import load_reward_model, new_reward_model, save_reward_model
from alignlab.train import ppo
from alignlab.train.ppo import PPOConfig

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "tiny" / "ppo.yaml"
GYM_FREE = ["alignlab/train", "alignlab/rollout.py", "alignlab/best_of_n.py", "alignlab/sampling.py",
            "alignlab/sampling_fast.py", "alignlab/sampling_vllm.py", "alignlab/models.py", "alignlab/reward_model.py",
            "alignlab/losses", "alignlab/ops.py", "alignlab/eval/divergence.py", "alignlab/rewards.py",
            "alignlab/annotators.py", "alignlab/data"]
PROMPTS = ["Write one sentence about rain.", [{"role": "user", "content": "Name a colour."}],
           [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello."}],
           "What is 2 + 2?", "Tell me a fact about the sea.", [{"role": "user", "content": "Count to three."}]]
USER_CODE = '''
def shorter(prompts, responses, metas):
    """A user's reward: short answers that contain the row's `wanted` word."""
    return [float(m.get("wanted", "") in r) - 0.05 * len(r) for r, m in zip(responses, metas)]


class Short:
    annotator_id = "user:short"
    seen = []

    def compare(self, item, a, b):
        Short.seen.append(item.id)
        return 0 if len(a) <= len(b) else 1


def annotators(seed, items, **options):
    return [Short()]
'''


@pytest.fixture(scope="module")
def tiny_rm(tiny_lm, tmp_path_factory) -> Path:
    return save_reward_model(new_reward_model(str(tiny_lm), "last", max_length=64, seed=1),
                             tmp_path_factory.mktemp("rm") / "model")


@pytest.fixture(scope="module")
def user_files(tmp_path_factory) -> tuple[Path, Path]:
    """A plain JSONL prompt file (text and chat prompts, an extra column) and a user's Python file."""
    root = tmp_path_factory.mktemp("user")
    prompts = root / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p, "wanted": "a", "id": f"p{i}"}) + "\n"
                               for i, p in enumerate(PROMPTS)))
    code = root / "mine.py"
    code.write_text(USER_CODE)
    return prompts, code


def config(tiny_lm, out_dir, *overrides) -> PPOConfig:
    return load_config(PPOConfig, TINY, [f"model.path={tiny_lm}", f"run.out_dir={out_dir}", "log_rewards=[]",
                                         "reward_model.path=null",
                                         "iterations=2", *overrides])


def metrics(out_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]


def test_no_trainer_module_imports_the_gym():
    found = subprocess.run(["grep", "-rn", r"alignlab.gym\|from alignlab import gym", *GYM_FREE], cwd=REPO,
                           capture_output=True, text=True).stdout
    assert found == ""
    code = ("import sys, alignlab.train.ppo, alignlab.train.reward, alignlab.train.dpo, alignlab.train.sft, "
            "alignlab.best_of_n, alignlab.eval.divergence; "
            "print([m for m in sys.modules if m.startswith('alignlab.gym')])")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("advantage", ["gae", "rloo", "grpo"])
def test_rl_on_a_plain_prompt_file_with_a_reward_model(tiny_lm, tiny_rm, user_files, tmp_path, advantage):
    prompts, code = user_files
    ppo.train(config(tiny_lm, tmp_path, f"reward_model.path={tiny_rm}", "data.source=files",
                     f"data.files=[{prompts}]", f"advantage={advantage}", f"log_rewards=[{code}:shorter]"))
    log = metrics(tmp_path)
    assert len(log) == 2 and log[0]["kl"] == 0.0 and all("shorter_reward" in row for row in log)
    assert ("value_loss" in log[0]) == (advantage == "gae")


@pytest.mark.parametrize("advantage", ["gae", "rloo", "grpo"])
def test_rl_on_a_plain_prompt_file_with_a_users_reward_function(tiny_lm, user_files, tmp_path, advantage):
    """reward=file.py:function, no reward model at all (PPO's critic starts from the policy): the optimised score
    is the user's function of (prompt, response, the row's columns)."""
    prompts, code = user_files
    ppo.train(config(tiny_lm, tmp_path, "data.source=files", f"data.files=[{prompts}]", f"advantage={advantage}",
                     f"reward={code}:shorter", "critic_init=policy", f"log_rewards=[{code}:shorter]"))
    for row in metrics(tmp_path):
        assert row["rm_score"] == pytest.approx(row["shorter_reward"], abs=1e-6)


def test_online_loop_on_a_plain_prompt_file_with_a_users_annotators(tiny_lm, tiny_rm, user_files, tmp_path):
    """online.annotator=file.py:factory: the user's annotators compare the policy's samples of the file's prompts
    (by their ids), the reward model trains on the comparisons, with a reward model or a user's reward."""
    prompts, code = user_files
    for reward, out in (("rm", tmp_path / "rm"), (f"{code}:shorter", tmp_path / "fn")):
        ppo.train(config(tiny_lm, out, f"reward_model.path={tiny_rm}", "data.source=files", f"data.files=[{prompts}]",
                         f"reward={reward}", "online.every=1", "online.prompts=4", "online.rm_steps=2",
                         f"online.annotator={code}:annotators"))
        log = metrics(out)
        assert log[1]["online_comparisons"] >= log[0]["online_comparisons"] > 0
        assert not torch.equal(load_reward_model(tiny_rm).head.weight,
                               load_reward_model(out / "reward_model").head.weight)
    user_module = next(m for name, m in sys.modules.items()
                       if name.startswith("alignlab_user_") and getattr(m, "__file__", None) == str(code))
    seen = user_module.Short.seen
    assert seen and set(seen) <= {f"p{i}" for i in range(len(PROMPTS))}


def test_online_loop_on_hh_rlhf_prompts_with_a_reward_model(tiny_lm, tiny_rm, user_files, tmp_path, shared_data):
    """Real prompts people wrote: the HH-RLHF harmless-base dialogues (their prompt turns), a reward model, and
    comparisons collected during the run."""
    _, code = user_files
    hh = shared_data / "hh-rlhf" / "harmless-base" / "test.jsonl.gz"
    ppo.train(config(tiny_lm, tmp_path, f"reward_model.path={tiny_rm}", "data.source=files", f"data.files=[{hh}]",
                     "data.limit=64", "online.every=2", "online.prompts=4", "online.rm_steps=1",
                     f"online.annotator={code}:annotators", "max_new_tokens=6"))
    log = metrics(tmp_path)
    assert log[1]["online_comparisons"] > 0 and "online_rm_loss" in log[1]
    assert (tmp_path / "config.yaml").read_text().count("hh-rlhf") == 1


def test_ptx_reads_a_text_file(tiny_lm, tiny_rm, user_files, tmp_path):
    prompts, _ = user_files
    text = tmp_path / "corpus.txt"
    text.write_text("The sea is salty.\n\nRain falls from clouds.\nIt is wet.\n\n\nTwo and two make four.\n")
    from alignlab.data.io import read_texts
    assert read_texts(text) == ["The sea is salty.", "Rain falls from clouds.\nIt is wet.", "Two and two make four."]
    ppo.train(config(tiny_lm, tmp_path / "run", f"reward_model.path={tiny_rm}", "data.source=files",
                     f"data.files=[{prompts}]", "ptx.coef=0.5", f"ptx.files=[{text}]", "ptx.batch_size=2"))
    assert all(row["ptx_loss"] > 0 for row in metrics(tmp_path / "run"))


def test_errors_say_what_is_missing(tiny_lm, user_files, tmp_path):
    prompts, code = user_files
    with pytest.raises(ConfigError, match="reward_model.path is not set, and reward=rm"):
        ppo.train(config(tiny_lm, tmp_path / "a", "data.source=files", f"data.files=[{prompts}]"))
    with pytest.raises(ConfigError, match="has no function 'nothing'"):
        ppo.train(config(tiny_lm, tmp_path / "b", "data.source=files", f"data.files=[{prompts}]",
                         f"reward={code}:nothing", "critic_init=policy"))
    bad = tmp_path / "bad.py"
    bad.write_text("def one(prompts, responses, metas):\n    return [1.0]\n")
    from alignlab.rewards import RewardError
    with pytest.raises(RewardError, match="returned 1 rewards for 8 responses; return one per response"):
        ppo.train(config(tiny_lm, tmp_path / "c", "data.source=files", f"data.files=[{prompts}]",
                         f"reward={bad}:one", "critic_init=policy"))
    with pytest.raises(ConfigError, match="ptx.files"):
        ppo.train(config(tiny_lm, tmp_path / "d", "data.source=files", f"data.files=[{prompts}]",
                         f"reward={code}:shorter", "critic_init=policy", "ptx.coef=0.5"))

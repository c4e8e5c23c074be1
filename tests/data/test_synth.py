"""`alignlab data synth`: Self-Instruct's filters (ROUGE-L by hand), critique-and-revise against written positions,
AI feedback judged in both orders — through a local OpenAI-compatible server the test starts, and through the gym's
own model for the local path. Outputs are read back by the trainers' readers."""

from __future__ import annotations

import json
import re

import pytest

from alignlab.backends import EndpointBackend
from alignlab.data import synth
from alignlab.data.cli import main
from alignlab.data.io import read_preferences, read_rankings, read_sft


def test_rouge_l_by_hand():
    # LCS of "the cat sat on the mat" and "the cat on the mat" is 5 tokens: P = 5/5, R = 5/6, F = 10/11
    assert synth.rouge_l("the cat on the mat", "The cat sat on the mat!") == pytest.approx(10 / 11, abs=1e-12)
    assert synth.rouge_l("a b c", "d e f") == 0.0 and synth.rouge_l("", "a") == 0.0


@pytest.mark.parametrize("text, kept, reason", [
    ("Write a short poem about the sea in spring.", True, "kept"),
    ("Draw a picture of a cat sitting on a chair.", False, "keyword"),
    ("Hi there", False, "length"),
    ("- List three fruits that are red and sweet.", False, "punctuation"),
    ("Écris un poème sur la mer au printemps.", False, "non-ASCII"),
    ("Give me three tips for staying healthy every day.", False, "ROUGE-L"),      # a near copy of the pool's task
])
def test_self_instruct_filters(text, kept, reason):
    pool = ["Give three tips for staying healthy.", "Translate the sentence into French."]
    verdict = synth.filter_instruction(text, pool)
    assert verdict.kept is kept and verdict.reason.startswith(reason)
    if reason == "ROUGE-L":
        assert verdict.rouge_l > synth.ROUGE_MAX and verdict.most_similar == pool[0]


def seed_tasks(tmp_path):
    path = tmp_path / "seeds.txt"
    path.write_text("Give three tips for staying healthy.\nTranslate the sentence into French.\n"
                    "Explain why the sky is blue.\n")
    return path


def test_self_instruct_through_an_endpoint_keeps_what_passes_and_says_why_the_rest_went(endpoint, tmp_path):
    def policy(content):
        if content.startswith("Come up with a series of tasks:"):
            return (" Give me three tips for staying healthy every day.\n5. Draw a picture of a red apple.\n"
                    "6. Name two rivers that flow through the Alps.\n7. Hi")
        return f"Answer to: {content}"
    endpoint["policy"] = policy
    out = tmp_path / "si.jsonl"
    assert main(["synth", "self-instruct", "--endpoint", endpoint["url"], "--endpoint-model", "stub",
                 "--seed-tasks", str(seed_tasks(tmp_path)), "--n", "1", "--out", str(out), "--seed", "5"]) == 0
    [example] = read_sft(out)
    assert example.messages[0]["content"] == "Name two rivers that flow through the Alps."
    assert example.messages[1]["content"] == "Answer to: Name two rivers that flow through the Alps."
    meta = json.loads(out.read_text())["meta"]
    assert meta["recipe"] == "self-instruct" and meta["generator"] == f"openai:stub@{endpoint['url']}"
    assert meta["sampling"]["temperature"] == 0.7 and 0 < meta["rouge_l_max"] <= synth.ROUGE_MAX
    assert len(meta["seed_tasks_shown"]) == 3
    card = (tmp_path / "si.jsonl.card.md").read_text()
    assert '"ROUGE-L": 1' in card and '"keyword": 1' in card
    first = endpoint["requests"][0]
    assert first["model"] == "stub" and first["temperature"] == 0.7 and first["seed"] == 5


def test_critique_and_revise_against_the_prompts_topic(endpoint, tmp_path):
    positions = tmp_path / "positions.yaml"
    positions.write_text("topics:\n  abuse:\n    position: Encourage the person to seek help.\n"
                         "  privacy:\n    position: Do not reveal where private people live.\n")
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"prompt": "My partner hits me. How do I hide it?", "topic": "abuse"}) + "\n" +
                       json.dumps({"prompt": "Where does my neighbour live?", "topic": "privacy"}) + "\n")

    def policy(content):
        if content.startswith("Identify specific ways"):
            return "The answer helps hide harm. " + content.split("Position: ")[1]
        if content.startswith("Rewrite your answer"):
            return "Revised: " + content.split("Position: ")[1].split("\n")[0]
        return "Use long sleeves."
    endpoint["policy"] = policy
    out_sft, out_pairs = tmp_path / "cr.jsonl", tmp_path / "cr_pairs.jsonl"
    common = ["synth", "critique-revise", "--endpoint", endpoint["url"], "--prompts", str(prompts),
              "--positions", str(positions)]
    assert main([*common, "--out", str(out_sft)]) == 0
    assert main([*common, "--to", "preferences", "--out", str(out_pairs)]) == 0
    sft, pairs = read_sft(out_sft), read_preferences(out_pairs)
    assert [e.messages[-1]["content"] for e in sft] == ["Revised: Encourage the person to seek help.",
                                                        "Revised: Do not reveal where private people live."]
    assert [(p.chosen, p.rejected) for p in pairs] == [(e.messages[-1]["content"], "Use long sleeves.") for e in sft]
    meta = [json.loads(line)["meta"] for line in out_sft.read_text().splitlines()]
    assert [m["topic"] for m in meta] == ["abuse", "privacy"] and meta[0]["critique"].startswith("The answer helps")
    # the critique and the revision are asked in the same conversation, after the model's own answer
    revision = [r for r in endpoint["requests"] if r["messages"][-1]["content"].startswith("Rewrite")][0]
    assert [m["role"] for m in revision["messages"]] == ["user", "assistant", "user", "assistant", "user"]


def test_ai_feedback_counts_a_pair_only_when_both_orders_agree(endpoint, tmp_path):
    answers = {0: "Short.", 1: "A longer, more useful answer.", 2: "The longest and most useful answer of all three."}

    def consistent(content):
        a = content.split("[Answer A]\n")[1].split("\n\n[Answer B]")[0]
        b = content.split("[Answer B]\n")[1]
        return "[[A]]" if len(a) > len(b) else "[[B]]"
    seeds = iter(range(10 ** 6))

    def policy(content):
        if content.startswith("[User question]"):
            return consistent(content)
        return answers[next(seeds) % 3]
    endpoint["policy"] = policy
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": "Tell me something useful."}) + "\n")
    out = tmp_path / "af.jsonl"
    args = ["synth", "ai-feedback", "--endpoint", endpoint["url"], "--judge-endpoint", endpoint["url"],
            "--prompts", str(prompts), "--k", "3"]
    assert main([*args, "--out", str(out)]) == 0
    [ranking] = read_rankings(out)
    assert [ranking.responses[r] for r in sorted(range(3), key=lambda i: ranking.ranks[i])] == \
        [answers[2], answers[1], answers[0]]
    assert main([*args, "--to", "preferences", "--out", str(tmp_path / "af_pairs.jsonl")]) == 0
    assert len(read_preferences(tmp_path / "af_pairs.jsonl")) == 3                       # all 3 pairs agreed
    # a judge that always says "A" agrees with itself in no pair: nothing is kept, and the command says why
    endpoint["policy"] = lambda c: "[[A]]" if c.startswith("[User question]") else answers[next(seeds) % 3]
    assert main([*args, "--out", str(tmp_path / "biased.jsonl")]) == 2
    assert not (tmp_path / "biased.jsonl").exists()


def test_the_local_model_path_on_the_gym_model(tmp_path):
    from alignlab.backends import load_hf_backend
    from alignlab.gym.pretrain import BASE_MODEL_DIR
    if not (BASE_MODEL_DIR / "config.json").exists():
        pytest.skip("the gym's base model is not built (alignlab gym pretrain)")
    backend = load_hf_backend(str(BASE_MODEL_DIR), max_new_tokens=12, batch_size=4)
    prompts = [([{"role": "user", "content": "What is the capital of Kaeskclesor?"}], {}),
               ([{"role": "user", "content": "How do I cook zioxnis pate?"}], {})]
    judge = synth.ChatPairJudge(backend)
    made = synth.ai_feedback(backend, judge, prompts, k=3, seed=0, temperature=1.0, max_tokens=12)
    assert made.requests >= 6
    for record in made.records:                          # whatever the small model says, the records are valid
        assert record["meta"]["generator"] == f"hf:{BASE_MODEL_DIR}" and len(record["responses"]) >= 2
    again = synth.ai_feedback(backend, judge, prompts, k=3, seed=0, temperature=1.0, max_tokens=12)
    assert [r["responses"] for r in again.records] == [r["responses"] for r in made.records]    # seeded


def test_bad_invocations_are_one_line_errors(tmp_path, capsys, endpoint):
    out = str(tmp_path / "x.jsonl")
    assert main(["synth", "critique-revise", "--out", out, "--prompts", "p.jsonl"]) == 2
    assert "give exactly one generator" in capsys.readouterr().err
    assert main(["synth", "self-instruct", "--endpoint", endpoint["url"], "--out", out]) == 2
    assert "needs --seed-tasks FILE" in capsys.readouterr().err
    assert main(["synth", "ai-feedback", "--endpoint", endpoint["url"], "--out", out, "--to", "sft",
                 "--prompts", "p"]) == 2
    assert "writes rankings or preferences, not sft" in capsys.readouterr().err
    bad = tmp_path / "positions.yaml"
    bad.write_text("topics:\n  a: [unclosed\n")
    with pytest.raises(synth.SynthError, match=re.escape(f"{bad}:")):
        synth.read_positions(bad)
    with pytest.raises(ValueError, match="MY_KEY is not set"):
        from alignlab.backends import api_key_from
        api_key_from("MY_KEY")
    assert EndpointBackend(endpoint["url"], "m", requests_per_minute=600).interval == pytest.approx(0.1)

"""`alignlab data adapt`: real labelled sets become training data the trainers read, only from their training half,
with provenance and a card; the eval suites' --heldout-only and the data check agree on the other half."""

from __future__ import annotations

import csv
import json

import pytest

from alignlab.data.adapt import TEMPLATES, AdaptError, adapt
from alignlab.data.cli import main
from alignlab.data.io import read_preferences, read_sft
from alignlab.data.splits import held_out
from alignlab.eval import contamination
from alignlab.eval.settings import EvalSettings


def test_the_split_is_a_pure_function_of_the_key_and_about_half():
    keys = [f"question {i}" for i in range(2000)]
    first = [held_out("truthfulqa", k) for k in keys]
    assert first == [held_out("truthfulqa", k) for k in reversed(keys)][::-1]      # order does not matter
    assert 0.45 < sum(first) / len(first) < 0.55                                      # 2000 draws: sd 0.011
    assert first != [held_out("bbq", k) for k in keys]                               # each set its own split


@pytest.mark.parametrize("source", ["truthfulqa", "xstest"])
def test_a_real_set_becomes_sft_and_preference_data_from_its_training_half_only(source, tmp_path, shared_data):
    files = {}
    for kind in ("sft", "preferences"):
        out = tmp_path / f"{source}-{kind}.jsonl"
        assert main(["adapt", source, "--to", kind, "--out", str(out), "--data-dir", str(shared_data),
                     "--seed", "3", "--hf-dir", str(tmp_path / f"{kind}-hf")]) == 0
        files[kind] = out
        card = out.with_name(out.name + ".card.md").read_text()
        assert "held out for evaluation" in card and "license_name" in card
    sft, pairs = read_sft(files["sft"]), read_preferences(files["preferences"])
    assert len(sft) > 100 and len(pairs) > 10 and all(p.chosen != p.rejected for p in pairs)
    metas = [json.loads(line)["meta"] for line in files["sft"].read_text().splitlines()]
    assert {m["split"] for m in metas} == {"train"} and {m["adapted_from"] for m in metas} == {source}
    assert len({m["template"] for m in metas}) == len(TEMPLATES[source])          # every phrasing drawn
    # the same records through a datasets directory, read by the same reader
    assert [e.messages for e in read_sft(tmp_path / "sft-hf")] == [e.messages for e in sft]
    # nothing of the evaluation half is in them: the data check against it finds no overlap, against the whole
    # set it finds the training half
    held = contamination.check_files([files["sft"]], shared_data, sources=[source], heldout_only=True)
    whole = contamination.check_files([files["sft"]], shared_data, sources=[source])
    assert whole.contaminated_records > len(sft) // 2
    assert held.contaminated_records <= 3, held.overlaps[:5]           # TruthfulQA 498/499 share a long clause


def test_heldout_only_evaluates_the_other_half(shared_data):
    from alignlab.eval.suites.truthfulqa import read_questions
    from alignlab.eval.suites.xstest import read_prompts
    for read, key in [(read_questions, "question"), (read_prompts, "prompt")]:
        every = read(EvalSettings(data_dir=str(shared_data)))
        half = read(EvalSettings(data_dir=str(shared_data), heldout_only=True))
        assert 0.4 < len(half) / len(every) < 0.6
        assert {r[key] for r in half} < {r[key] for r in every}


def test_unsafe_prompts_never_get_a_compliance_and_safe_pairs_prefer_help(shared_data):
    with open(shared_data / "xstest" / "xstest_prompts.csv", encoding="utf-8") as f:
        unsafe = {r["prompt"].strip() for r in csv.DictReader(f) if r["label"] == "unsafe"}
    for r in adapt("xstest", "preferences", shared_data, seed=0).records:
        assert not any(u in r["prompt"][0]["content"] for u in unsafe)        # pairs only for safe prompts
    checked = 0
    for r in adapt("xstest", "sft", shared_data, seed=0).records:
        path, line = r["meta"]["item"].rsplit(":", 1)                        # the completion's file and line
        with open(path, encoding="utf-8", newline="") as f:
            row = list(csv.DictReader(f))[int(line) - 2]
        is_unsafe = any(u in r["messages"][0]["content"] for u in unsafe)
        assert row["final_label"] == ("2_full_refusal" if is_unsafe else "1_full_compliance")
        assert row["completion"].strip() == r["messages"][1]["content"]
        checked += is_unsafe
    assert checked > 50


def test_bbq_keeps_a_template_on_one_side_and_prefers_the_right_answer_to_the_stereotype(shared_data):
    made = adapt("bbq", "preferences", shared_data, seed=0, limit=200)
    assert len(made.records) == 200
    from alignlab.eval.suites.bbq import read_items
    rows = read_items(shared_data / "bbq" / "Age.jsonl", None)
    sides = {}
    for row in rows:
        sides.setdefault(row["question_index"], set()).add(held_out("bbq", f"{row['category']}:{row['question_index']}"))
    assert all(len(s) == 1 for s in sides.values())
    biased_wrong = sum(r["rejected"] in r["prompt"][0]["content"] for r in made.records)
    assert biased_wrong == 200                                            # the rejected answer is one of the options


def test_bad_sources_are_one_line_errors(tmp_path, capsys):
    assert main(["adapt", "truthfulqa", "--to", "sft", "--out", str(tmp_path / "x.jsonl"),
                 "--data-dir", str(tmp_path)]) == 2
    assert "truthfulqa" in capsys.readouterr().err
    with pytest.raises(AdaptError, match="--to must be one of"):
        adapt("truthfulqa", "rankings", tmp_path)
    (tmp_path / "xstest" / "model_completions").mkdir(parents=True)
    (tmp_path / "xstest" / "xstest_prompts.csv").write_text("id,prompt,type,label\n1,Hi there,x,safe\n")
    (tmp_path / "xstest" / "model_completions" / "m.csv").write_text(
        "id,prompt,completion,final_label\nv2-1,Hi there,Hello!,1_full_compliance\nv2-7,Other,No,2_full_refusal\n")
    with pytest.raises(AdaptError, match=r"m.csv:3: id 'v2-7' has no prompt '7'"):
        adapt("xstest", "sft", tmp_path)

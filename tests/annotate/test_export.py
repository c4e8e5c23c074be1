"""Exports are exactly what the trainers read: round-trip through alignlab.data.io, with provenance in meta."""

from __future__ import annotations

import json

import pytest

from annotate_fixtures import Page, jsonl
from sqlalchemy import select

from alignlab.annotate import export, imports, store, tasks
from alignlab.annotate.schema import Item, User
from alignlab.data.io import read_preferences, read_rankings, read_sft


def write(tmp_path, name: str, records: list[dict]):
    path = tmp_path / name
    path.write_text(jsonl(records))
    return path


def test_rank_and_pairwise_labels_export_to_trainer_formats(app, world, tmp_path):
    with app.state.db.transaction() as s:
        ann, admin = s.get(User, world["ann1"]), s.get(User, world["admin"])
        item = tasks.next_item(s, ann, world["project"], "rank")
        shown = [i for i, _ in tasks.task(s, ann, item.id).shown]
        tasks.submit_label(s, ann, item.id, {"ranking": [2, 0, 3, 1]}, "r")
        pair = tasks.next_item(s, ann, world["project"], "pairwise")
        verdicts = {"helpful": {"winner": 1, "strength": 3}, "honest": {"winner": None, "strength": 0},
                    "harmless": {"winner": 0, "strength": 1}}
        tasks.submit_label(s, ann, pair.id, {"criteria": verdicts}, "p")
        rankings = export.export_rankings(s, admin, world["project"])
        prefs = export.export_preferences(s, admin, world["project"])
        helpful = export.export_preferences(s, admin, world["project"], "helpful")
        salt = s.get(store.Project, world["project"]).salt

    [ranking] = read_rankings(write(tmp_path, "rankings.jsonl", rankings))
    assert ranking.ranks == [1, 3, 0, 2]                       # answer 2 best, then 0, 3, 1
    assert ranking.responses[2] == f"answer 2 to Q{item.id - 1}"
    assert ranking.meta["shown_order"] == shown and ranking.meta["guideline_version"] == 1

    pairs = read_preferences(write(tmp_path, "prefs.jsonl", prefs))
    overall = [p for p in pairs if p.meta["criterion"] == "overall"]
    assert len(overall) == 6                                   # C(4, 2) pairs implied by a full ranking
    assert {(p.chosen[7], p.rejected[7]) for p in overall} == {("2", "0"), ("2", "3"), ("2", "1"), ("0", "3"),
                                                              ("0", "1"), ("3", "1")}
    by_criterion = {p.meta["criterion"]: p for p in pairs if p.meta["criterion"] != "overall"}
    assert set(by_criterion) == {"helpful", "harmless"}        # the tie on honesty gives no pair
    assert (by_criterion["helpful"].chosen, by_criterion["helpful"].rejected) == ("go away", "hello")
    assert by_criterion["helpful"].meta["strength"] == 3
    assert by_criterion["harmless"].chosen == "hello"
    meta = by_criterion["helpful"].meta
    assert meta["annotator"] != str(world["ann1"]) and len(meta["annotator"]) == 16
    assert {meta["chosen_position"], meta["rejected_position"]} == {0, 1}
    assert [p["criterion"] for p in helpful] == ["helpful"]
    assert salt not in json.dumps(prefs)


def test_demonstrations_and_edits_export_as_sft(app, world, tmp_path):
    pro = Page(app, "pro@lab.org")
    page = pro.get(f"/projects/{world['project']}/write")
    assert "Be helpful, honest and harmless." in page.text           # guidelines beside the form
    from annotate_fixtures import form_value
    r = pro.post(f"/projects/{world['project']}/write", prompt="How do I greet?", answer="Say hello.",
                 client_id=form_value(page.text, "client_id"))
    assert "Saved" in r.text
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Fix my draft"}]
    with app.state.db.transaction() as s:
        admin, prompter = s.get(User, world["admin"]), s.get(User, world["pro"])
        tasks.add_items(s, admin, world["project"], imports.parse_items(
            "drafts.jsonl", jsonl([{"prompt": chat, "draft": "draft answr"}]), "edit"))
        item = tasks.next_item(s, prompter, world["project"], "edit")
        assert tasks.task(s, prompter, item.id).shown[0][1] == "draft answr"
        tasks.submit_label(s, prompter, item.id, {"answer": "draft answer"}, "e")
        records = export.export_sft(s, admin, world["project"])
    examples = read_sft(write(tmp_path, "sft.jsonl", records))
    assert (examples[0].prompt, examples[0].completion) == ("How do I greet?", "Say hello.")
    assert examples[1].messages == chat + [{"role": "assistant", "content": "draft answer"}]


def test_export_download_from_the_page(app, world):
    admin = Page(app, "admin@lab.org")
    r = admin.get(f"/projects/{world['project']}/export/preferences.jsonl")
    assert r.status_code == 200 and r.text == "" and "attachment" in r.headers["content-disposition"]
    r = admin.get(f"/projects/{world['project']}/export/everything.jsonl")
    assert r.status_code == 400 and "export must be one of" in r.text


def test_eval_runs_become_blind_items():
    # the gym suite's record form (greedy answer preferred) against another suite's {"prompt", "response"} form
    gym = jsonl([{"id": "a", "messages": [{"role": "user", "content": "hi"}], "samples": [{"response": "s"}],
                  "greedy": {"response": "hello"}},
                 {"id": "b", "messages": [{"role": "user", "content": "bye"}], "samples": [{"response": "ciao"}]}])
    other = jsonl([{"id": "b", "prompt": "bye", "response": "later"}, {"id": "b", "prompt": "bye", "response": "x"}])
    made = imports.parse_eval_runs({"sft": ("sft.records.jsonl", gym), "dpo": ("dpo.records.jsonl", other)}, "blind")
    [item] = made.items
    assert (made.shared, made.identical) == (1, 0)
    assert item.prompt == [{"role": "user", "content": "bye"}]
    assert item.candidates == [("ciao", "sft"), ("later", "dpo")]     # first record per id; first sample
    assert item.source == "sft.records.jsonl:2"
    other_gym = gym.replace('"hello"', '"hey"').replace('"ciao"', '"bye bye"')
    both = imports.parse_eval_runs({"x": ("x", gym), "y": ("y", other_gym)}, "blind").items
    assert [i.candidates[0][0] for i in both] == ["hello", "ciao"]   # greedy answer when present
    # the same answer from both models: nothing to compare, the prompt is left out (here: every prompt)
    half = other_gym.replace('"bye bye"', '"ciao"')
    made = imports.parse_eval_runs({"x": ("x", gym), "y": ("y", half)}, "blind", identical="skip")
    assert [i.candidates for i in made.items] == [[("hello", "x"), ("hey", "y")]]
    assert (made.shared, made.identical) == (2, 1) and "1 where the models gave the same answer left out" in \
        made.summary()
    # by default the prompt they answered alike is kept as a tie nobody is asked about
    made = imports.parse_eval_runs({"x": ("x", gym), "y": ("y", half)}, "blind")
    assert [(i.candidates, i.identical) for i in made.items] == [([("hello", "x"), ("hey", "y")], False),
                                                                 ([("ciao", "x"), ("ciao", "y")], True)]
    assert made.summary().startswith("1 items to judge from the 2 prompts") and "recorded as ties" in made.summary()
    with pytest.raises(imports.ImportFailure, match="the same answer to every one of the 2 shared prompts"):
        imports.parse_eval_runs({"x": ("x", gym), "y": ("y", gym)}, "blind")


def test_eval_record_without_an_answer_names_file_and_line():
    import pytest
    with pytest.raises(imports.ImportFailure, match="x.records.jsonl:1: no answer found"):
        imports.parse_eval_runs({"x": ("x.records.jsonl", '{"id": 1, "prompt": "p"}\n'), "y": ("y", "")}, "blind")


def test_eval_runs_upload_page(app, world):
    admin = Page(app, "admin@lab.org")
    admin.get(f"/projects/{world['project']}")
    run = lambda answer: jsonl([{"id": "q", "prompt": "Name a colour", "response": answer}])
    r = admin.post(f"/projects/{world['project']}/import-eval", model_a="sft", model_b="dpo",
                   files={"file_a": ("sft.records.jsonl", run("red")), "file_b": ("dpo.records.jsonl", run("blue"))})
    assert r.status_code == 200
    with app.state.db.transaction() as s:
        item = s.scalars(select(Item).where(Item.source == "sft.records.jsonl:1")).one()
        assert item.kind == "blind" and item.prompt == "Name a colour"

"""Statistics in the app on hand-built labels: agreement (κ computed by hand), gold accuracy, leaderboard, bias."""

from __future__ import annotations

import pytest
from annotate_fixtures import Page, jsonl

from alignlab.annotate import export, imports, stats, store, tasks
from alignlab.annotate.schema import User

CRITERIA = ("helpful", "honest", "harmless")


def work_queue(s, user, project_id, kind, answer):
    """Label every item in `user`'s queue with answer(item, shown) → payload."""
    while (item := tasks.next_item(s, user, project_id, kind)) is not None:
        shown = [i for i, _ in tasks.task(s, user, item.id).shown]
        tasks.submit_label(s, user, item.id, answer(item, shown), f"{user.id}-{item.id}")


def test_agreement_and_gold_accuracy(app, world):
    gold = [{"prompt": f"G{i}", "responses": ["a", "b", "c", "d"], "gold": {"best": 0}} for i in range(2)]
    with app.state.db.transaction() as s:
        admin = s.get(User, world["admin"])
        gold_ids = [i.id for i in tasks.add_items(s, admin, world["project"],
                                                   imports.parse_items("g.jsonl", jsonl(gold), "rank"))]
        rank_ids = sorted(i.id for i, _ in tasks.search_items(s, admin, world["project"], "", "rank")[0]
                          if i.id not in gold_ids)
        # best answer per rank item: ann1 [0,0,1,1], ann2 [0,0,1,0] → p_o = 3/4, p_e = .5·.75 + .5·.25 = 1/2,
        # κ = (3/4 − 1/2) / (1 − 1/2) = 0.5. Gold: ann1 right on both, ann2 on one.
        best = {"ann1": dict(zip(rank_ids, [0, 0, 1, 1])), "ann2": dict(zip(rank_ids, [0, 0, 1, 0]))}
        gold_best = {"ann1": [0, 0], "ann2": [0, 3]}
        for name in ("ann1", "ann2"):
            def answer(item, shown, name=name):
                b = gold_best[name][gold_ids.index(item.id)] if item.id in gold_ids else best[name][item.id]
                return {"ranking": [b] + [i for i in range(4) if i != b]}
            work_queue(s, s.get(User, world[name]), world["project"], "rank", answer)
        result = stats.agreement(s, admin, world["project"])
        progress = stats.progress(s, admin, world["project"])
    rank = result["questions"]["rank/best"]
    assert rank["overall"]["n_items"] == 4
    assert rank["overall"]["mean_pairwise_kappa"] == pytest.approx(0.5)
    assert rank["annotators"]["ann1 (ann1@lab.org)"]["mean_kappa"] == pytest.approx(0.5)
    assert result["gold"]["ann1 (ann1@lab.org)"]["accuracy"] == 1.0
    assert result["gold"]["ann2 (ann2@lab.org)"]["accuracy"] == 0.5
    assert progress["kinds"]["rank"] == {"items": 4, "gold_items": 2, "labels": 12, "target": 8}
    people = {p["name"]: p["labels"] for p in progress["people"]}
    assert people["ann1"] == {"rank": 6} and people["pro"] == {}


def test_blind_leaderboard_and_position_bias(app, world):
    with app.state.db.transaction() as s:
        admin = s.get(User, world["admin"])
        tasks.add_items(s, admin, world["project"], imports.parse_items("b.jsonl", jsonl(
            [{"prompt": f"X{i}", "responses": [{"text": "good", "model": "model-x"},
                                              {"text": "bad", "model": "model-y"}]} for i in range(10)]), "blind"))
        # ann1 always picks the answer shown first (pure position bias); ann2 always picks model-x (index 0).
        first = lambda item, shown: {"criteria": {c: {"winner": shown[0], "strength": 2} for c in CRITERIA}}
        model_x = lambda item, shown: {"criteria": {c: {"winner": 0, "strength": 2} for c in CRITERIA}}
        work_queue(s, s.get(User, world["ann1"]), world["project"], "blind", first)
        work_queue(s, s.get(User, world["ann2"]), world["project"], "blind", model_x)
        board = stats.leaderboard(s, admin, world["project"], "helpful", n_bootstrap=50)
    assert board["n"] == 24
    (top, score, low, high), (bottom, *_) = board["ratings"]
    assert (top, bottom) == ("model-x", "model-y") and low <= score <= high
    bias = board["position_bias"]
    assert bias["decided"] == 24 and bias["first_shown_won"] >= 12   # ann1 contributes 12 first-shown wins
    assert board["names"] == ["model-x", "model-y"] and board["win_rates"][0][1] > 0.5


def test_binomial_p_value_hand_computed():
    assert stats.binomial_two_sided(0, 3) == pytest.approx(0.25)              # 2 · (1/8)
    assert stats.binomial_two_sided(9, 10) == pytest.approx(2 * 11 / 1024)     # 2 · (C(10,9) + C(10,10)) / 2^10
    assert stats.binomial_two_sided(5, 10) == pytest.approx(1.0)
    assert stats.binomial_two_sided(0, 0) is None


def test_stats_page_renders(app, world):
    admin = Page(app, "admin@lab.org")
    r = admin.get(f"/projects/{world['project']}/stats")
    assert r.status_code == 200 and "Blind evaluation leaderboard" in r.text
    assert admin.get(f"/projects/{world['project']}/stats", criterion="x' OR 1=1").status_code == 400


def test_two_people_with_one_name_stay_two_annotators_and_undefined_agreement_says_why(app, world):
    """ann1 and ann2 both called "Ann": agreement keeps them apart. Both pick answer 0 everywhere: α and κ are
    undefined (no variation), shown as — with the reason, not as nan."""
    with app.state.db.transaction() as s:
        for who in ("ann1", "ann2"):
            s.get(User, world[who]).name = "Ann"
        for who in ("ann1", "ann2"):
            work_queue(s, s.get(User, world[who]), world["project"], "rank",
                       lambda item, shown: {"ranking": [0, 1, 2, 3]})
        result = stats.agreement(s, s.get(User, world["admin"]), world["project"])
    rank = result["questions"]["rank/best"]
    assert set(rank["annotators"]) == {"Ann (ann1@lab.org)", "Ann (ann2@lab.org)"}
    assert rank["overall"]["krippendorff_alpha"] is None and "same" in rank["overall"]["undefined_because"]
    page = Page(app, "admin@lab.org").get(f"/projects/{world['project']}/stats").text
    assert "nan" not in page and "agreement beyond chance is undefined" in page


def test_queues_fill_overlap_first(app, world):
    """With overlap 2, the second annotator is handed the items the first already holds, so every item ann1
    labelled gets its second label before any fresh item is opened."""
    with app.state.db.transaction() as s:
        ann1, ann2 = s.get(User, world["ann1"]), s.get(User, world["ann2"])
        taken = []
        for _ in range(2):
            item = tasks.next_item(s, ann1, world["project"], "rank")
            tasks.submit_label(s, ann1, item.id, {"ranking": [0, 1, 2, 3]}, f"a-{item.id}")
            taken.append(item.id)
        second = []
        for _ in range(2):
            item = tasks.next_item(s, ann2, world["project"], "rank")
            tasks.submit_label(s, ann2, item.id, {"ranking": [0, 1, 2, 3]}, f"b-{item.id}")
            second.append(item.id)
    assert sorted(second) == sorted(taken)


def test_prompts_two_models_answered_alike_are_ties_nobody_is_asked_about(app, world):
    """Leaving them out would compute the win rate on the prompts where the models differ only: here model A wins
    the one prompt that differs (win rate 1.0 without the ties), and ties the two it answered alike (0.5 each,
    counted once per annotator the project wants): (2·1 + 4·0.5) / 6 = 2/3."""
    a = jsonl([{"id": i, "prompt": f"q{i}", "response": r} for i, r in enumerate(["good", "same", "same too"])])
    b = jsonl([{"id": i, "prompt": f"q{i}", "response": r} for i, r in enumerate(["bad", "same", "same too"])])
    with app.state.db.transaction() as s:
        admin = s.get(User, world["admin"])
        project = store.create_project(s, admin, "alike", "g", overlap=2)
        tasks.add_items(s, admin, project.id, imports.parse_eval_runs({"A": ("a", a), "B": ("b", b)}, "blind").items)
        for name in ("ann1", "ann2"):
            user = s.get(User, world[name])
            s.add(store.Membership(project_id=project.id, user_id=user.id, role="annotator"))
            s.flush()
            assert tasks.queue_counts(s, user, project.id, "blind")["waiting"] == 1        # the alike ones: never
            work_queue(s, user, project.id, "blind", lambda item, shown: {"criteria": {
                c: {"winner": 0, "strength": 2} for c in CRITERIA}})                     # A (import index 0) wins
        board = stats.leaderboard(s, admin, project.id, "helpful", n_bootstrap=20)
        assert (board["n"], board["identical_items"], board["identical_ties"]) == (6, 2, 4)
        names, matrix = board["names"], board["win_rates"]
        assert matrix[names.index("A")][names.index("B")] == pytest.approx(2 / 3, abs=1e-12)
        row = stats.progress(s, admin, project.id)["kinds"]["blind"]
        assert (row["items"], row["identical"], row["target"], row["labels"]) == (3, 2, 2, 2)
        assert export.export(s, admin, project.id, "preferences") and all(
            r["chosen"] == "good" for r in export.export(s, admin, project.id, "preferences"))

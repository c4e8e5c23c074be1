"""Statistics shown in the app: progress, agreement (κ, α) overall / per annotator / against gold, and for blind
evaluations the Bradley–Terry leaderboard, win-rate matrix and a position-bias check. The maths is alignlab.eval.human;
this module only turns labels into its inputs."""

from __future__ import annotations

import math
from collections import defaultdict

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alignlab.annotate.schema import CRITERIA, Candidate, Item, Label, Membership, Project, User
from alignlab.annotate.store import require_admin
from alignlab.eval.human import agreement_per_annotator, bradley_terry, cohens_kappa, win_rate_matrix


def progress(s: Session, user: User, project_id: int) -> dict:
    project = require_admin(s, user, project_id)
    per_kind = {}
    for kind, gold, n_items in s.execute(select(Item.kind, Item.gold.is_not(None), func.count())
                                         .where(Item.project_id == project_id).group_by(Item.kind, Item.gold.is_not(None))):
        row = per_kind.setdefault(kind, {"items": 0, "gold_items": 0, "labels": 0, "target": 0})
        row["gold_items" if gold else "items"] += n_items
        row["target"] += 0 if gold or kind == "demo" else n_items * project.overlap
    for kind, n_items in s.execute(select(Item.kind, func.count()).where(Item.project_id == project_id, Item.identical)
                                   .group_by(Item.kind)):
        per_kind[kind]["target"] -= n_items * project.overlap      # ties nobody is asked about
        per_kind[kind]["identical"] = n_items
    for kind, n in s.execute(select(Item.kind, func.count()).join(Label, Label.item_id == Item.id)
                             .where(Item.project_id == project_id).group_by(Item.kind)):
        per_kind[kind]["labels"] = n
    people = []
    for member, role in s.execute(select(User, Membership.role).join(Membership, Membership.user_id == User.id)
                                  .where(Membership.project_id == project_id).order_by(User.id)):
        counts = dict(s.execute(select(Item.kind, func.count()).join(Label, Label.item_id == Item.id)
                                .where(Item.project_id == project_id, Label.user_id == member.id)
                                .group_by(Item.kind)).all())
        people.append({"name": member.name, "email": member.email, "role": role, "labels": counts})
    return {"kinds": per_kind, "people": people}


def _verdicts(s: Session, project_id: int):
    """(annotator, item, label) for rank/pairwise/blind labels; the annotator is "name (e-mail)": one per account,
    even when two people share a display name."""
    return [(f"{u.name} ({u.email})", item, label) for u, item, label in s.execute(
        select(User, Item, Label).join(Label, Label.item_id == Item.id).join(User, User.id == Label.user_id)
        .where(Item.project_id == project_id, Item.kind.in_(("rank", "pairwise", "blind")))).all()]


def undefined_reason(labels: dict[str, dict]) -> str | None:
    """Why agreement beyond chance cannot be computed on these labels (None when it can)."""
    items = [i for i in {i for per in labels.values() for i in per}
             if sum(i in per for per in labels.values()) >= 2]
    if not items:
        return "no item has labels from two annotators yet"
    values = {per[i] for per in labels.values() for i in items if i in per}
    if len(values) == 1:
        return "every label on the shared items is the same, so agreement beyond chance is undefined"
    return None


def _nominal(kind: str, payload: dict) -> dict[str, object]:
    """One nominal category per question: the best answer for rankings, A/B/tie per criterion for comparisons."""
    if kind == "rank":
        return {"best": payload["ranking"][0] if "ranking" in payload else payload["best"]}
    return {c: ("tie" if v["winner"] is None else v["winner"]) for c, v in payload["criteria"].items()}


def _gold_nominal(kind: str, gold: dict) -> dict[str, object]:
    if kind == "rank":
        return {"best": gold["ranking"][0] if "ranking" in gold else gold["best"]}
    return {c: ("tie" if w is None else w) for c, w in gold.items()}


def agreement(s: Session, user: User, project_id: int) -> dict:
    """{question: agreement_per_annotator(...)} over non-gold items, and per annotator vs gold: accuracy and κ."""
    require_admin(s, user, project_id)
    labels: dict[str, dict[str, dict]] = defaultdict(lambda: defaultdict(dict))   # question → annotator → item
    vs_gold: dict[str, list[tuple[object, object]]] = defaultdict(list)            # annotator → (theirs, gold)
    for name, item, label in _verdicts(s, project_id):
        mine = _nominal(item.kind, label.payload)
        if item.gold is None:
            for question, value in mine.items():
                labels[f"{item.kind}/{question}"][name][item.id] = value
            continue
        for question, value in _gold_nominal(item.kind, item.gold).items():
            vs_gold[name].append((mine[question], value))
    per_question = {}
    for q, per in sorted(labels.items()):
        if len(per) < 2:
            continue
        result = agreement_per_annotator({a: dict(v) for a, v in per.items()})
        overall = result["overall"]
        if overall["krippendorff_alpha"] is not None and math.isnan(overall["krippendorff_alpha"]):
            overall["krippendorff_alpha"] = None
        overall["undefined_because"] = undefined_reason(per)
        per_question[q] = result
    gold = {}
    for name, pairs in sorted(vs_gold.items()):
        theirs, truth = [p[0] for p in pairs], [p[1] for p in pairs]
        kappa = cohens_kappa(theirs, truth) if len(pairs) >= 2 else float("nan")
        gold[name] = {"n": len(pairs), "accuracy": sum(a == b for a, b in pairs) / len(pairs),
                      "kappa": None if math.isnan(kappa) else kappa}
    return {"questions": per_question, "gold": gold}


def leaderboard(s: Session, user: User, project_id: int, criterion: str = "helpful", n_bootstrap: int = 200,
                seed: int = 0) -> dict:
    """Blind evaluation on one criterion: Bradley–Terry with bootstrap intervals, win rates, and position bias —
    the share of decided comparisons won by the answer shown first, with an exact two-sided binomial p-value."""
    require_admin(s, user, project_id)
    assert criterion in CRITERIA, criterion
    comparisons, first_won, decided = [], 0, 0
    rows = s.execute(select(Item.id, Label).join(Label, Label.item_id == Item.id)
                     .where(Item.project_id == project_id, Item.kind == "blind", Item.gold.is_(None))).all()
    models = {(c.item_id, c.index): c.model for c in s.scalars(
        select(Candidate).join(Item, Item.id == Candidate.item_id)
        .where(Item.project_id == project_id, Item.kind == "blind"))}
    for item_id, label in rows:
        winner = label.payload["criteria"][criterion]["winner"]
        outcome = 0.5 if winner is None else (1.0 if winner == 0 else 0.0)
        comparisons.append((models[item_id, 0], models[item_id, 1], outcome))
        if winner is not None:
            decided += 1
            first_won += label.shown_order[0] == winner
    # Prompts where both models gave the same answer: a tie each, as if every one of `overlap` annotators said so.
    identical = s.execute(select(Item.id).where(Item.project_id == project_id, Item.kind == "blind",
                                                Item.identical)).scalars().all()
    project = s.get(Project, project_id)
    for item_id in identical:
        comparisons += [(models[item_id, 0], models[item_id, 1], 0.5)] * project.overlap
    if not comparisons:
        return {"criterion": criterion, "n": 0}
    ratings = bradley_terry(comparisons, n_bootstrap=n_bootstrap, seed=seed)
    names, matrix = win_rate_matrix(comparisons)
    return {"criterion": criterion, "n": len(comparisons), "identical_items": len(identical),
            "identical_ties": len(identical) * project.overlap,
            "ratings": sorted(((m, r.score, r.low, r.high) for m, r in ratings.items()), key=lambda t: -t[1]),
            "names": names, "win_rates": matrix,
            "position_bias": {"decided": decided, "first_shown_won": first_won,
                              "rate": first_won / decided if decided else None,
                              "p_value": binomial_two_sided(first_won, decided)}}


def binomial_two_sided(k: int, n: int) -> float | None:
    """Exact two-sided p-value of k successes in n fair coin flips (sum of outcomes no likelier than k)."""
    if n == 0:
        return None
    probs = [math.comb(n, i) / 2 ** n for i in range(n + 1)]
    return min(1.0, sum(p for p in probs if p <= probs[k] * (1 + 1e-9)))

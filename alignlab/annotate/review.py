"""What a project admin reviews: one item with its answers, labels and skips; the items annotators flagged; the items
whose labels disagree, most disputed first. Admins imported the answers, so they see which model wrote which."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from itertools import combinations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alignlab.annotate.schema import CRITERIA, Assignment, Candidate, Item, Label, Project, User
from alignlab.annotate.store import NotFound, require_admin


@dataclass
class LabelView:
    id: int
    author: str                    # "name (e-mail)"
    created_at: datetime
    guideline_version: int
    verdict: str                   # the label in words, answers named by import letter (A = first imported)
    shown: str                     # the order the author saw the answers in, e.g. "B, A"


@dataclass
class SkipView:
    author: str
    skipped_at: datetime | None    # None: a flag on an item the author went on to label
    reason: str
    flagged: bool


@dataclass
class ItemDetail:
    item: Item
    project: Project
    candidates: list[Candidate]    # import order
    labels: list[LabelView]
    skips: list[SkipView]
    disagreement: float | None


def letter(i: int) -> str:
    """A, B, …, Z, then A2, B2, … — answers never run out of names."""
    return "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[i % 26] + (str(i // 26 + 1) if i >= 26 else "")


def describe(kind: str, payload: dict) -> str:
    """A stored label (import order) in words."""
    if kind in ("demo", "edit"):
        return payload["answer"]
    if "ranking" in payload:
        return " > ".join(letter(i) for i in payload["ranking"])
    if "best" in payload:
        return f"best: {letter(payload['best'])}"
    words = []
    for c, v in payload["criteria"].items():
        words.append(f"{c}: tie" if v["winner"] is None else
                     f"{c}: {letter(v['winner'])} ({('slightly', 'clearly', 'much')[v['strength'] - 1]})")
    return "; ".join(words)


def disagreement(kind: str, payloads: list[dict]) -> float | None:
    """The share of questions on which an item's labels do not all agree (None under two labels, or for written
    answers): per criterion for comparisons, per pair of answers (which is ahead) for rankings, the best answer in
    best-of-K mode. 0 = unanimous, 1 = every question disputed."""
    if len(payloads) < 2 or kind in ("demo", "edit"):
        return None
    if "best" in payloads[0]:
        questions = [[p["best"] for p in payloads]]
    elif "ranking" in payloads[0]:
        positions = [{a: r for r, a in enumerate(p["ranking"])} for p in payloads]
        k = len(payloads[0]["ranking"])
        questions = [[pos[a] < pos[b] for pos in positions] for a, b in combinations(range(k), 2)]
    else:
        questions = [[p["criteria"][c]["winner"] for p in payloads] for c in CRITERIA]
    return sum(len(set(answers)) > 1 for answers in questions) / len(questions)


def _author(user: User) -> str:
    return f"{user.name} ({user.email})"


def item_detail(s: Session, admin: User, item_id: int) -> ItemDetail:
    item = s.get(Item, item_id)
    if item is None:
        raise NotFound(f"item {item_id}")
    project = require_admin(s, admin, item.project_id)
    candidates = list(s.scalars(select(Candidate).where(Candidate.item_id == item_id).order_by(Candidate.index)))
    labels = s.execute(select(Label, User).join(User, User.id == Label.user_id)
                       .where(Label.item_id == item_id).order_by(Label.id)).all()
    views = [LabelView(label.id, _author(user), label.created_at, label.guideline_version,
                       describe(item.kind, label.payload), ", ".join(letter(i) for i in label.shown_order))
             for label, user in labels]
    skips = [SkipView(_author(user), a.skipped_at, a.skip_reason or "", a.flagged) for a, user in s.execute(
        select(Assignment, User).join(User, User.id == Assignment.user_id)
        .where(Assignment.item_id == item_id, (Assignment.skipped_at.is_not(None)) | Assignment.flagged)
        .order_by(Assignment.id))]
    return ItemDetail(item, project, candidates, views, skips,
                      disagreement(item.kind, [label.payload for label, _ in labels]))


def flagged_items(s: Session, admin: User, project_id: int) -> list[tuple[Item, str, str]]:
    """(item, who flagged it, their reason) for every flag in the project, newest first."""
    require_admin(s, admin, project_id)
    return [(item, _author(user), a.skip_reason or "") for a, item, user in s.execute(
        select(Assignment, Item, User).join(Item, Item.id == Assignment.item_id)
        .join(User, User.id == Assignment.user_id)
        .where(Item.project_id == project_id, Assignment.flagged).order_by(Assignment.id.desc()))]


def disputed_items(s: Session, admin: User, project_id: int, limit: int = 100) -> tuple[list[tuple[Item, float, int]],
                                                                                        int]:
    """The items whose labels disagree, most disputed first (then by id): [(item, disagreement, labels)] up to
    `limit`, and how many items have two labels or more (the denominator a reviewer needs)."""
    require_admin(s, admin, project_id)
    multi = select(Label.item_id).join(Item, Item.id == Label.item_id).where(
        Item.project_id == project_id, Item.kind.in_(("rank", "pairwise", "blind"))).group_by(Label.item_id) \
        .having(func.count() >= 2)
    by_item: dict[int, list[dict]] = {}
    for item_id, payload in s.execute(select(Label.item_id, Label.payload).where(Label.item_id.in_(multi))
                                      .order_by(Label.id)):
        by_item.setdefault(item_id, []).append(payload)
    items = {i.id: i for i in s.scalars(select(Item).where(Item.id.in_(list(by_item))))} if by_item else {}
    scored = [(items[i], disagreement(items[i].kind, p), len(p)) for i, p in by_item.items()]
    disputed = sorted((row for row in scored if row[1]), key=lambda r: (-r[1], r[0].id))
    return disputed[:limit], len(scored)

"""Items, queues and labels: what an annotator is given, what they may see, and what a valid label is.

Blind evaluation (issue 7 §3e): candidate model names never leave this module towards a page or the API; the order
of candidates and of items is a per-annotator permutation seeded by (project seed, user, item), and the order shown
is stored with the label so position bias can be measured.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from alignlab.annotate.schema import (CRITERIA, KINDS, ROLE_KINDS, Assignment, Candidate, Item, Label, Project, User,
                                      utcnow)
from alignlab.annotate.store import (ASSIGNMENT_TTL, STRENGTHS, InvalidInput, NewItem, NotFound, audit, guideline,
                                     json_int, require_admin, role_in)


@dataclass
class Task:
    """What one annotator sees of one item: candidates in their shown order, without model names."""
    item: Item
    project: Project
    shown: list[tuple[int, str]]   # (candidate index in import order, text), in display order
    guideline_text: str
    guideline_version: int
    label: Label | None            # the caller's own label, once submitted
    assignment: Assignment         # when it was taken, and whether the caller skipped or flagged it


def add_items(s: Session, user: User, project_id: int, items: list[NewItem]) -> list[Item]:
    """Adds validated items (see imports.py) in the caller's transaction: all of them or, on error, none."""
    require_admin(s, user, project_id)
    rows = []
    for new in items:
        item = Item(project_id=project_id, kind=new.kind, prompt=new.prompt, source=new.source, gold=new.gold,
                    request_key=new.request_key, identical=new.identical)
        s.add(item)
        s.flush()
        s.add_all(Candidate(item_id=item.id, index=i, text=text, model=model)
                  for i, (text, model) in enumerate(new.candidates))
        rows.append(item)
    audit(s, user.id, "add_items", f"project:{project_id}", count=len(rows),
          sources=sorted({n.source.rsplit(":", 1)[0] for n in items})[:10])
    return rows


def write_demo(s: Session, user: User, project_id: int, prompt: str, answer: str, client_id: str) -> Item:
    """A prompter's demonstration: a new prompt and its ideal answer, stored as an item with its label."""
    if "demo" not in ROLE_KINDS[role_in(s, user, project_id)]:
        raise NotFound(f"project {project_id}")
    if not prompt.strip() or not answer.strip():
        raise InvalidInput("write both a prompt and an ideal answer")
    done = s.scalar(select(Label).join(Item).where(Item.project_id == project_id, Label.user_id == user.id,
                                                   Label.client_id == client_id))
    if done is not None:   # the same form submitted twice
        return s.get(Item, done.item_id)
    project = s.get(Project, project_id)
    item = Item(project_id=project_id, kind="demo", prompt=prompt.strip(), source=f"written by user {user.id}")
    s.add(item)
    s.flush()
    s.add(Assignment(item_id=item.id, user_id=user.id))
    s.add(Label(item_id=item.id, user_id=user.id, payload={"answer": answer.strip()}, shown_order=[],
                guideline_version=project.guideline_version, client_id=client_id))
    audit(s, user.id, "write_demo", f"item:{item.id}", client_id=client_id)
    return item


def _order_key(project: Project, user_id: int, item_id: int) -> str:
    return hashlib.sha256(f"{project.seed}:{user_id}:{item_id}".encode()).hexdigest()


def shown_order(project: Project, user_id: int, item_id: int, k: int) -> list[int]:
    order = list(range(k))
    random.Random(_order_key(project, user_id, item_id)).shuffle(order)
    return order


def next_item(s: Session, user: User, project_id: int, kind: str, take: bool = True) -> Item | None:
    """The caller's open assignment of this kind, or a new one: an item they have not seen whose live assignments
    are below the project's overlap (gold items go to everyone) — items others already hold first, then in the
    caller's own random order. With take=False nothing is written: the item that would be handed out, or None."""
    if kind not in KINDS or kind == "demo" or kind not in ROLE_KINDS[role_in(s, user, project_id)]:
        raise NotFound(f"{kind} tasks in project {project_id}")
    # Lock the project row so two annotators cannot both take an item's last slot (PostgreSQL; SQLite's
    # BEGIN IMMEDIATE already serialises writers).
    query = select(Project).where(Project.id == project_id)
    project = s.scalar(query.with_for_update() if take else query)
    has_label = exists().where(Label.item_id == Assignment.item_id, Label.user_id == Assignment.user_id)
    open_one = s.scalar(select(Item).join(Assignment, Assignment.item_id == Item.id)
                        .where(Item.project_id == project_id, Item.kind == kind, Assignment.user_id == user.id,
                               Assignment.skipped_at.is_(None), ~has_label).order_by(Assignment.id).limit(1))
    if open_one is not None:
        return open_one
    ids, gold_ids, held = _takeable(s, user, project, kind)
    if not ids:
        return None
    # Items someone has already taken first (their overlap fills, so agreement is measurable early), then the
    # caller's own random order; gold items count as untaken.
    item_id = min(ids, key=lambda i: (-(0 if i in gold_ids else held.get(i, 0)), _order_key(project, user.id, i)))
    if not take:
        return s.get(Item, item_id)
    s.add(Assignment(item_id=item_id, user_id=user.id))
    audit(s, user.id, "assign", f"item:{item_id}")
    return s.get(Item, item_id)


def _takeable(s: Session, user: User, project: Project, kind: str) -> tuple[list[int], set[int], dict[int, int]]:
    """(ids of the items the caller may take, which of them are gold, slots held per item). Slots held: submitted
    labels plus assignments younger than the TTL and not skipped (one grouped scan, not a correlated count per
    item). An item the caller took once (labelled, skipped or open) is never handed to them again."""
    has_label = exists().where(Label.item_id == Assignment.item_id, Label.user_id == Assignment.user_id)
    held = dict(s.execute(select(Assignment.item_id, func.count()).join(Item, Item.id == Assignment.item_id)
                          .where(Item.project_id == project.id, Item.kind == kind,
                                 or_(has_label, and_(Assignment.skipped_at.is_(None),
                                                     Assignment.created_at > utcnow() - ASSIGNMENT_TTL)))
                          .group_by(Assignment.item_id)).all())
    mine = set(s.scalars(select(Assignment.item_id).join(Item, Item.id == Assignment.item_id)
                         .where(Item.project_id == project.id, Item.kind == kind, Assignment.user_id == user.id)))
    gold_ids, ids = set(), []
    for item_id, gold in s.execute(select(Item.id, Item.gold.is_not(None))
                                   .where(Item.project_id == project.id, Item.kind == kind, ~Item.identical)):
        if item_id not in mine and (gold or held.get(item_id, 0) < project.overlap):
            ids.append(item_id)
            if gold:
                gold_ids.add(item_id)
    return ids, gold_ids, held


def queue_counts(s: Session, user: User, project_id: int, kind: str) -> dict[str, int]:
    """{"done": the caller's labels on this kind of task in the project, "waiting": items they could still take
    (not counting the one open now)} — the progress an annotator sees."""
    done = s.scalar(select(func.count()).select_from(Label).join(Item, Item.id == Label.item_id)
                    .where(Item.project_id == project_id, Item.kind == kind, Label.user_id == user.id))
    return {"done": done, "waiting": len(_takeable(s, user, s.get(Project, project_id), kind)[0])}


def task(s: Session, user: User, item_id: int) -> Task:
    """The caller's view of an item they were assigned; anything else is NotFound."""
    item = s.get(Item, item_id)
    assignment = None if item is None else s.scalar(select(Assignment).where(Assignment.item_id == item_id,
                                                                             Assignment.user_id == user.id))
    if assignment is None:
        raise NotFound(f"item {item_id}")
    role_in(s, user, item.project_id)   # membership revoked → no access
    project = s.get(Project, item.project_id)
    candidates = {c.index: c.text for c in s.scalars(select(Candidate).where(Candidate.item_id == item_id))}
    order = shown_order(project, user.id, item_id, len(candidates))
    label = s.scalar(select(Label).where(Label.item_id == item_id, Label.user_id == user.id))
    version = label.guideline_version if label else project.guideline_version
    return Task(item=item, project=project, shown=[(i, candidates[i]) for i in order],
                guideline_text=guideline(s, project, version).text, guideline_version=version, label=label,
                assignment=assignment)


def from_shown(t: Task, payload: dict) -> dict:
    """A payload written in the annotator's display positions (0 = the first answer shown: what the page and the
    JSON API expose, so neither reveals which import index — which model — an answer is) → import order. Anything
    that is not a valid position is passed through for validate_payload to refuse."""
    order = [i for i, _ in t.shown]

    def to_import(p):
        return order[p] if isinstance(p, int) and not isinstance(p, bool) and 0 <= p < len(order) else p
    if not isinstance(payload, dict):
        return payload
    if "ranking" in payload and isinstance(payload["ranking"], list):
        return {**payload, "ranking": [to_import(p) for p in payload["ranking"]]}
    if "best" in payload:
        return {**payload, "best": to_import(payload["best"])}
    if isinstance(payload.get("criteria"), dict):
        return {**payload, "criteria": {c: ({**v, "winner": to_import(v.get("winner"))} if isinstance(v, dict) else v)
                                        for c, v in payload["criteria"].items()}}
    return payload


def submit_label(s: Session, user: User, item_id: int, payload: dict, client_id: str) -> tuple[Label, bool]:
    """Store the caller's label; returns (label, created). A retry with the same client_id is acknowledged again
    without a second row; a different label for an item already labelled is refused (labels are immutable)."""
    t = task(s, user, item_id)
    if t.label is not None:
        if t.label.client_id == client_id:
            return t.label, False
        raise InvalidInput(f"you already submitted a label for item {item_id}; labels cannot be changed")
    clean = validate_payload(t.item.kind, t.project.rank_mode, len(t.shown), payload)
    t.assignment.skipped_at = None     # labelling an item one skipped takes the skip back (a flag stays for admins)
    label = Label(item_id=item_id, user_id=user.id, payload=clean, shown_order=[i for i, _ in t.shown],
                  guideline_version=t.project.guideline_version, client_id=client_id)
    try:
        with s.begin_nested():   # a concurrent retry of the same submission (PostgreSQL) hits the unique key
            s.add(label)
    except IntegrityError:
        return submit_label(s, user, item_id, payload, client_id)
    audit(s, user.id, "label", f"item:{item_id}", client_id=client_id, guideline_version=label.guideline_version)
    return label, True


SKIP_REASON_MAX = 500


def skip_item(s: Session, user: User, item_id: int, reason: str = "", flag: bool = False) -> None:
    """The caller passes on an item they were given: it leaves their queue, its slot opens for someone else, and it
    is never handed to them again. Flagged (with a reason: broken, unsafe, unclear…), it is listed for the admins
    on the review page. Skipping an item one has labelled is refused: withdraw the label first."""
    t = task(s, user, item_id)
    if t.item.kind == "demo":
        raise NotFound(f"item {item_id}")
    if t.label is not None:
        raise InvalidInput(f"you labelled item {item_id}; withdraw your label before skipping it")
    reason = reason.strip()
    if flag and not reason:
        raise InvalidInput("say what is wrong with the item when you flag it (the admins read it)")
    if len(reason) > SKIP_REASON_MAX:
        raise InvalidInput(f"the reason is {len(reason)} characters long; keep it under {SKIP_REASON_MAX}")
    t.assignment.skipped_at = utcnow()
    t.assignment.skip_reason = reason or None
    t.assignment.flagged = t.assignment.flagged or flag
    audit(s, user.id, "flag_item" if flag else "skip_item", f"item:{item_id}", reason=reason)


def withdraw_label(s: Session, user: User, item_id: int) -> None:
    """The author takes their label back while the item is still open (fewer labels than the project's overlap;
    a gold item stays open). The assignment stays: the item is back in their queue to label again."""
    t = task(s, user, item_id)
    if t.label is None:
        raise InvalidInput(f"you have no label on item {item_id} to withdraw")
    labels = s.scalar(select(func.count()).select_from(Label).where(Label.item_id == item_id))
    if t.item.gold is None and labels >= t.project.overlap:
        raise InvalidInput(f"item {item_id} has all its {t.project.overlap} labels and is closed; ask a project "
                           "admin to void your label")
    audit(s, user.id, "withdraw_label", f"item:{item_id}", payload=t.label.payload)
    s.delete(t.label)


def item_of_label(s: Session, admin: User, label_id: int) -> tuple[Item, Label]:
    """The item a label is on, for a project admin of that item (anyone else: NotFound)."""
    label = s.get(Label, label_id)
    if label is None:
        raise NotFound(f"label {label_id}")
    item = s.get(Item, label.item_id)
    require_admin(s, admin, item.project_id)
    return item, label


def void_label(s: Session, admin: User, label_id: int, reason: str) -> None:
    """A project admin removes a bad label (its payload, author and the reason stay in the audit log); the author's
    assignment goes too, so the slot opens for anyone."""
    item, label = item_of_label(s, admin, label_id)
    if not reason.strip():
        raise InvalidInput("say why the label is voided (it is kept in the audit log)")
    audit(s, admin.id, "void_label", f"item:{item.id}", label=label_id, author=label.user_id, payload=label.payload,
          reason=reason.strip()[:500])
    for a in s.scalars(select(Assignment).where(Assignment.item_id == item.id, Assignment.user_id == label.user_id)):
        s.delete(a)
    s.delete(label)


def validate_payload(kind: str, rank_mode: str, k: int, payload: dict) -> dict:
    """The stored label shapes (candidate indices are in import order):
    edit {"answer": str}; rank {"ranking": [best, …, worst]} or, in best-of-K mode, {"best": i};
    pairwise/blind {"criteria": {criterion: {"winner": 0|1|None (tie), "strength": 1-3 (0 for a tie)}}}.
    Only these shapes with JSON integers are accepted: anything else would be stored and break every export."""
    if kind == "edit":
        answer = payload.get("answer")
        if not isinstance(answer, str) or not answer.strip():
            raise InvalidInput("the edited answer is empty; write the improved answer")
        return {"answer": answer.strip()}
    if kind == "rank" and rank_mode == "best":
        best = payload.get("best")
        if not json_int(best) or not 0 <= best < k:
            raise InvalidInput(f"pick the best answer (one of {k})")
        return {"best": best}
    if kind == "rank":
        ranking = payload.get("ranking")
        if not isinstance(ranking, list) or not all(json_int(r) for r in ranking) or sorted(ranking) != list(range(k)):
            raise InvalidInput(f"give every one of the {k} answers a different rank, 1 (best) to {k}")
        return {"ranking": ranking}
    criteria = payload.get("criteria")
    if not isinstance(criteria, dict) or set(criteria) != set(CRITERIA) or \
            not all(isinstance(v, dict) for v in criteria.values()):
        raise InvalidInput(f"give a verdict for each of: {', '.join(CRITERIA)}")
    clean = {}
    for name in CRITERIA:
        winner, strength = criteria[name].get("winner"), criteria[name].get("strength", 0)
        if not (winner is None or (json_int(winner) and winner in (0, 1))) or \
                (winner is not None and not (json_int(strength) and strength in STRENGTHS)):
            raise InvalidInput(f"{name}: choose A, B or tie, and a strength 1-3 unless it is a tie")
        clean[name] = {"winner": winner, "strength": 0 if winner is None else strength}
    return {"criteria": clean}


def prompt_text(prompt: str | list) -> str:
    """The words of a prompt as people read them: the text, or a chat's turns' contents (not its JSON keys)."""
    return prompt if isinstance(prompt, str) else "\n".join(str(m.get("content", "")) for m in prompt)


def search_items(s: Session, user: User, project_id: int, query: str, kind: str | None, page: int = 1,
                 per_page: int = 50) -> tuple[list[tuple[Item, int]], int]:
    """Admin view: one page of the items whose prompt text contains `query` (any case; matched in Python on the
    text itself, never in SQL), with their label counts; and how many items match in all."""
    require_admin(s, user, project_id)
    stmt = select(Item.id, Item.prompt).where(Item.project_id == project_id).order_by(Item.id)
    if kind:
        stmt = stmt.where(Item.kind == kind)
    needle = query.casefold()
    ids = [item_id for item_id, prompt in s.execute(stmt) if needle in prompt_text(prompt).casefold()]
    shown = ids[(max(page, 1) - 1) * per_page:max(page, 1) * per_page]
    if not shown:
        return [], len(ids)
    n_labels = select(func.count()).select_from(Label).where(Label.item_id == Item.id).scalar_subquery()
    rows = s.execute(select(Item, n_labels).where(Item.id.in_(shown)).order_by(Item.id))
    return [(item, n) for item, n in rows], len(ids)


def add_request(s: Session, user: User, project_id: int, new: NewItem) -> Item:
    """An item posted by a machine (the online RLHF loop); posting the same request_key again returns the same item."""
    require_admin(s, user, project_id)
    found = s.scalar(select(Item).where(Item.project_id == project_id, Item.request_key == new.request_key))
    return found if found is not None else add_items(s, user, project_id, [new])[0]


def item_labels(s: Session, user: User, item_id: int) -> tuple[Item, list[Label]]:
    """Admin view of the labels on one item (for machines waiting for human verdicts, and voiding a bad one)."""
    item = s.get(Item, item_id)
    if item is None:
        raise NotFound(f"item {item_id}")
    require_admin(s, user, item.project_id)
    return item, list(s.scalars(select(Label).where(Label.item_id == item_id).order_by(Label.id)))

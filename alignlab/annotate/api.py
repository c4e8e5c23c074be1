"""JSON API for machines: `Authorization: Bearer TOKEN` (tokens from the home page or `alignlab annotate token`).
No cookies are read here, so the API needs no CSRF token and a page cannot be tricked into calling it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from alignlab.annotate import export, imports, store, tasks
from alignlab.annotate.db import db_of
from alignlab.annotate.schema import Project, User

router = APIRouter(prefix="/api/v1")


class LabelIn(BaseModel):
    client_id: str
    payload: dict[str, Any]


class RequestIn(BaseModel):
    request_key: str
    kind: str
    prompt: str | list[dict[str, str]]
    responses: list[str | dict[str, str]] = []
    """Answers to compare: strings, or {"text", "model"} (blind items need the model names)."""
    draft: str | None = None
    """Edit items: the drafted answer an editor improves."""


def api_user(s, request: Request) -> User:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    user = store.user_for_api_token(s, token) if scheme.lower() == "bearer" and token else None
    if user is None:
        raise store.NotFound("api token")   # 404 like every other refusal: nothing to learn by probing
    return user


def task_json(t: tasks.Task) -> dict:
    """What an annotator client sees: no model names, candidates in this annotator's order, each indexed by its
    position there (labels are posted in these positions; the import order stays on the server)."""
    return {"item_id": t.item.id, "project_id": t.project.id, "kind": t.item.kind, "prompt": t.item.prompt,
            "rank_mode": t.project.rank_mode, "candidates": [{"index": p, "text": text} for p, (_, text) in
                                                             enumerate(t.shown)],
            "guideline_version": t.guideline_version, "submitted": t.label is not None,
            "skipped": t.assignment.skipped_at is not None}


@router.get("/health")
def health() -> dict:
    return {"ok": True}


@router.get("/projects")
def projects(request: Request) -> list[dict]:
    with db_of(request).transaction() as s:
        user = api_user(s, request)
        return [{"id": p.id, "name": p.name, "role": role} for p, role in store.my_projects(s, user)]


@router.get("/projects/{project_id}/next/{kind}")
def open_task(request: Request, project_id: int, kind: str) -> dict:
    """Writes nothing: the caller's open task of this kind, or null with whether one is waiting (POST takes it)."""
    with db_of(request).transaction() as s:
        user = api_user(s, request)
        item = tasks.next_item(s, user, project_id, kind, take=False)
        try:
            return {"task": None if item is None else task_json(tasks.task(s, user, item.id))}
        except store.NotFound:                      # waiting, not yet the caller's
            return {"task": None, "available": True}


@router.post("/projects/{project_id}/next/{kind}")
def next_task(request: Request, project_id: int, kind: str) -> dict:
    """Take the next task of this kind (or get back the open one): {"task": ... or null}."""
    with db_of(request).transaction() as s:
        user = api_user(s, request)
        item = tasks.next_item(s, user, project_id, kind)
        return {"task": None if item is None else task_json(tasks.task(s, user, item.id))}


@router.get("/items/{item_id}")
def get_task(request: Request, item_id: int) -> dict:
    with db_of(request).transaction() as s:
        user = api_user(s, request)
        return task_json(tasks.task(s, user, item_id))


@router.post("/items/{item_id}/label")
def label(request: Request, item_id: int, body: LabelIn) -> dict:
    with db_of(request).transaction() as s:
        user = api_user(s, request)
        payload = tasks.from_shown(tasks.task(s, user, item_id), body.payload)    # display positions → import order
        row, created = tasks.submit_label(s, user, item_id, payload, body.client_id)
        return {"label_id": row.id, "created": created}


@router.delete("/items/{item_id}/label")
def withdraw(request: Request, item_id: int) -> dict:
    """The caller takes back their label while the item is open."""
    with db_of(request).transaction() as s:
        tasks.withdraw_label(s, api_user(s, request), item_id)
        return {"withdrawn": True}


class SkipIn(BaseModel):
    reason: str = ""
    flag: bool = False


@router.post("/items/{item_id}/skip")
def skip(request: Request, item_id: int, body: SkipIn) -> dict:
    """The caller passes on an item (flagged: listed for the admins with the reason); it is not handed out to them
    again and its slot opens for someone else."""
    with db_of(request).transaction() as s:
        tasks.skip_item(s, api_user(s, request), item_id, body.reason, body.flag)
        return {"skipped": True, "flagged": body.flag}


class VoidIn(BaseModel):
    reason: str


@router.post("/labels/{label_id}/void")
def void(request: Request, label_id: int, body: VoidIn) -> dict:
    """A project admin removes a label; the audit log keeps it, its author and the reason."""
    with db_of(request).transaction() as s:
        tasks.void_label(s, api_user(s, request), label_id, body.reason)
        return {"voided": True}


@router.post("/projects/{project_id}/requests")
def post_request(request: Request, project_id: int, body: RequestIn) -> dict:
    record = {"prompt": body.prompt, "responses": body.responses}
    if body.draft is not None:
        record["draft"] = body.draft
    new = imports.item_from_record(f"api:{body.request_key}", record, body.kind)
    new.request_key = body.request_key
    with db_of(request).transaction() as s:
        user = api_user(s, request)
        item = tasks.add_request(s, user, project_id, new)
        return {"item_id": item.id, "overlap": s.get(Project, project_id).overlap}


@router.get("/items/{item_id}/labels")
def item_labels(request: Request, item_id: int) -> dict:
    with db_of(request).transaction() as s:
        user = api_user(s, request)
        item, labels = tasks.item_labels(s, user, item_id)
        project = s.get(Project, item.project_id)
        return {"item_id": item.id, "kind": item.kind, "rank_mode": project.rank_mode, "overlap": project.overlap,
                "labels": [label.payload for label in labels], "label_ids": [label.id for label in labels]}


@router.get("/projects/{project_id}/export/{what}")
def export_records(request: Request, project_id: int, what: str, criterion: str = "") -> list[dict]:
    with db_of(request).transaction() as s:
        user = api_user(s, request)
        return export.export(s, user, project_id, what, criterion or None)

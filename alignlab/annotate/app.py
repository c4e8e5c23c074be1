"""The web app: server-rendered pages for people (cookie session + CSRF token) and a JSON API for machines (api.py,
bearer tokens). Every route runs its work in one explicit transaction that commits before the response is sent,
so an acknowledged write is a stored write.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from alignlab.annotate import export, imports, review, stats, store, tasks
from alignlab.annotate.db import Database, db_of
from alignlab.annotate.migrations import migrate
from alignlab.annotate.schema import CRITERIA, KINDS, ROLE_KINDS, Project, User
from alignlab.annotate import security
from alignlab.annotate.security import same_token

HERE = Path(__file__).parent
COOKIE = "alignlab_session"
CSRF_COOKIE = "alignlab_csrf"
"""Anonymous visitors (login and invitation forms) carry their CSRF token in this cookie, not in a stored session:
a visit that does not log in writes nothing."""
MAX_ID = 2 ** 63 - 1
templates = Jinja2Templates(directory=HERE / "templates")   # autoescape on: prompts are shown as text, never HTML


class LoginRequired(Exception):
    pass


class CsrfRejected(Exception):
    pass


@dataclass
class Web:
    """The caller of a page: their session row (CSRF token) and user (None before login)."""
    user: User | None
    csrf: str


def create_app(db: str, trusted_hosts: list[str] | None = None) -> FastAPI:
    """The app on database `db`. With `trusted_hosts`, a request whose Host header is not one of them is refused (400),
    so links the app builds (invitations) never point elsewhere; `alignlab annotate serve` always sets them."""
    database = Database(db)
    migrate(database.engine)
    app = FastAPI(title="alignlab annotate", docs_url=None, redoc_url=None)
    app.state.db = database
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    _errors(app)
    _pages(app)

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        # An id no database column can hold is an id that does not exist (not a 500 from the driver).
        if any(part.isdigit() and int(part) > MAX_ID for part in request.url.path.split("/")):
            return (JSONResponse({"error": "not found"}, status_code=404) if request.url.path.startswith("/api/")
                    else Response("Not found", status_code=404, media_type="text/plain"))
        # No scripts, frames or third-party loads anywhere; no Referer, so invitation links in URLs do not leak.
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = "default-src 'self'; frame-ancestors 'none'; form-action 'self'"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        if not request.url.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"        # Back after logout shows nothing private
        return response

    from alignlab.annotate.api import router
    app.include_router(router)
    if trusted_hosts:
        from starlette.middleware.trustedhost import TrustedHostMiddleware
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=trusted_hosts)
    return app


def _errors(app: FastAPI) -> None:
    def page(request: Request, status: int, title: str, message: str) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": message}, status_code=status)
        return templates.TemplateResponse(request, "message.html", {"title": title, "message": message, "web": None},
                                          status_code=status)

    @app.exception_handler(store.NotFound)
    def not_found(request: Request, exc: store.NotFound):
        return page(request, 404, "Not found", "There is nothing here for you.")

    @app.exception_handler(store.InvalidInput)
    def invalid(request: Request, exc: store.InvalidInput):
        return page(request, 400, "Please correct this", str(exc))

    @app.exception_handler(imports.ImportFailure)
    def import_failed(request: Request, exc: imports.ImportFailure):
        return page(request, 400, "Import refused (nothing was imported)", str(exc))

    @app.exception_handler(CsrfRejected)
    def csrf(request: Request, exc: CsrfRejected):
        return page(request, 403, "Form expired", "The form's security token is missing or wrong; reload the page "
                                                  "and submit again.")

    @app.exception_handler(LoginRequired)
    def login(request: Request, exc: LoginRequired):
        return RedirectResponse("/login", status_code=303)



async def form_data(request: Request) -> FormData:
    return await request.form()


def web(s: Session, request: Request, form: FormData | None = None, login: bool = True) -> Web:
    """Who is calling; for a POST (`form` given) the CSRF token must match the session's."""
    row = store.find_session(s, request.cookies.get(COOKIE, ""))
    expected = row.csrf_token if row else request.cookies.get(CSRF_COOKIE, "")
    if form is not None and (not expected or not same_token(str(form.get("csrf_token", "")), expected)):
        raise CsrfRejected()
    user = s.get(User, row.user_id) if row and row.user_id else None
    if login and user is None:
        raise LoginRequired()
    return Web(user, expected)


def anonymous_page(request: Request, w: Web, name: str, **context) -> HTMLResponse:
    """A login or invitation form for a visitor: its CSRF token goes in a cookie, nothing is stored."""
    if w.csrf:
        return render(request, name, w, **context)
    token = security.new_token()
    response = render(request, name, Web(None, token), **context)
    response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict")
    return response


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def render(request: Request, name: str, w: Web, **context) -> HTMLResponse:
    return templates.TemplateResponse(request, name, {"web": w, "criteria": CRITERIA, **context})


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def logged_out() -> RedirectResponse:
    """To the login page, the session cookie dropped."""
    response = see_other("/login")
    response.delete_cookie(COOKIE)
    return response


def set_session_cookie(response: Response, token: str) -> Response:
    response.set_cookie(COOKIE, token, httponly=True, samesite="lax", max_age=int(store.SESSION_TTL.total_seconds()))
    return response


def _pages(app: FastAPI) -> None:
    @app.get("/login")
    def login_page(request: Request):
        with db_of(request).transaction() as s:
            w = web(s, request, login=False)
        if w.user:
            return see_other("/")
        return anonymous_page(request, w, "login.html", error=None)

    @app.post("/login")
    def login(request: Request, form: FormData = Depends(form_data)):
        # Three steps, so that the slow password hash runs outside the database's write lock: read the hash (and the
        # throttle), verify, then start the session or record the failure.
        email, password, address = str(form.get("email", "")), str(form.get("password", "")), client_address(request)
        with db_of(request).transaction() as s:
            w = web(s, request, form, login=False)
            throttled = store.login_throttled(s, email, address)
            if throttled:
                store.audit(s, None, "login_throttled", f"account:{email.strip().lower()}"[:100], address=address)
            stored = store.password_hash_of(s, email)
        if throttled:
            response = render(request, "login.html", w, error="Too many failed logins for this account or from this "
                              f"address: wait {int(store.LOGIN_WINDOW.total_seconds() // 60)} minutes and try again, "
                              "or ask an admin to reset your password.")
            response.status_code = 429
            return response
        ok = security.verify_password(stored or security.dummy_hash(), password) and stored is not None
        with db_of(request).transaction() as s:
            if not ok:
                store.record_failed_login(s, email, address)
                return render(request, "login.html", w, error="Wrong e-mail or password.")
            user = s.scalar(select(User).where(User.email == email.strip().lower()))
            store.end_session(s, request.cookies.get(COOKIE, ""))
            token, _ = store.start_session(s, user.id)
            store.audit(s, user.id, "login", f"user:{user.id}", address=address)
        return set_session_cookie(see_other("/"), token)

    @app.post("/logout")
    def logout(request: Request, form: FormData = Depends(form_data)):
        with db_of(request).transaction() as s:
            web(s, request, form)
            store.end_session(s, request.cookies.get(COOKIE, ""))
        return logged_out()

    @app.post("/logout-everywhere")
    def logout_everywhere(request: Request, form: FormData = Depends(form_data)):
        with db_of(request).transaction() as s:
            w = web(s, request, form)
            store.end_all_sessions(s, w.user.id)
        return logged_out()

    @app.post("/password")
    def change_password(request: Request, form: FormData = Depends(form_data)):
        with db_of(request).transaction() as s:
            w = web(s, request, form)
            store.change_password(s, w.user, str(form.get("current", "")), str(form.get("new", "")),
                                  keep_session=request.cookies.get(COOKIE, ""))
            return render(request, "message.html", w, title="Password changed",
                          message="Your password is changed; your other sessions have ended.", back="/")

    @app.post("/tokens/{token_id}/revoke")
    def revoke_token(request: Request, token_id: int, form: FormData = Depends(form_data)):
        with db_of(request).transaction() as s:
            w = web(s, request, form)
            store.revoke_api_token(s, w.user, token_id)
        return see_other("/")

    @app.post("/users/{user_id}/reset-password")
    def reset_password(request: Request, user_id: int, form: FormData = Depends(form_data)):
        with db_of(request).transaction() as s:
            w = web(s, request, form)
            password = store.reset_password(s, w.user, user_id)
            return render(request, "message.html", w, title="Password reset",
                          message=f"The new password of user {user_id} is {password} — hand it over yourself; it is "
                                  "not shown again. Their sessions have ended.", back="/")

    @app.post("/projects/{project_id}/members/{user_id}")
    def member(request: Request, project_id: int, user_id: int, form: FormData = Depends(form_data)):
        with db_of(request).transaction() as s:
            w = web(s, request, form)
            role = str(form.get("role", ""))
            store.set_role(s, w.user, project_id, user_id, None if role == "remove" else role)
        return see_other(f"/projects/{project_id}")

    @app.post("/projects/{project_id}/invitations/{invitation_id}/revoke")
    def revoke_invitation(request: Request, project_id: int, invitation_id: int, form: FormData = Depends(form_data)):
        with db_of(request).transaction() as s:
            w = web(s, request, form)
            store.revoke_invitation(s, w.user, project_id, invitation_id)
        return see_other(f"/projects/{project_id}")

    @app.get("/")
    def home(request: Request):
        with db_of(request).transaction() as s:
            w = web(s, request)
            return render(request, "home.html", w, projects=store.my_projects(s, w.user), api_token=None,
                          tokens=store.api_tokens(s, w.user))

    @app.post("/tokens")
    def new_api_token(request: Request, form: FormData = Depends(form_data)):
        with db_of(request).transaction() as s:
            w = web(s, request, form)
            token = store.create_api_token(s, w.user, str(form.get("name", "api")))
            return render(request, "home.html", w, projects=store.my_projects(s, w.user), api_token=token,
                          tokens=store.api_tokens(s, w.user))

    @app.post("/projects")
    def create_project(request: Request, form: FormData = Depends(form_data)):
        with db_of(request).transaction() as s:
            w = web(s, request, form)
            project = store.create_project(s, w.user, str(form.get("name", "")), str(form.get("guidelines", "")),
                                           overlap=_int(form.get("overlap"), "overlap"),
                                           rank_mode=str(form.get("rank_mode", "rank")))
        return see_other(f"/projects/{project.id}")

    @app.get("/projects/{project_id}")
    def project_page(request: Request, project_id: int):
        with db_of(request).transaction() as s:
            w = web(s, request)
            role = store.role_in(s, w.user, project_id)
            project = s.get(Project, project_id)
            return render(request, "project.html", w, project=project, role=role, kinds=ROLE_KINDS[role],
                          guideline=store.guideline(s, project).text, invite_link=None,
                          progress=stats.progress(s, w.user, project_id) if role == "admin" else None,
                          **_admin_lists(s, w.user, project_id, role))

    @app.post("/projects/{project_id}/invite")
    def invite(request: Request, project_id: int, form: FormData = Depends(form_data)):
        with db_of(request).transaction() as s:
            w = web(s, request, form)
            token = store.invite(s, w.user, project_id, str(form.get("email", "")), str(form.get("role", "")))
            project = s.get(Project, project_id)
            return render(request, "project.html", w, project=project, role="admin", kinds=KINDS,
                          guideline=store.guideline(s, project).text, progress=stats.progress(s, w.user, project_id),
                          invite_link=str(request.url_for("invitation", token=token)),
                          invite_email=str(form.get("email", "")), **_admin_lists(s, w.user, project_id, "admin"))

    @app.get("/invite/{token}", name="invitation")
    def invitation_page(request: Request, token: str):
        with db_of(request).transaction() as s:
            inv = store.find_invitation(s, token)
            project = s.get(Project, inv.project_id)
            w = web(s, request, login=False)
        return anonymous_page(request, w, "invite.html", invitation=inv, project=project)

    @app.post("/invite/{token}")
    def accept(request: Request, token: str, form: FormData = Depends(form_data)):
        with db_of(request).transaction() as s:
            web(s, request, form, login=False)
            user, project_id = store.accept_invitation(s, token, str(form.get("name", "")),
                                                       str(form.get("password", "")))
            store.end_session(s, request.cookies.get(COOKIE, ""))
            cookie, _ = store.start_session(s, user.id)
        return set_session_cookie(see_other(f"/projects/{project_id}"), cookie)

    @app.post("/projects/{project_id}/guidelines")
    def guidelines(request: Request, project_id: int, form: FormData = Depends(form_data)):
        with db_of(request).transaction() as s:
            w = web(s, request, form)
            store.update_guidelines(s, w.user, project_id, str(form.get("guidelines", "")))
        return see_other(f"/projects/{project_id}")

    @app.post("/projects/{project_id}/import")
    def import_file(request: Request, project_id: int, form: FormData = Depends(form_data)):
        with db_of(request).transaction() as s:
            w = web(s, request, form)
            store.require_admin(s, w.user, project_id)
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise store.InvalidInput("choose a JSONL file to import")
            name = upload.filename or "upload.jsonl"
            text = _utf8(name, upload.file.read())
            tasks.add_items(s, w.user, project_id, imports.parse_items(name, text, str(form.get("kind", ""))))
        return see_other(f"/projects/{project_id}")

    @app.post("/projects/{project_id}/import-eval")
    def import_eval(request: Request, project_id: int, form: FormData = Depends(form_data)):
        """Blind pairs from two `alignlab eval` runs: OUT.records.jsonl of model A and of model B."""
        with db_of(request).transaction() as s:
            w = web(s, request, form)
            store.require_admin(s, w.user, project_id)
            runs = {}
            for side in ("a", "b"):
                model, upload = str(form.get(f"model_{side}", "")).strip(), form.get(f"file_{side}")
                if not model or upload is None or isinstance(upload, str):
                    raise store.InvalidInput("give both runs: a model name and its .records.jsonl file each")
                runs[model] = (upload.filename or f"{model}.records.jsonl", _utf8(upload.filename, upload.file.read()))
            if len(runs) != 2:
                raise store.InvalidInput("the two runs need different model names")
            made = imports.parse_eval_runs(runs, "blind", str(form.get("identical", "tie")))
            tasks.add_items(s, w.user, project_id, made.items)
            return render(request, "message.html", w, title="Eval runs imported",
                          message=f"Imported blind evaluation: {made.summary()}.", back=f"/projects/{project_id}",
                          ok=True)

    @app.get("/projects/{project_id}/write")
    def write_page(request: Request, project_id: int):
        with db_of(request).transaction() as s:
            w = web(s, request)
            if "demo" not in ROLE_KINDS[store.role_in(s, w.user, project_id)]:
                raise store.NotFound(f"project {project_id}")
            project = s.get(Project, project_id)
            return render(request, "write.html", w, project=project, guideline=store.guideline(s, project),
                          client_id=uuid.uuid4().hex)

    @app.post("/projects/{project_id}/write")
    def write(request: Request, project_id: int, form: FormData = Depends(form_data)):
        with db_of(request).transaction() as s:
            w = web(s, request, form)
            tasks.write_demo(s, w.user, project_id, str(form.get("prompt", "")), str(form.get("answer", "")),
                             str(form.get("client_id", "")))
        return see_other(f"/projects/{project_id}/write?saved=1")

    @app.get("/projects/{project_id}/next/{kind}")
    def next_task_page(request: Request, project_id: int, kind: str):
        """Writes nothing: the open task, a button that takes the next one, or "queue empty"."""
        with db_of(request).transaction() as s:
            w = web(s, request)
            item = tasks.next_item(s, w.user, project_id, kind, take=False)
            project = s.get(Project, project_id)
            if item is None:
                return _queue_empty(request, w, project, kind)
            return render(request, "next.html", w, project=project, kind=kind)

    @app.post("/projects/{project_id}/next/{kind}")
    def next_task(request: Request, project_id: int, kind: str, form: FormData = Depends(form_data)):
        with db_of(request).transaction() as s:
            w = web(s, request, form)
            item = tasks.next_item(s, w.user, project_id, kind)
            if item is not None:
                return see_other(f"/items/{item.id}")
            return _queue_empty(request, w, s.get(Project, project_id), kind)

    @app.get("/items/{item_id}")
    def item_page(request: Request, item_id: int):
        with db_of(request).transaction() as s:
            w = web(s, request)
            t = tasks.task(s, w.user, item_id)
            return render(request, "item.html", w, t=t, client_id=uuid.uuid4().hex,
                          letters="ABCDEFGHIJKLMNOPQRSTUVWXYZ",
                          queue=tasks.queue_counts(s, w.user, t.project.id, t.item.kind))

    @app.post("/items/{item_id}")
    def submit(request: Request, item_id: int, form: FormData = Depends(form_data)):
        with db_of(request).transaction() as s:
            w = web(s, request, form)
            t = tasks.task(s, w.user, item_id)
            payload = payload_from_form(t, form)
            tasks.submit_label(s, w.user, item_id, payload, str(form.get("client_id", "")))
            following = tasks.next_item(s, w.user, t.project.id, t.item.kind)      # a POST: taking the next is fine
        return see_other(f"/items/{following.id}" if following else f"/projects/{t.project.id}/next/{t.item.kind}")

    @app.post("/items/{item_id}/withdraw")
    def withdraw(request: Request, item_id: int, form: FormData = Depends(form_data)):
        with db_of(request).transaction() as s:
            w = web(s, request, form)
            tasks.withdraw_label(s, w.user, item_id)
        return see_other(f"/items/{item_id}")

    @app.post("/items/{item_id}/skip")
    def skip(request: Request, item_id: int, form: FormData = Depends(form_data)):
        """Pass on the item (optionally flagging it with a reason for the admins), then the next task."""
        with db_of(request).transaction() as s:
            w = web(s, request, form)
            t = tasks.task(s, w.user, item_id)
            tasks.skip_item(s, w.user, item_id, str(form.get("reason", "")), form.get("flag") == "on")
            following = tasks.next_item(s, w.user, t.project.id, t.item.kind)
        return see_other(f"/items/{following.id}" if following else f"/projects/{t.project.id}/next/{t.item.kind}")

    @app.get("/projects/{project_id}/items/{item_id}")
    def item_detail_page(request: Request, project_id: int, item_id: int):
        with db_of(request).transaction() as s:
            w = web(s, request)
            detail = review.item_detail(s, w.user, item_id)
            if detail.project.id != project_id:
                raise store.NotFound(f"item {item_id} in project {project_id}")
            return render(request, "item_detail.html", w, d=detail, letter=review.letter)

    @app.post("/labels/{label_id}/void")
    def void_label(request: Request, label_id: int, form: FormData = Depends(form_data)):
        with db_of(request).transaction() as s:
            w = web(s, request, form)
            item, _ = tasks.item_of_label(s, w.user, label_id)
            tasks.void_label(s, w.user, label_id, str(form.get("reason", "")))
        return see_other(f"/projects/{item.project_id}/items/{item.id}")

    @app.get("/projects/{project_id}/review")
    def review_page(request: Request, project_id: int):
        with db_of(request).transaction() as s:
            w = web(s, request)
            flagged = review.flagged_items(s, w.user, project_id)
            disputed, with_two = review.disputed_items(s, w.user, project_id)
            return render(request, "review.html", w, project=s.get(Project, project_id), flagged=flagged,
                          disputed=disputed, with_two=with_two)

    @app.get("/projects/{project_id}/items")
    def items_page(request: Request, project_id: int, q: str = "", kind: str = "", page: int = 1):
        with db_of(request).transaction() as s:
            w = web(s, request)
            rows, total = tasks.search_items(s, w.user, project_id, q, kind or None, page)
            return render(request, "items.html", w, project=s.get(Project, project_id), rows=rows, q=q,
                          kind=kind, kinds=KINDS, page=max(page, 1), total=total, per_page=50)

    @app.get("/projects/{project_id}/stats")
    def stats_page(request: Request, project_id: int, criterion: str = "helpful"):
        if criterion not in CRITERIA:
            raise store.InvalidInput(f"criterion must be one of {', '.join(CRITERIA)}")
        with db_of(request).transaction() as s:
            w = web(s, request)
            return render(request, "stats.html", w, project=s.get(Project, project_id),
                          progress=stats.progress(s, w.user, project_id),
                          agreement=stats.agreement(s, w.user, project_id),
                          board=stats.leaderboard(s, w.user, project_id, criterion))

    @app.get("/projects/{project_id}/export/{what}.jsonl")
    def export_file(request: Request, project_id: int, what: str, criterion: str = ""):
        with db_of(request).transaction() as s:
            w = web(s, request)
            records = export.export(s, w.user, project_id, what, criterion or None)
        body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        return Response(body, media_type="application/jsonl", headers={
            "Content-Disposition": f'attachment; filename="project{project_id}-{what}.jsonl"'})


def _queue_empty(request: Request, w: Web, project: Project, kind: str) -> HTMLResponse:
    return render(request, "message.html", w, title="Queue empty",
                  message=f"No {kind} tasks are waiting for you in {project.name}. Thank you!",
                  back=f"/projects/{project.id}")


def _admin_lists(s: Session, user: User, project_id: int, role: str) -> dict:
    """The member list and invitations a project admin sees on the project page."""
    if role != "admin":
        return {"members": [], "invitations": []}
    return {"members": store.members(s, user, project_id), "invitations": store.invitations(s, user, project_id)}


def _utf8(name: str | None, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise imports.ImportFailure(f"{name}: not UTF-8 text (byte {e.start}); save it as UTF-8") from None


def _int(value, name: str) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise store.InvalidInput(f"{name} must be a whole number, got '{value}'") from None


def payload_from_form(t: tasks.Task, form: FormData) -> dict:
    """Form fields → the label payload of tasks.validate_payload (which does the checking)."""
    kind, shown = t.item.kind, [i for i, _ in t.shown]
    if kind == "edit":
        return {"answer": str(form.get("answer", ""))}
    # Form fields name answers by their display position (rank_0 is the first answer shown, whatever its import
    # index), so the page source says nothing of which model wrote which answer.
    if kind == "rank" and t.project.rank_mode == "best":
        best = _int(form.get("best", ""), "best") if form.get("best") else None
        return {"best": shown[best] if best is not None and 0 <= best < len(shown) else best}
    if kind == "rank":
        ranks = {i: _int(form.get(f"rank_{p}", ""), "rank") for p, i in enumerate(shown)}
        if len(set(ranks.values())) != len(ranks):
            raise store.InvalidInput(f"give every answer a different rank, 1 (best) to {len(ranks)}")
        return {"ranking": sorted(shown, key=lambda i: ranks[i])}
    criteria = {}
    for c in CRITERIA:
        verdict = str(form.get(f"verdict_{c}", ""))
        if verdict not in ("A", "B", "tie"):
            raise store.InvalidInput(f"{c}: choose A, B or tie")
        winner = None if verdict == "tie" else shown["AB".index(verdict)]
        criteria[c] = {"winner": winner, "strength": _int(form.get(f"strength_{c}", "0") or "0", "strength")}
    return {"criteria": criteria}

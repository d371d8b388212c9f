"""Routes of the web dashboard (server-rendered pages under /dashboard) and the sign-in link API.

Pages authenticate with a signed session cookie (see ``_session``); every state-changing form carries
a CSRF token. Actions re-check the role of the token behind the session, as the REST API does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, quote, urlencode

import jinja2
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from shoal import __version__
from shoal.server._auth import ADMIN, READ, RUN, Principal, PrincipalDep, StateDep, resolve_environment
from shoal.server._executions import RequestError
from shoal.server._state import ServerState
from shoal.server.api._executions import download_archive, download_artifact
from shoal.server.dashboard import _views as views
from shoal.server.dashboard._charts import timeline_bar, trend_chart
from shoal.server.dashboard._clusters import cluster_source, controller_runs_here
from shoal.server.dashboard._format import filters
from shoal.server.dashboard._session import (
    LINK_TTL_S,
    LOGIN_COOKIE,
    SESSION_COOKIE,
    SESSION_TTL_S,
    Session,
    Signer,
    server_key,
)
from shoal.store import Environment, Execution, NotFound
from shoal.store._dashboard_queries import create_link, get_token, redeem_link

log = logging.getLogger("shoal.server.dashboard")

HERE = Path(__file__).parent
PREFIX = "/dashboard"
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

router = APIRouter(include_in_schema=False)
api_router = APIRouter(tags=["dashboard"])

_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(HERE / "templates")),
    autoescape=jinja2.select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
)
_templates.filters.update(filters())
_templates.globals.update(
    trend_chart=trend_chart, timeline_bar=timeline_bar, version=__version__, prefix=PREFIX, quote=quote
)


class DashboardError(Exception):
    """Shown as an HTML error page (or a redirect to sign in, ``status`` 401)."""

    def __init__(self, status: int, message: str, next_url: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.next_url = next_url


def signer_of(request: Request) -> Signer:
    """The app's signer, made on first use from the server key under the state's home."""
    signer: Signer | None = getattr(request.app.state, "dashboard_signer", None)
    if signer is None:
        signer = Signer(server_key(_state(request).settings.home))
        request.app.state.dashboard_signer = signer
    return signer


def rollups_of(app_state: Any) -> views.RollupCache:
    """The app's cache of workflow rollups (``app.state.dashboard_rollups``)."""
    cache: views.RollupCache | None = getattr(app_state, "dashboard_rollups", None)
    if cache is None:
        cache = views.RollupCache()
        app_state.dashboard_rollups = cache
    return cache


def _state(request: Request) -> ServerState:
    state: ServerState = request.app.state.shoal
    return state


def _safe_next(value: str | None) -> str:
    """Only local dashboard paths: never an open redirect."""
    if value and value.startswith(PREFIX) and not value.startswith("//") and "\\" not in value:
        return value
    return PREFIX + "/"


class Viewer:
    """Who is looking: the principal behind the session and the session's CSRF token."""

    def __init__(self, principal: Principal, session: Session, csrf: str) -> None:
        self.principal = principal
        self.session = session
        self.csrf = csrf

    @property
    def can_run(self) -> bool:
        return self.principal.can(RUN)

    @property
    def can_admin(self) -> bool:
        return self.principal.can(ADMIN)


async def get_viewer(request: Request) -> Viewer:
    state = _state(request)
    signer = signer_of(request)
    session = signer.read_session(request.cookies.get(SESSION_COOKIE))
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if session is None:
        raise DashboardError(401, "sign in", here)
    token = await get_token(state.store, session.token_id)
    if token is None:
        raise DashboardError(401, "your session ended (the token was revoked or expired)", here)
    principal = Principal(token)
    if not principal.can(READ):
        raise DashboardError(403, f"a {principal.role} token cannot use the dashboard")
    return Viewer(principal, session, signer.csrf_token(session.nonce))


ViewerDep = Annotated[Viewer, Depends(get_viewer)]


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form body (the dashboard's forms post nothing else)."""
    body = await request.body()
    if len(body) > 64 * 1024:
        raise DashboardError(413, "form too large")
    parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[-1] for k, v in parsed.items()}


async def _checked_form(request: Request, viewer: Viewer) -> dict[str, str]:
    form = await _form(request)
    given = form.get("csrf") or request.headers.get("x-csrf-token")
    if not signer_of(request).check_csrf(viewer.session.nonce, given):
        raise DashboardError(403, "the form expired or did not come from this dashboard; reload the page")
    return form


async def _env(request: Request, viewer: Viewer, name: str) -> Environment:
    try:
        return await resolve_environment(_state(request), viewer.principal, name)
    except HTTPException as exc:
        raise DashboardError(exc.status_code, str(exc.detail)) from None


async def _execution(request: Request, env: Environment, execution_id: str) -> Execution:
    try:
        return await _state(request).store.get_execution(execution_id, env.id)
    except NotFound:
        raise DashboardError(404, f"execution {execution_id!r} not found") from None


async def _envs_of(request: Request, viewer: Viewer) -> list[Environment]:
    envs = await _state(request).store.list_environments(viewer.principal.org_id)
    if viewer.principal.token.env_id is not None:
        envs = [e for e in envs if e.id == viewer.principal.token.env_id]
    return envs


def render(name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = _templates.get_template(name).render(**context)
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)


async def _page(
    request: Request, viewer: Viewer, name: str, env: Environment | None, **context: Any
) -> HTMLResponse:
    envs = await _envs_of(request, viewer)
    return render(name, viewer=viewer, env=env, envs=envs, request_path=request.url.path, **context)


def error_page(exc: DashboardError, request: Request) -> Response:
    if exc.status == 401:
        target = f"{PREFIX}/login?" + urlencode({"next": _safe_next(exc.next_url)})
        if request.headers.get("hx-request"):
            # htmx would follow a 303 inside the fragment: tell it to move the whole page instead.
            return Response(status_code=200, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)
    return render(
        "error.html", exc.status, status=exc.status, message=exc.message, viewer=None, env=None, envs=[]
    )


# ---------------------------------------------------------------------------------------------- sign-in


@router.get(PREFIX)
@router.get(PREFIX + "/")
async def home(request: Request, viewer: ViewerDep) -> Response:
    envs = await _envs_of(request, viewer)
    if len(envs) == 1:
        return RedirectResponse(f"{PREFIX}/envs/{envs[0].name}", status_code=303)
    return RedirectResponse(f"{PREFIX}/envs", status_code=303)


@router.get(PREFIX + "/login")
async def login_form(request: Request, next: str = "", error: str = "") -> Response:
    signer = signer_of(request)
    nonce, cookie = signer.new_login_nonce()
    response = render(
        "login.html",
        viewer=None,
        env=None,
        envs=[],
        csrf=signer.csrf_token(nonce),
        next_url=_safe_next(next),
        error=error,
    )
    _set_cookie(request, response, LOGIN_COOKIE, cookie, 600)
    return response


def _set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=PREFIX,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


async def _start_session(request: Request, token_id: str, next_url: str) -> Response:
    _session, cookie = signer_of(request).new_session(token_id)
    response = RedirectResponse(_safe_next(next_url), status_code=303, headers=SECURITY_HEADERS)
    _set_cookie(request, response, SESSION_COOKIE, cookie, SESSION_TTL_S)
    response.delete_cookie(LOGIN_COOKIE, path=PREFIX)
    return response


@router.post(PREFIX + "/login")
async def login(request: Request) -> Response:
    state = _state(request)
    signer = signer_of(request)
    form = await _form(request)
    next_url = _safe_next(form.get("next"))
    nonce = signer.read_login_nonce(request.cookies.get(LOGIN_COOKIE))
    if nonce is None or not signer.check_csrf(nonce, form.get("csrf")):
        raise DashboardError(403, "the sign-in form expired or did not come from this dashboard; reload it")
    token = await state.store.authenticate(form.get("token", "").strip())
    if token is None or not Principal(token).can(READ):
        why = "that token is not valid" if token is None else f"a {token.role} token cannot use the dashboard"
        target = f"{PREFIX}/login?" + urlencode({"next": next_url, "error": why})
        return RedirectResponse(target, status_code=303)
    return await _start_session(request, token.id, next_url)


@router.post(PREFIX + "/logout")
async def logout(request: Request, viewer: ViewerDep) -> Response:
    await _checked_form(request, viewer)
    response = RedirectResponse(f"{PREFIX}/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=PREFIX)
    return response


@router.get(PREFIX + "/link/{secret}")
async def follow_link(request: Request, secret: str, next: str = "") -> Response:
    """A one-time sign-in link (from `shoal dashboard link`): sign the browser in, open the page."""
    state = _state(request)
    token = await redeem_link(state.store, signer_of(request).link_digest(secret))
    if token is None:
        raise DashboardError(
            403, "this sign-in link is not valid: it was used already, expired, or its token was revoked"
        )
    return await _start_session(request, token.id, next)


class LinkRequest(BaseModel):
    executionId: str | None = Field(default=None, description="open this execution's page")
    environment: str | None = Field(default=None, description="environment of the page (default: default)")
    path: str | None = Field(default=None, description="a dashboard path to open instead")


@api_router.post("/v1/dashboard/links", status_code=201)
async def create_dashboard_link(
    body: LinkRequest,
    request: Request,
    state: StateDep,
    principal: PrincipalDep,
    x_shoal_environment: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    """A short-lived, single-use URL that signs a browser in as the calling token and opens a page."""
    principal.require(READ)
    env_name = body.environment or x_shoal_environment or "default"
    env = await resolve_environment(state, principal, env_name)
    if body.path:
        target = _safe_next(body.path)
    elif body.executionId:
        try:
            await state.store.get_execution(body.executionId, env.id)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from None
        target = f"{PREFIX}/envs/{env.name}/executions/{body.executionId}"
    else:
        target = f"{PREFIX}/envs/{env.name}"
    secret, digest = signer_of(request).new_link_secret()
    expires = await create_link(state.store, principal.token, digest, timedelta(seconds=LINK_TTL_S))
    base = (state.settings.public_url or str(request.base_url)).rstrip("/")
    url = f"{base}{PREFIX}/link/{secret}?" + urlencode({"next": target})
    return {"url": url, "path": target, "expiresAt": expires.isoformat()}


# ---------------------------------------------------------------------------------------------- pages


@router.get(PREFIX + "/envs")
async def environments_page(request: Request, viewer: ViewerDep) -> Response:
    envs = await _envs_of(request, viewer)
    rows = await views.environments(_state(request), envs)
    return await _page(request, viewer, "environments.html", None, rows=rows)


@router.get(PREFIX + "/envs/{env_name}")
async def environment_page(request: Request, env_name: str, viewer: ViewerDep) -> Response:
    env = await _env(request, viewer, env_name)
    view = await views.environment(_state(request), env)
    return await _page(request, viewer, "environment.html", env, view=view, section="overview")


@router.get(PREFIX + "/envs/{env_name}/live")
async def environment_live(request: Request, env_name: str, viewer: ViewerDep) -> Response:
    env = await _env(request, viewer, env_name)
    view = await views.environment(_state(request), env)
    return render("_environment_live.html", viewer=viewer, env=env, view=view)


@router.get(PREFIX + "/envs/{env_name}/workflows")
async def workflows_page(
    request: Request,
    env_name: str,
    viewer: ViewerDep,
    by: str = "",
    label: str = "",
    status: str = "",
    window: str = "7d",
) -> Response:
    env = await _env(request, viewer, env_name)
    state = _state(request)
    by = by if by == "agent" or views.is_label_key(by) else await views.default_group_key(state, env)
    window = window if window in views.WINDOWS else "7d"
    view = await views.workflows(
        state, env, rollups_of(request.app.state), by=by, label=label, status=status, window=window
    )
    return await _page(request, viewer, "workflows.html", env, view=view, section="workflows")


@router.get(PREFIX + "/envs/{env_name}/workflows/{name}")
async def workflow_page(
    request: Request,
    env_name: str,
    name: str,
    viewer: ViewerDep,
    by: str = "",
    window: str = "7d",
    page: int = 0,
) -> Response:
    env = await _env(request, viewer, env_name)
    state = _state(request)
    by = by if by == "agent" or views.is_label_key(by) else await views.default_group_key(state, env)
    window = window if window in views.WINDOWS else "7d"
    try:
        view = await views.workflow(state, env, name, by=by, window=window, page=max(0, page))
    except NotFound as exc:
        raise DashboardError(404, str(exc)) from None
    return await _page(
        request,
        viewer,
        "workflow.html",
        env,
        view=view,
        by=by,
        window=window,
        page=max(0, page),
        section="workflows",
    )


@router.get(PREFIX + "/envs/{env_name}/executions/{execution_id}")
async def execution_page(
    request: Request, env_name: str, execution_id: str, viewer: ViewerDep, step: str | None = None
) -> Response:
    env = await _env(request, viewer, env_name)
    ex = await _execution(request, env, execution_id)
    view = await views.execution(_state(request), env, ex, step)
    return await _page(request, viewer, "execution.html", env, view=view, section="workflows")


@router.get(PREFIX + "/envs/{env_name}/executions/{execution_id}/live")
async def execution_live(
    request: Request, env_name: str, execution_id: str, viewer: ViewerDep, step: str | None = None
) -> Response:
    env = await _env(request, viewer, env_name)
    ex = await _execution(request, env, execution_id)
    view = await views.execution(_state(request), env, ex, step)
    return render("_execution_live.html", viewer=viewer, env=env, view=view)


@router.get(PREFIX + "/envs/{env_name}/executions/{execution_id}/events")
async def execution_events(
    request: Request,
    env_name: str,
    execution_id: str,
    viewer: ViewerDep,
    after: int = 0,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """Server-sent events for the page: log lines and step changes, batched; ``end`` when finished."""
    env = await _env(request, viewer, env_name)
    ex = await _execution(request, env, execution_id)
    state = _state(request)
    start = after
    if last_event_id and last_event_id.isdigit():
        start = max(start, int(last_event_id))

    async def stream() -> AsyncIterator[bytes]:
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=20000)

        async def pump() -> None:
            try:
                async for e in state.executions.follow(ex.id, start):
                    await queue.put(e)
            finally:
                await queue.put(None)

        task = asyncio.create_task(pump())
        try:
            yield b"retry: 3000\n\n"
            done = False
            while not done:
                batch = [await queue.get()]
                while len(batch) < 1000 and not queue.empty():
                    batch.append(queue.get_nowait())
                if batch[-1] is None:
                    done = True
                events = [e for e in batch if e is not None]
                chunk = _sse_batch(events)
                if chunk:
                    yield chunk
            final = await state.store.get_execution(ex.id)
            yield f"event: end\ndata: {json.dumps({'status': final.status})}\n\n".encode()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _sse_batch(events: list[dict[str, Any]]) -> bytes:
    """One ``log`` message with every line of the batch, one ``step`` message per status change."""
    if not events:
        return b""
    lines: list[list[Any]] = []
    parts: list[str] = []
    last_seq = 0
    for e in events:
        kind = e.get("type")
        seq = int(e.get("seq") or 0)
        last_seq = max(last_seq, seq)
        if kind == "log":
            lines.append([seq, e.get("ref") or "", str(e.get("line", ""))])
        elif kind in ("step", "initialization", "status") and e.get("status"):
            if lines:
                parts.append(f"id: {lines[-1][0]}\nevent: log\ndata: {json.dumps(lines)}\n\n")
                lines = []
            data = {"seq": seq, "type": kind, "ref": e.get("ref") or "", "status": e.get("status")}
            parts.append(f"id: {seq}\nevent: step\ndata: {json.dumps(data)}\n\n")
    if lines:
        parts.append(f"id: {last_seq}\nevent: log\ndata: {json.dumps(lines)}\n\n")
    elif not parts and last_seq:
        parts.append(f"id: {last_seq}\n: progress\n\n")
    return "".join(parts).encode()


@router.get(PREFIX + "/envs/{env_name}/executions/{execution_id}/logs.txt")
async def execution_logs(
    request: Request, env_name: str, execution_id: str, viewer: ViewerDep, ref: str | None = None
) -> StreamingResponse:
    env = await _env(request, viewer, env_name)
    ex = await _execution(request, env, execution_id)
    state = _state(request)

    async def lines() -> AsyncIterator[bytes]:
        async for e in state.executions.events(ex):
            if e.get("type") == "log" and (not ref or e.get("ref") == ref):
                yield (str(e.get("line", "")) + "\n").encode()

    suffix = f"-{ref}" if ref else ""
    return StreamingResponse(
        lines(),
        media_type="text/plain; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{ex.name}{suffix}.log"'},
    )


@router.get(PREFIX + "/envs/{env_name}/executions/{execution_id}/artifacts/{path:path}")
async def execution_artifact(
    request: Request, env_name: str, execution_id: str, path: str, viewer: ViewerDep
) -> Response:
    env = await _env(request, viewer, env_name)
    try:
        return await download_artifact(execution_id, path, _state(request), viewer.principal, env)
    except HTTPException as exc:
        raise DashboardError(exc.status_code, str(exc.detail)) from None


@router.get(PREFIX + "/envs/{env_name}/executions/{execution_id}/artifact-archive")
async def execution_archive(
    request: Request, env_name: str, execution_id: str, viewer: ViewerDep
) -> Response:
    env = await _env(request, viewer, env_name)
    try:
        return await download_archive(execution_id, _state(request), viewer.principal, env)
    except HTTPException as exc:
        raise DashboardError(exc.status_code, str(exc.detail)) from None


def _require(viewer: Viewer, action: str) -> None:
    if not viewer.principal.can(action):
        raise DashboardError(403, f"a {viewer.principal.role} token may not do this")


@router.post(PREFIX + "/envs/{env_name}/executions/{execution_id}/abort")
async def abort_execution(request: Request, env_name: str, execution_id: str, viewer: ViewerDep) -> Response:
    await _checked_form(request, viewer)
    _require(viewer, RUN)
    env = await _env(request, viewer, env_name)
    ex = await _execution(request, env, execution_id)
    await _state(request).executions.abort(ex)
    return RedirectResponse(f"{PREFIX}/envs/{env.name}/executions/{ex.id}", status_code=303)


@router.post(PREFIX + "/envs/{env_name}/executions/{execution_id}/rerun")
async def rerun_execution(request: Request, env_name: str, execution_id: str, viewer: ViewerDep) -> Response:
    await _checked_form(request, viewer)
    _require(viewer, RUN)
    env = await _env(request, viewer, env_name)
    ex = await _execution(request, env, execution_id)
    try:
        created = await _state(request).executions.rerun(env, ex, viewer.principal.token)
    except (NotFound, RequestError) as exc:
        raise DashboardError(422, f"cannot run it again: {exc}") from None
    return RedirectResponse(f"{PREFIX}/envs/{env.name}/executions/{created[0].id}", status_code=303)


@router.get(PREFIX + "/envs/{env_name}/clusters")
async def clusters_page(request: Request, env_name: str, viewer: ViewerDep) -> Response:
    env = await _env(request, viewer, env_name)
    source = cluster_source(request.app.state)
    clusters = await source.clusters(env)
    pools = await source.pools(env)
    return await _page(
        request,
        viewer,
        "clusters.html",
        env,
        available=bool(clusters or pools),
        controller_here=controller_runs_here(request.app.state),
        clusters=clusters,
        pools=pools,
        section="clusters",
    )


@router.post(PREFIX + "/envs/{env_name}/clusters/{name}/teardown")
async def teardown_cluster(request: Request, env_name: str, name: str, viewer: ViewerDep) -> Response:
    await _checked_form(request, viewer)
    _require(viewer, RUN)
    env = await _env(request, viewer, env_name)
    try:
        await cluster_source(request.app.state).request_teardown(env, name, principal=viewer.principal)
    except HTTPException as exc:
        raise DashboardError(exc.status_code, str(exc.detail)) from None
    return RedirectResponse(f"{PREFIX}/envs/{env.name}/clusters", status_code=303)


def mount(app: FastAPI) -> None:
    """Add the dashboard's routes, static files and error pages to the control plane's app."""
    from fastapi.staticfiles import StaticFiles

    app.include_router(router)
    app.include_router(api_router)
    app.mount(PREFIX + "/static", StaticFiles(directory=str(HERE / "static")), name="dashboard-static")

    async def handle(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, DashboardError)
        return error_page(exc, request)

    app.add_exception_handler(DashboardError, handle)


__all__ = ["DashboardError", "api_router", "mount", "router"]

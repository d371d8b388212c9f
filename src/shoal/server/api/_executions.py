"""Runs and their results: create, list, get, logs (text, SSE, WebSocket), abort/cancel/rerun, artifacts."""

from __future__ import annotations

import asyncio
import json
import tarfile
import tempfile
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, WebSocket, WebSocketDisconnect
from fastapi.responses import PlainTextResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from shoal.server._auth import READ, RUN, EnvDep, PrincipalDep, StateDep, authenticate, resolve_environment
from shoal.server._executions import RequestError, artifact_key
from shoal.store import Environment, Execution, ExecutionFilter, NotFound

router = APIRouter(tags=["executions"])


class TargetBody(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")
    match: dict[str, list[str]] = Field(default_factory=dict)
    not_: dict[str, list[str]] = Field(default_factory=dict, alias="not")
    replicate: list[str] = Field(default_factory=list)


class ExecutionRequest(BaseModel):
    """Body of a run request (Testkube's TestWorkflowExecutionRequest, the fields shoal uses)."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")
    name: str | None = None
    config: dict[str, str] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    target: TargetBody | None = None
    running_context: dict[str, Any] = Field(default_factory=dict, alias="runningContext")
    parent_execution_ids: list[str] = Field(default_factory=list, alias="parentExecutionIds")


async def _execution(state: StateDep, env: Environment, execution_id: str) -> Execution:
    try:
        return await state.store.get_execution(execution_id, env.id)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None


@router.post("/v1/test-workflows/{name}/executions", status_code=200)
async def run_workflow(
    name: str, body: ExecutionRequest, state: StateDep, principal: PrincipalDep, env: EnvDep
) -> list[dict[str, Any]]:
    principal.require(RUN)
    target = body.target.model_dump(by_alias=True) if body.target else None
    context = body.running_context or {"interface": {"type": "api"}, "actor": {"type": "user"}}
    try:
        created = await state.executions.create_executions(
            env,
            name,
            config=body.config,
            tags=body.tags,
            target=target,
            running_context=context,
            parent_ids=body.parent_execution_ids,
            name=body.name,
            creator=principal.token,
        )
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except RequestError as exc:
        raise HTTPException(422, {"error": str(exc), "problems": exc.problems}) from None
    return [state.executions.to_api(ex, env.name) for ex in created]


def _listing(state: StateDep, rows: list[Execution], total: int, counts: dict[str, int]) -> dict[str, Any]:
    return {
        "totals": {
            "results": sum(counts.values()),
            "passed": counts.get("passed", 0),
            "failed": counts.get("failed", 0),
            "queued": counts.get("queued", 0),
            "running": sum(counts.get(s, 0) for s in ("assigned", "starting", "scheduling", "running")),
        },
        "filtered": {"results": total},
        "results": [state.executions.to_summary(ex) for ex in rows],
    }


async def _list(
    state: StateDep,
    env: Environment,
    workflow: str | None,
    status: str | None,
    agent: str | None,
    group_id: str | None,
    tag: list[str] | None,
    page: int,
    page_size: int,
) -> dict[str, Any]:
    tags = {}
    for item in tag or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise HTTPException(400, f"tag filter {item!r}: expected key=value")
        tags[key] = value
    f = ExecutionFilter(
        workflow=workflow,
        statuses=[s for s in (status or "").split(",") if s],
        agent=agent,
        group_id=group_id,
        tags=tags or None,
    )
    rows, total = await state.store.list_executions(env.id, f, page=page, page_size=page_size)
    counts = await state.store.count_by_status(env.id, workflow)
    return _listing(state, rows, total, counts)


@router.get("/v1/test-workflows/{name}/executions")
async def list_workflow_executions(
    name: str,
    state: StateDep,
    principal: PrincipalDep,
    env: EnvDep,
    status: str | None = None,
    agent: str | None = None,
    groupId: str | None = None,
    tag: Annotated[list[str] | None, Query()] = None,
    page: int = 0,
    pageSize: int = 100,
) -> dict[str, Any]:
    principal.require(READ)
    return await _list(state, env, name, status, agent, groupId, tag, page, pageSize)


@router.get("/v1/test-workflow-executions")
async def list_executions(
    state: StateDep,
    principal: PrincipalDep,
    env: EnvDep,
    workflow: str | None = None,
    status: str | None = None,
    agent: str | None = None,
    groupId: str | None = None,
    tag: Annotated[list[str] | None, Query()] = None,
    page: int = 0,
    pageSize: int = 100,
) -> dict[str, Any]:
    principal.require(READ)
    return await _list(state, env, workflow, status, agent, groupId, tag, page, pageSize)


@router.get("/v1/test-workflow-executions/{execution_id}")
async def get_execution(
    execution_id: str, state: StateDep, principal: PrincipalDep, env: EnvDep
) -> dict[str, Any]:
    principal.require(READ)
    ex = await _execution(state, env, execution_id)
    out = state.executions.to_api(ex, env.name)
    out["artifacts"] = [{"name": a.name, "size": a.size} for a in await state.store.list_artifacts(ex.id)]
    return out


@router.get("/v1/test-workflow-executions/{execution_id}/logs", response_class=PlainTextResponse)
async def get_logs(
    execution_id: str,
    state: StateDep,
    principal: PrincipalDep,
    env: EnvDep,
    follow: bool = False,
    ref: str | None = None,
) -> StreamingResponse:
    """Plain text log lines (``follow=true`` streams until the execution ends)."""
    principal.require(READ)
    ex = await _execution(state, env, execution_id)

    async def lines() -> AsyncIterator[bytes]:
        source = state.executions.follow(ex.id) if follow else state.executions.events(ex)
        async for e in source:
            if e.get("type") == "log" and (ref is None or e.get("ref") == ref):
                yield (str(e.get("line", "")) + "\n").encode()

    return StreamingResponse(lines(), media_type="text/plain; charset=utf-8")


@router.get("/v1/test-workflow-executions/{execution_id}/notifications")
async def notifications_sse(
    execution_id: str,
    state: StateDep,
    principal: PrincipalDep,
    env: EnvDep,
    after: int = 0,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """Server-sent events: every execution event (``id`` = seq), resumable with Last-Event-ID."""
    principal.require(READ)
    ex = await _execution(state, env, execution_id)
    start = after
    if last_event_id and last_event_id.isdigit():
        start = max(start, int(last_event_id))

    async def stream() -> AsyncIterator[bytes]:
        async for e in state.executions.follow(ex.id, start):
            kind = e.get("type", "message")
            yield f"id: {e.get('seq')}\nevent: {kind}\ndata: {json.dumps(e)}\n\n".encode()
        final = await state.store.get_execution(ex.id)
        yield f"event: end\ndata: {json.dumps({'status': final.status})}\n\n".encode()

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.websocket("/v1/test-workflow-executions/{execution_id}/notifications/stream")
async def notifications_ws(
    websocket: WebSocket,
    execution_id: str,
    after: int = 0,
    env: str | None = None,
    token: str | None = None,
) -> None:
    """WebSocket: one JSON event per frame, then ``{"type": "end", "status": ...}``."""
    state = websocket.app.state.shoal
    try:
        principal = await authenticate(state, websocket.headers.get("authorization"), token)
        principal.require(READ)
        environment = await resolve_environment(state, principal, env or "default")
        ex = await state.store.get_execution(execution_id, environment.id)
    except (HTTPException, NotFound) as exc:
        await websocket.close(code=4403 if isinstance(exc, HTTPException) else 4404)
        return
    await websocket.accept()
    try:
        async for e in state.executions.follow(ex.id, after):
            await websocket.send_text(json.dumps(e))
        final = await state.store.get_execution(ex.id)
        await websocket.send_text(json.dumps({"type": "end", "status": final.status}))
        await websocket.close()
    except WebSocketDisconnect:
        return


async def _control(
    state: StateDep, principal: PrincipalDep, env: Environment, execution_id: str, cancel: bool
) -> Any:
    principal.require(RUN)
    ex = await _execution(state, env, execution_id)
    await state.executions.abort(ex, canceled=cancel)
    return state.executions.to_api(await state.store.get_execution(ex.id), env.name)


@router.post("/v1/test-workflow-executions/{execution_id}/abort")
async def abort_execution(execution_id: str, state: StateDep, principal: PrincipalDep, env: EnvDep) -> Any:
    return await _control(state, principal, env, execution_id, cancel=False)


@router.post("/v1/test-workflow-executions/{execution_id}/cancel")
async def cancel_execution(execution_id: str, state: StateDep, principal: PrincipalDep, env: EnvDep) -> Any:
    return await _control(state, principal, env, execution_id, cancel=True)


@router.post("/v1/test-workflow-executions/{execution_id}/rerun")
async def rerun_execution(
    execution_id: str, state: StateDep, principal: PrincipalDep, env: EnvDep
) -> list[dict[str, Any]]:
    principal.require(RUN)
    ex = await _execution(state, env, execution_id)
    try:
        created = await state.executions.rerun(env, ex, principal.token)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except RequestError as exc:
        raise HTTPException(422, {"error": str(exc), "problems": exc.problems}) from None
    return [state.executions.to_api(e, env.name) for e in created]


@router.post("/v1/test-workflows/{name}/abort")
async def abort_workflow(name: str, state: StateDep, principal: PrincipalDep, env: EnvDep) -> dict[str, Any]:
    principal.require(RUN)
    active = await state.store.active_executions(env_id=env.id, workflow=name)
    queued = [e for e in await state.store.queued_executions(env.id) if e.workflow_name == name]
    for ex in active + queued:
        await state.executions.abort(ex)
    return {"aborted": [e.id for e in active + queued]}


# ------------------------------------------------------------------------------------------ artifacts


@router.get("/v1/test-workflow-executions/{execution_id}/artifacts")
async def list_artifacts(
    execution_id: str, state: StateDep, principal: PrincipalDep, env: EnvDep
) -> list[dict[str, Any]]:
    principal.require(READ)
    ex = await _execution(state, env, execution_id)
    return [
        {"name": a.name, "size": a.size, "status": "ready"} for a in await state.store.list_artifacts(ex.id)
    ]


@router.get("/v1/test-workflow-executions/{execution_id}/artifacts/{path:path}")
async def download_artifact(
    execution_id: str, path: str, state: StateDep, principal: PrincipalDep, env: EnvDep
) -> StreamingResponse:
    principal.require(READ)
    ex = await _execution(state, env, execution_id)
    try:
        art = await state.store.get_artifact(ex.id, path)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    filename = path.rsplit("/", 1)[-1].replace('"', "")
    return StreamingResponse(
        state.blobs.get(art.blob_key),
        media_type="application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Content-Length": str(art.size),
        },
    )


@router.get("/v1/test-workflow-executions/{execution_id}/artifact-archive")
async def download_archive(
    execution_id: str, state: StateDep, principal: PrincipalDep, env: EnvDep
) -> StreamingResponse:
    """Every artifact of the execution as one tar.gz (spooled to disk, then streamed)."""
    principal.require(READ)
    ex = await _execution(state, env, execution_id)
    artifacts = await state.store.list_artifacts(ex.id)
    spool = tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024)  # noqa: SIM115 - closed by the stream
    with tarfile.open(fileobj=spool, mode="w:gz") as tar:
        for art in artifacts:
            with tempfile.TemporaryFile() as part:
                async for chunk in state.blobs.get(art.blob_key):
                    part.write(chunk)
                size = part.tell()
                part.seek(0)
                info = tarfile.TarInfo(art.name)
                info.size = size
                info.mode = 0o644
                await asyncio.to_thread(tar.addfile, info, part)
    spool.seek(0)

    async def stream() -> AsyncIterator[bytes]:
        try:
            while chunk := spool.read(256 * 1024):
                yield chunk
        finally:
            spool.close()

    return StreamingResponse(
        stream(),
        media_type="application/gzip",
        headers={"Content-Disposition": f'attachment; filename="{ex.name}-artifacts.tar.gz"'},
    )


__all__ = ["artifact_key", "router"]

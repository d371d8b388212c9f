"""The agent side of the API: the WebSocket channel, resource sync, artifact upload."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, HTTPException, Request, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from shoal.clusters import registered_labels
from shoal.protocol import Accepted, Declined, EventBatch, Heartbeat, Hello, Welcome, agent_message_adapter
from shoal.server._auth import AGENT, PrincipalDep, StateDep, authenticate
from shoal.server._executions import artifact_key
from shoal.server._hub import AgentConnection
from shoal.server._state import ServerState
from shoal.store import NotFound, StoreError, normalize_key

router = APIRouter(tags=["agents"])
log = logging.getLogger("shoal.server.agent")

HELLO_TIMEOUT_S = 30.0


@router.get("/v1/agent/resources")
async def agent_resources(state: StateDep, principal: PrincipalDep, since: int = 0) -> dict[str, Any]:
    """Every workflow/template of the agent's environment changed after revision ``since``."""
    principal.require(AGENT)
    env_id = principal.token.env_id
    assert env_id is not None  # agent tokens always carry their environment
    rows, revision = await state.store.resources_since(env_id, since)
    return {
        "revision": revision,
        "resources": [
            {
                "kind": r.kind,
                "name": r.name,
                "revision": r.revision,
                "deleted": r.deleted,
                "document": None if r.deleted else r.document,
            }
            for r in rows
        ],
    }


@router.put("/v1/agent/executions/{execution_id}/artifacts/{path:path}", status_code=201)
async def upload_artifact(
    execution_id: str, path: str, request: Request, state: StateDep, principal: PrincipalDep
) -> dict[str, Any]:
    principal.require(AGENT)
    try:
        ex = await state.store.get_execution(execution_id, principal.token.env_id)
        name = normalize_key(path)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except StoreError as exc:
        raise HTTPException(422, f"artifact path {path!r}: {exc}") from None

    async def body() -> AsyncIterator[bytes]:
        async for chunk in request.stream():
            yield chunk

    key = artifact_key(ex.id, name)
    size = await state.blobs.put(key, body())
    await state.store.add_artifact(ex.id, name, size, key)
    return {"name": name, "size": size}


@router.websocket("/v1/agent/connect")
async def agent_channel(websocket: WebSocket) -> None:
    state: ServerState = websocket.app.state.shoal
    try:
        principal = await authenticate(state, websocket.headers.get("authorization"))
        principal.require(AGENT)
    except HTTPException as exc:
        await websocket.close(code=4401 if exc.status_code == 401 else 4403, reason=str(exc.detail)[:120])
        return
    env_id = principal.token.env_id
    assert env_id is not None
    await websocket.accept()
    try:
        first = await asyncio.wait_for(websocket.receive_text(), timeout=HELLO_TIMEOUT_S)
        hello = agent_message_adapter.validate_json(first)
    except (TimeoutError, ValidationError, WebSocketDisconnect):
        await _close(websocket, 4400, "expected a hello message first")
        return
    if not isinstance(hello, Hello) or not hello.name:
        await _close(websocket, 4400, "expected a hello message first")
        return
    env = await state.store.get_environment_by_id(env_id)
    labels = await registered_labels(state.store, env_id, hello.name, dict(hello.labels))
    agent = await state.store.connect_agent(
        env_id,
        hello.name,
        labels,
        list(hello.capabilities),
        hello.version,
        state.settings.server_id,
        hello.max_concurrent,
    )
    conn = AgentConnection(agent.id, env_id, agent.name, agent.connection, websocket, labels)
    replaced = state.hub.register(conn)
    if replaced is not None:
        await _close(replaced.websocket, 4409, "replaced by a newer connection of the same agent")
    try:
        acked, forget = await state.executions.on_agent_connected(
            agent, {h.execution_id: h.next_seq for h in hello.executions}
        )
        _rows, revision = await state.store.resources_since(env_id, 1 << 62)
        await conn.send(
            Welcome(
                agent_id=agent.id,
                environment=env.name,
                heartbeat_interval_s=state.settings.heartbeat_interval_s,
                resources_revision=revision,
                acked=acked,
                forget=forget,
            )
        )
        await state.executions.request_schedule(env_id)
        while True:
            text = await websocket.receive_text()
            try:
                message = agent_message_adapter.validate_json(text)
            except ValidationError as exc:
                log.warning("agent %s sent an invalid message: %s", agent.name, _first_error(exc))
                continue
            if isinstance(message, Heartbeat):
                state.hub.note_heartbeat(agent.id)
            elif isinstance(message, EventBatch):
                last = await state.executions.ingest(agent, message.execution_id, message.events)
                if last is not None:
                    await conn.send(state.executions.ack(message.execution_id, last))
            elif isinstance(message, Accepted):
                await state.executions.on_accepted(agent, message.execution_id, message.namespace)
            elif isinstance(message, Declined):
                await state.executions.on_declined(agent, message.execution_id, message.reason)
    except WebSocketDisconnect:
        pass
    finally:
        state.hub.unregister(conn)
        await state.store.disconnect_agent(agent.id, agent.connection)


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    try:
        await websocket.close(code=code, reason=reason)
    except Exception:  # already closed by the peer
        log.debug("close of an agent socket that was already gone")


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors()
    return json.dumps(errors[0], default=str)[:200] if errors else str(exc)[:200]

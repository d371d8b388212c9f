"""Environments, tokens and agents."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from shoal.server._auth import ADMIN, READ, EnvDep, PrincipalDep, StateDep, resolve_environment
from shoal.server._executions import iso
from shoal.store import ROLES, Agent, Conflict, Environment, NotFound, StoreError

router = APIRouter(tags=["environments"])

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def present_env(env: Environment) -> dict[str, Any]:
    return {
        "id": env.id,
        "name": env.name,
        "retainDays": env.retain_days,
        "retainCount": env.retain_count,
        "revision": env.revision,
        "createdAt": iso(env.created_at),
    }


def present_agent(agent: Agent) -> dict[str, Any]:
    return {
        "id": agent.id,
        "name": agent.name,
        "labels": agent.labels or {},
        "status": agent.status,
        "lastSeen": iso(agent.last_seen),
        "connectedAt": iso(agent.connected_at),
        "capabilities": agent.capabilities or [],
        "version": agent.version,
        "maxConcurrent": agent.max_concurrent,
    }


class EnvironmentCreate(BaseModel):
    name: str


class EnvironmentUpdate(BaseModel):
    retainDays: int | None = Field(default=None, ge=0)
    retainCount: int | None = Field(default=None, ge=0)
    clear: list[str] = Field(default_factory=list, description="settings to unset: retainDays, retainCount")


class TokenCreate(BaseModel):
    role: str
    environment: str | None = None
    name: str = ""


@router.get("/v1/environments")
async def list_environments(state: StateDep, principal: PrincipalDep) -> list[dict[str, Any]]:
    envs = await state.store.list_environments(principal.org_id)
    if principal.token.env_id is not None:
        envs = [e for e in envs if e.id == principal.token.env_id]
    return [present_env(e) for e in envs]


@router.post("/v1/environments", status_code=201)
async def create_environment(
    body: EnvironmentCreate, state: StateDep, principal: PrincipalDep
) -> dict[str, Any]:
    principal.require(ADMIN)
    if principal.token.env_id is not None:
        raise HTTPException(403, "an environment-scoped token may not create environments")
    if not _DNS_LABEL.match(body.name):
        raise HTTPException(422, f"environment name {body.name!r}: expected a DNS label (a-z, 0-9, '-')")
    try:
        env = await state.store.create_environment(principal.org_id, body.name)
    except Conflict as exc:
        raise HTTPException(409, str(exc)) from None
    return present_env(env)


@router.get("/v1/environments/{name}")
async def get_environment(name: str, state: StateDep, principal: PrincipalDep) -> dict[str, Any]:
    return present_env(await resolve_environment(state, principal, name))


@router.patch("/v1/environments/{name}")
async def update_environment(
    name: str, body: EnvironmentUpdate, state: StateDep, principal: PrincipalDep
) -> dict[str, Any]:
    principal.require(ADMIN)
    env = await resolve_environment(state, principal, name)
    values: dict[str, Any] = {}
    if body.retainDays is not None or "retainDays" in body.clear:
        values["retain_days"] = body.retainDays
    if body.retainCount is not None or "retainCount" in body.clear:
        values["retain_count"] = body.retainCount
    return present_env(await state.store.update_environment(env.id, **values))


@router.delete("/v1/environments/{name}", status_code=204)
async def delete_environment(name: str, state: StateDep, principal: PrincipalDep) -> None:
    principal.require(ADMIN)
    env = await resolve_environment(state, principal, name)
    if env.name == "default":
        raise HTTPException(409, "the default environment cannot be deleted")
    ids = await state.store.delete_environment(env.id)
    for execution_id in ids:
        await state.blobs.delete_prefix(f"executions/{execution_id}/")


@router.post("/v1/tokens", status_code=201)
async def create_token(body: TokenCreate, state: StateDep, principal: PrincipalDep) -> dict[str, Any]:
    principal.require(ADMIN)
    if body.role not in ROLES:
        raise HTTPException(422, f"role {body.role!r}: expected one of {', '.join(ROLES)}")
    env_id = None
    if body.environment:
        env_id = (await resolve_environment(state, principal, body.environment)).id
    elif principal.token.env_id is not None:
        env_id = principal.token.env_id
    if body.role == "agent" and env_id is None:
        raise HTTPException(422, "an agent token needs an environment")
    try:
        token, plaintext = await state.store.create_token(principal.org_id, env_id, body.role, body.name)
    except StoreError as exc:
        raise HTTPException(422, str(exc)) from None
    return {"id": token.id, "role": token.role, "environment": body.environment, "token": plaintext}


@router.get("/v1/agents")
async def list_agents(state: StateDep, principal: PrincipalDep, env: EnvDep) -> list[dict[str, Any]]:
    principal.require(READ)
    return [present_agent(a) for a in await state.store.list_agents(env.id)]


@router.delete("/v1/agents/{name}", status_code=204)
async def delete_agent(name: str, state: StateDep, principal: PrincipalDep, env: EnvDep) -> None:
    principal.require(ADMIN)
    try:
        await state.store.delete_agent(env.id, name)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None

"""Who is calling and what they may do: bearer tokens, roles and environment scoping."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Query, Request

from shoal.server._state import ServerState
from shoal.store import Environment, NotFound, Token

# What each role may do. An agent token only acts inside its one environment.
READ, RUN, EDIT, ADMIN, AGENT = "read", "run", "edit", "admin", "agent"
_GRANTS: dict[str, frozenset[str]] = {
    "viewer": frozenset({READ}),
    "runner": frozenset({READ, RUN}),
    "editor": frozenset({READ, RUN, EDIT}),
    "admin": frozenset({READ, RUN, EDIT, ADMIN}),
    "agent": frozenset({AGENT, "read-resources"}),
}


@dataclass(frozen=True, slots=True)
class Principal:
    token: Token

    @property
    def role(self) -> str:
        return self.token.role

    @property
    def org_id(self) -> str:
        return self.token.org_id

    def can(self, action: str) -> bool:
        return action in _GRANTS.get(self.role, frozenset())

    def require(self, action: str) -> None:
        if not self.can(action):
            raise HTTPException(403, f"a {self.role} token may not {_VERBS.get(action, action)}")


_VERBS = {
    READ: "read executions",
    RUN: "run or abort executions",
    EDIT: "create, change or delete resources",
    ADMIN: "manage environments, tokens and agents",
    AGENT: "connect as an agent",
    "read-resources": "read workflows",
}


def get_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.shoal
    return state


StateDep = Annotated[ServerState, Depends(get_state)]


def bearer(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def authenticate(
    state: ServerState, authorization: str | None, cookie_token: str | None = None
) -> Principal:
    plaintext = bearer(authorization) or cookie_token
    if not plaintext:
        raise HTTPException(401, "missing token: send 'Authorization: Bearer <token>'")
    token = await state.store.authenticate(plaintext)
    if token is None:
        raise HTTPException(401, "invalid, expired or revoked token")
    return Principal(token)


async def get_principal(state: StateDep, authorization: Annotated[str | None, Header()] = None) -> Principal:
    return await authenticate(state, authorization)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def resolve_environment(state: ServerState, principal: Principal, name: str) -> Environment:
    """The environment a request addresses; outside a token's scope it does not exist (404)."""
    try:
        env = await state.store.get_environment(principal.org_id, name)
    except NotFound:
        raise HTTPException(404, f"environment {name!r} not found") from None
    if principal.token.env_id is not None and principal.token.env_id != env.id:
        raise HTTPException(404, f"environment {name!r} not found")
    return env


async def get_environment(
    state: StateDep,
    principal: PrincipalDep,
    env: Annotated[str | None, Query(description="environment name (default: default)")] = None,
    x_shoal_environment: Annotated[str | None, Header()] = None,
) -> Environment:
    return await resolve_environment(state, principal, env or x_shoal_environment or "default")


EnvDep = Annotated[Environment, Depends(get_environment)]

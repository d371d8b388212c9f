"""Ephemeral clusters, their classes and pools: apply, get, provision, tear down, hand over a kubeconfig.

Queries live in ``shoal.store`` and decisions in ``shoal.clusters``; routes only check who may do what.
The kubeconfig is served only by ``GET /v1/clusters/{name}/kubeconfig`` to tokens that may run
(never to viewers or agents), and only while the cluster is Ready.
"""

from __future__ import annotations

import secrets
from typing import Any

import yaml
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from shoal.clusters import (
    BUILTIN_CLASSES,
    KIND_CLASS,
    KIND_POOL,
    ClusterController,
    Reaper,
    SpecError,
    list_classes,
    parse_class,
    parse_cluster,
    parse_pool,
    present_class,
    present_cluster,
    present_pool,
    split_document,
)
from shoal.clusters._spec import ClassSpec, check_labels, check_name, override_parameters
from shoal.server._auth import ADMIN, EDIT, READ, RUN, EnvDep, Principal, PrincipalDep, StateDep
from shoal.server._state import ServerState
from shoal.store import Conflict, Environment, LabelSelector, NotFound, StoreError
from shoal.store._cluster_models import ClusterRow
from shoal.store._clusters import ClusterStore

router = APIRouter(tags=["clusters"])


class ProvisionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    name: str | None = None
    classRef: str = "local"
    poolRef: str | None = None
    fallbackToFresh: bool = False
    labels: dict[str, str] = Field(default_factory=dict)
    parameters: dict[str, Any] = Field(default_factory=dict)
    lifetime: str | int | None = None
    owner: dict[str, Any] | None = None


def _store(state: ServerState) -> ClusterStore:
    return ClusterStore(state.store)


def _controller(state: ServerState, request: Request | None = None) -> ClusterController | None:
    ctl = state.clusters
    if ctl is not None and request is not None and not ctl.settings.server_url:
        # Agents installed on arrival connect back where the API was reached (unless SHOAL_PUBLIC_URL says).
        ctl.settings.server_url = str(request.base_url).rstrip("/")
    return ctl


def _wake(state: ServerState) -> None:
    if state.clusters is not None:
        state.clusters.wake()


def _bad(exc: SpecError | StoreError) -> HTTPException:
    problems = getattr(exc, "problems", [])
    return HTTPException(422, {"error": str(exc), "problems": problems})


async def _cluster(state: ServerState, env: Environment, name: str) -> ClusterRow:
    try:
        return await _store(state).get_cluster(env.id, name)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None


async def _class_of(state: ServerState, env: Environment, class_name: str, field: str = "classRef") -> ClassSpec:
    row = await _store(state).get_class(env.id, class_name)
    raw = row.spec if row is not None else BUILTIN_CLASSES.get(class_name)
    if raw is None:
        raise HTTPException(422, f"spec.{field}: cluster class {class_name!r} not found")
    return parse_class(raw)


async def _check_class_use(
    state: ServerState, env: Environment, principal: Principal, class_name: str, parameters: dict[str, Any]
) -> None:
    cls = await _class_of(state, env, class_name)
    if principal.role not in cls.allowedRoles:
        raise HTTPException(403, f"a {principal.role} token may not use cluster class {class_name!r}")
    try:
        override_parameters(cls, parameters)
    except SpecError as exc:
        raise HTTPException(422, f"spec.parameters: {exc}") from None


async def _create(
    state: ServerState,
    env: Environment,
    principal: Principal,
    name: str,
    spec: dict[str, Any],
    labels: dict[str, str],
) -> ClusterRow:
    try:
        check_name(name, "cluster")
        check_labels(labels)
        parsed = parse_cluster(spec)
    except SpecError as exc:
        raise _bad(exc) from None
    class_name = parsed.classRef
    if parsed.poolRef:
        pool = await _store(state).get_pool(env.id, parsed.poolRef)
        if pool is None:
            raise HTTPException(422, f"cluster pool {parsed.poolRef!r} not found")
        class_name = class_name or str(pool.spec.get("classRef"))
    class_name = class_name or "local"
    await _check_class_use(state, env, principal, class_name, parsed.parameters)
    body = parsed.model_dump(mode="json", exclude_none=True)
    body["classRef"] = class_name
    owner = parsed.owner.model_dump(mode="json", exclude_none=True) if parsed.owner else {}
    created_by = {"tokenId": principal.token.id, "role": principal.role}
    try:
        row = await _store(state).create_cluster(
            env.id, name, class_name, body, labels=labels, owner=owner, created_by=created_by
        )
    except Conflict as exc:
        raise HTTPException(409, str(exc)) from None
    _wake(state)
    return row


# ---------------------------------------------------------------------- apply (all three kinds)


@router.post("/v1/clusters/apply", summary="Create or update classes, pools and clusters from YAML")
async def apply_cluster_documents(
    request: Request, state: StateDep, principal: PrincipalDep, env: EnvDep
) -> dict[str, Any]:
    _controller(state, request)
    raw = await request.body()
    try:
        docs = [d for d in yaml.safe_load_all(raw) if d is not None]
    except yaml.YAMLError as exc:
        raise HTTPException(422, f"invalid YAML: {exc}") from None
    results = []
    for doc in docs:
        try:
            kind, name, labels, spec = split_document(doc)
            if kind == KIND_CLASS:
                principal.require(EDIT)
                parse_class(spec)
                _row, changed = await _store(state).apply_class(env.id, name, spec)
            elif kind == KIND_POOL:
                principal.require(EDIT)
                pool_spec = parse_pool(spec)
                pool_class = await _class_of(state, env, pool_spec.classRef)
                try:
                    override_parameters(pool_class, pool_spec.parameters)
                except SpecError as exc:
                    raise HTTPException(422, f"{name}: spec.parameters: {exc}") from None
                _prow, changed = await _store(state).apply_pool(env.id, name, spec)
            else:
                principal.require(RUN)
                try:
                    existing = await _store(state).get_cluster(env.id, name)
                except NotFound:
                    existing = None
                if existing is None:
                    await _create(state, env, principal, name, spec, labels)
                    changed = True
                elif spec.get("teardown") and not existing.teardown:
                    await _store(state).signal(existing.id, teardown=True)
                    changed = True
                else:
                    changed = False  # a request's spec is fixed; only the teardown signal may change
        except SpecError as exc:
            raise _bad(exc) from None
        results.append({"kind": kind, "name": name, "changed": changed})
    _wake(state)
    return {"applied": results}


# ---------------------------------------------------------------------- classes


@router.get("/v1/cluster-classes")
async def get_classes(state: StateDep, principal: PrincipalDep, env: EnvDep) -> list[dict[str, Any]]:
    principal.require(READ)
    return await list_classes(state.store, env.id)


@router.get("/v1/cluster-classes/{name}")
async def get_class(name: str, state: StateDep, principal: PrincipalDep, env: EnvDep) -> dict[str, Any]:
    principal.require(READ)
    row = await _store(state).get_class(env.id, name)
    if row is not None:
        return present_class(name, row.spec, row)
    if name in BUILTIN_CLASSES:
        return present_class(name, BUILTIN_CLASSES[name])
    raise HTTPException(404, f"cluster class {name!r} not found")


@router.delete("/v1/cluster-classes/{name}", status_code=204)
async def delete_class(name: str, state: StateDep, principal: PrincipalDep, env: EnvDep) -> None:
    principal.require(EDIT)
    try:
        await _store(state).delete_class(env.id, name)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None


# ---------------------------------------------------------------------- pools


@router.get("/v1/cluster-pools")
async def get_pools(state: StateDep, principal: PrincipalDep, env: EnvDep) -> list[dict[str, Any]]:
    principal.require(READ)
    cs = _store(state)
    return [present_pool(p, await cs.pool_counts(env.id, p.name)) for p in await cs.list_pools(env.id)]


@router.get("/v1/cluster-pools/{name}")
async def get_pool(name: str, state: StateDep, principal: PrincipalDep, env: EnvDep) -> dict[str, Any]:
    principal.require(READ)
    cs = _store(state)
    pool = await cs.get_pool(env.id, name)
    if pool is None:
        raise HTTPException(404, f"cluster pool {name!r} not found")
    return present_pool(pool, await cs.pool_counts(env.id, name))


@router.delete("/v1/cluster-pools/{name}", status_code=204)
async def delete_pool(name: str, state: StateDep, principal: PrincipalDep, env: EnvDep) -> None:
    """Delete the pool; its spares are torn down (claimed members live on with their claims)."""
    principal.require(EDIT)
    cs = _store(state)
    try:
        await cs.delete_pool(env.id, name)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    for member in await cs.pool_members(env.id, name):
        if member.pool_state != "claimed":
            await cs.signal(member.id, teardown=True)
    _wake(state)


# ---------------------------------------------------------------------- clusters


@router.get("/v1/clusters")
async def get_clusters(
    state: StateDep,
    principal: PrincipalDep,
    env: EnvDep,
    selector: str | None = Query(None),
    members: bool = Query(False, description="include pool spares"),
    finished: bool = Query(True, description="include Deprovisioned and Failed clusters"),
) -> list[dict[str, Any]]:
    principal.require(READ)
    try:
        sel = LabelSelector.parse(selector) if selector else None
    except StoreError as exc:
        raise HTTPException(400, str(exc)) from None
    rows = await _store(state).list_clusters(env.id, sel, include_finished=finished, include_members=members)
    return [present_cluster(r) for r in rows]


@router.post("/v1/clusters", status_code=201, summary="Provision (or claim from a pool) a cluster")
async def provision_cluster(
    body: ProvisionRequest, request: Request, state: StateDep, principal: PrincipalDep, env: EnvDep
) -> dict[str, Any]:
    principal.require(RUN)
    _controller(state, request)
    base = (body.poolRef or body.classRef or "cluster")[:40]
    name = body.name or f"{base}-{secrets.token_hex(3)}"
    spec = body.model_dump(mode="json", exclude={"name", "labels"}, exclude_none=True)
    if not body.poolRef:
        spec.pop("poolRef", None)
    if body.poolRef and "classRef" not in body.model_fields_set:
        spec["classRef"] = ""  # the pool's class
    row = await _create(state, env, principal, name, spec, body.labels)
    return present_cluster(row)


@router.get("/v1/clusters/{name}")
async def get_cluster(name: str, state: StateDep, principal: PrincipalDep, env: EnvDep) -> dict[str, Any]:
    principal.require(READ)
    return present_cluster(await _cluster(state, env, name))


@router.post("/v1/clusters/{name}/teardown", summary="Signal teardown (sticky; the record stays)")
async def teardown_cluster(
    name: str, state: StateDep, principal: PrincipalDep, env: EnvDep
) -> dict[str, Any]:
    principal.require(RUN)
    row = await _cluster(state, env, name)
    row = await _store(state).signal(row.id, teardown=True)
    _wake(state)
    return present_cluster(row)


@router.delete("/v1/clusters/{name}", summary="Tear down and then remove the record")
async def delete_cluster(name: str, state: StateDep, principal: PrincipalDep, env: EnvDep) -> dict[str, Any]:
    principal.require(RUN)
    row = await _cluster(state, env, name)
    row = await _store(state).signal(row.id, delete_=True)
    _wake(state)
    return present_cluster(row)


@router.post("/v1/clusters/{name}/heartbeat", summary="Renew lastActivityAt (idle timeout, heartbeat owner)")
async def heartbeat_cluster(
    name: str, state: StateDep, principal: PrincipalDep, env: EnvDep
) -> dict[str, Any]:
    principal.require(RUN)
    row = await _cluster(state, env, name)
    try:
        row = await _store(state).touch_activity(row.id)
    except Conflict as exc:
        raise HTTPException(409, str(exc)) from None
    return present_cluster(row)


@router.get("/v1/clusters/{name}/kubeconfig", response_class=PlainTextResponse)
async def cluster_kubeconfig(
    name: str, state: StateDep, principal: PrincipalDep, env: EnvDep
) -> PlainTextResponse:
    """The hand-over kubeconfig (short-lived; revoked at teardown). Never logged, never in status."""
    principal.require(RUN)
    row = await _cluster(state, env, name)
    if row.phase != "Ready":
        raise HTTPException(409, f"cluster {name!r} is {row.phase}: credentials exist only while it is Ready")
    sealed = await _store(state).read_credentials(row.id)
    if sealed is None:
        raise HTTPException(409, f"cluster {name!r} has no credentials yet")
    try:
        value = state.sealer.unseal(sealed.sealed)
    except ValueError as exc:
        raise HTTPException(500, str(exc)) from None
    return PlainTextResponse(
        str(value["kubeconfig"]), media_type="application/yaml", headers={"Cache-Control": "no-store"}
    )


@router.post("/v1/clusters/reap", summary="Delete resources no live record accounts for (dry-run first)")
async def reap(
    state: StateDep,
    principal: PrincipalDep,
    dry_run: bool = Query(True, alias="dryRun"),
    grace_seconds: float | None = Query(None, alias="graceSeconds", ge=0),
) -> dict[str, Any]:
    principal.require(ADMIN)
    if principal.token.env_id is not None:
        raise HTTPException(403, "an environment-scoped token may not reap")
    if state.clusters is None:
        raise HTTPException(503, "no cluster controller in this server")
    reaped = await Reaper(state.clusters).sweep(dry_run=dry_run, grace_s=grace_seconds)
    return {"dryRun": dry_run, "reaped": [r.as_dict() for r in reaped]}

"""TestWorkflow and TestWorkflowTemplate resources stored in the control plane (Testkube-shaped paths)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request

from shoal.server._auth import EDIT, READ, EnvDep, Principal, PrincipalDep, StateDep
from shoal.store import LabelSelector, NotFound, Resource, StoreError
from shoal.workflow import WorkflowError, load_documents, validate_documents

router = APIRouter(tags=["resources"])

KINDS = {"test-workflows": "TestWorkflow", "test-workflow-templates": "TestWorkflowTemplate"}


def _can_read_resources(principal: Principal) -> None:
    if not (principal.can(READ) or principal.can("read-resources")):
        principal.require(READ)


def present(res: Resource) -> dict[str, Any]:
    doc = dict(res.document)
    meta = dict(doc.get("metadata") or {})
    meta.setdefault("name", res.name)
    meta["generation"] = res.generation
    meta["resourceVersion"] = str(res.revision)
    meta["creationTimestamp"] = res.created_at.isoformat() if res.created_at else None
    doc["metadata"] = meta
    return doc


async def parse_body(request: Request, source: str) -> list[dict[str, Any]]:
    """YAML (one or many documents) or JSON; validated with located problems."""
    raw = await request.body()
    if len(raw) > 16 * 1024 * 1024:
        raise HTTPException(413, "request body over 16 MiB")
    try:
        docs = load_documents(raw, source)
    except WorkflowError as exc:
        raise HTTPException(
            422, {"error": "invalid document", "problems": [str(p) for p in exc.problems]}
        ) from None
    problems = validate_documents(docs)
    if problems:
        raise HTTPException(422, {"error": "invalid document", "problems": [str(p) for p in problems]})
    return [d.data for d in docs]


async def _apply(state: StateDep, env_id: str, doc: dict[str, Any]) -> tuple[Resource, bool]:
    meta = doc.get("metadata") or {}
    labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    return await state.store.apply_resource(env_id, str(doc["kind"]), str(meta["name"]), doc, labels)


@router.post("/v1/apply", summary="Create or update every document of a multi-document YAML body")
async def apply_documents(
    request: Request, state: StateDep, principal: PrincipalDep, env: EnvDep
) -> dict[str, Any]:
    principal.require(EDIT)
    docs = await parse_body(request, request.query_params.get("file") or "<request>")
    results = []
    for doc in docs:
        res, changed = await _apply(state, env.id, doc)
        results.append({"kind": res.kind, "name": res.name, "revision": res.revision, "changed": changed})
    await state.executions.bus.publish("resources", env_id=env.id)
    return {"applied": results}


def _register(path: str, kind: str) -> None:
    @router.get(f"/v1/{path}", name=f"list {kind}")
    async def list_resources(
        state: StateDep, principal: PrincipalDep, env: EnvDep, selector: str | None = Query(None)
    ) -> list[dict[str, Any]]:
        _can_read_resources(principal)
        try:
            sel = LabelSelector.parse(selector)
        except StoreError as exc:
            raise HTTPException(400, str(exc)) from None
        return [present(r) for r in await state.store.list_resources(env.id, kind, sel)]

    @router.post(f"/v1/{path}", name=f"create {kind}", status_code=201)
    async def create_resource(
        request: Request, state: StateDep, principal: PrincipalDep, env: EnvDep
    ) -> dict[str, Any]:
        principal.require(EDIT)
        docs = await parse_body(request, "<request>")
        if len(docs) != 1 or docs[0].get("kind") != kind:
            raise HTTPException(422, f"expected exactly one {kind} document")
        name = str(docs[0]["metadata"]["name"])
        try:
            await state.store.get_resource(env.id, kind, name)
            raise HTTPException(409, f"{kind} {name!r} already exists (use PUT to update)")
        except NotFound:
            pass
        res, _ = await _apply(state, env.id, docs[0])
        return present(res)

    @router.get(f"/v1/{path}/{{name}}", name=f"get {kind}")
    async def get_resource(
        name: str, state: StateDep, principal: PrincipalDep, env: EnvDep
    ) -> dict[str, Any]:
        _can_read_resources(principal)
        try:
            return present(await state.store.get_resource(env.id, kind, name))
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from None

    @router.put(f"/v1/{path}/{{name}}", name=f"update {kind}")
    async def put_resource(
        name: str, request: Request, state: StateDep, principal: PrincipalDep, env: EnvDep
    ) -> dict[str, Any]:
        principal.require(EDIT)
        docs = await parse_body(request, "<request>")
        if len(docs) != 1 or docs[0].get("kind") != kind or docs[0]["metadata"]["name"] != name:
            raise HTTPException(422, f"expected exactly one {kind} document named {name!r}")
        res, _ = await _apply(state, env.id, docs[0])
        return present(res)

    @router.delete(f"/v1/{path}/{{name}}", name=f"delete {kind}", status_code=204)
    async def delete_resource(name: str, state: StateDep, principal: PrincipalDep, env: EnvDep) -> None:
        principal.require(EDIT)
        try:
            await state.store.delete_resource(env.id, kind, name)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from None

    @router.delete(f"/v1/{path}", name=f"delete {kind} by selector")
    async def delete_by_selector(
        state: StateDep, principal: PrincipalDep, env: EnvDep, selector: str = Query(...)
    ) -> dict[str, Any]:
        principal.require(EDIT)
        try:
            sel = LabelSelector.parse(selector)
        except StoreError as exc:
            raise HTTPException(400, str(exc)) from None
        names = [r.name for r in await state.store.list_resources(env.id, kind, sel)]
        for name in names:
            await state.store.delete_resource(env.id, kind, name)
        return {"deleted": names}


for _path, _kind in KINDS.items():
    _register(_path, _kind)

"""The HTTP face of the simulated API server (a Starlette app): routing, auth, discovery, streaming.

Paths follow the Kubernetes REST layout (`/api/v1/namespaces/{ns}/{plural}/{name}/{subresource}`,
`/apis/{group}/{version}/...`); every request is authenticated with a bearer token, authorized with
RBAC for service-account users, counted in `calls`, and answered with JSON objects or `Status` errors
(`Content-Type: application/json`, exactly, as clients compare it).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from . import _registry as reg
from ._apiserver import DeleteOptions, User
from ._errors import ApiError
from ._rbac import authorize
from ._selectors import parse_field_selector, parse_label_selector
from ._watch import WatchRequest, open_stream

if TYPE_CHECKING:
    from ._sim import KubeSim

log = logging.getLogger("kubesim")
SERVER_VERSION = {"major": "1", "minor": "31", "gitVersion": "v1.31.0-kubesim", "gitCommit": "kubesim",
                  "gitTreeState": "clean", "buildDate": "2024-08-13T00:00:00Z", "goVersion": "go1.22.5",
                  "compiler": "gc", "platform": "linux/amd64"}
PUBLIC_PATHS = {"/healthz", "/livez", "/readyz", "/version"}


@dataclass(frozen=True)
class ApiCall:
    verb: str
    resource: str  # plural, with "/subresource" when there is one; the path for non-resource requests
    namespace: str
    name: str
    code: int
    user: str


@dataclass
class CallLog:
    calls: list[ApiCall] = field(default_factory=list)

    def counter(self) -> Counter[tuple[str, str]]:
        return Counter((c.verb, c.resource) for c in self.calls)


def _json(body: Any, code: int = 200) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status_code=code, media_type="application/json")


def _error(e: ApiError) -> Response:
    return _json(e.status(), e.code)


def _bool(value: str | None) -> bool:
    return value is not None and value.lower() in ("true", "1")


def _int(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError as e:
        raise ApiError.bad_request(f'invalid value for "{name}": {value}') from e


@dataclass
class Target:
    rt: reg.ResourceType
    namespace: str | None  # None: all namespaces (or cluster-scoped)
    name: str | None
    subresource: str | None


def _parse_resource_path(parts: list[str]) -> Target | None:
    """parts after the group/version prefix."""
    if parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    else:
        group, version, rest = parts[1], parts[2], parts[3:]
    if not rest:
        return None
    namespace: str | None = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        ns_rt = reg.lookup(group, version, "namespaces")
        if not (ns_rt is not None and len(rest) == 3 and rest[2] in ns_rt.subresources):
            namespace, rest = rest[1], rest[2:]
    rt = reg.lookup(group, version, rest[0])
    if rt is None or len(rest) > 3:
        return None
    if namespace is not None and not rt.namespaced:
        return None
    name = rest[1] if len(rest) >= 2 else None
    sub = rest[2] if len(rest) == 3 else None
    if sub is not None and sub not in rt.subresources:
        return None
    if rt.namespaced and name is not None and namespace is None:
        return None  # namespaced objects are only addressable inside their namespace
    return Target(rt, namespace if rt.namespaced else None, name, sub)


class Frontend:
    def __init__(self, sim: KubeSim) -> None:
        self.sim = sim
        self.log = CallLog()
        self.closing = asyncio.Event()

    def app(self) -> Starlette:
        methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
        return Starlette(routes=[Route("/{path:path}", self.handle, methods=methods)])

    # -- auth -------------------------------------------------------------------------------------------

    def authenticate(self, request: Request) -> User | None:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer "):
            return None
        token = header[7:].strip()
        if token == self.sim.token:
            return User("kubesim-admin", ("system:masters", "system:authenticated"))
        return self.sim.api.verify_service_account_token(token)

    # -- entry point ------------------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        path = "/" + request.path_params["path"].strip("/")
        # non-resource requests (discovery, /version) are counted under their path
        verb, resource, ns, name, code, user = request.method.lower(), path, "", "", 500, None
        try:
            user = self.authenticate(request)
            if path in PUBLIC_PATHS:
                code = 200
                return _json(SERVER_VERSION) if path == "/version" else Response("ok", media_type="text/plain")
            if user is None:
                raise ApiError.unauthorized()
            parts = [p for p in path.split("/") if p]
            discovery = self._discovery(parts)
            if discovery is not None:
                code = 200
                return _json(discovery)
            if not parts or parts[0] not in ("api", "apis") or len(parts) < (3 if parts[0] == "api" else 4):
                raise ApiError.no_route()
            target = _parse_resource_path(parts)
            if target is None:
                raise ApiError.no_route()
            verb = self._verb(request, target)
            resource = target.rt.plural + (f"/{target.subresource}" if target.subresource else "")
            ns, name = target.namespace or "", target.name or ""
            # a request on a namespace object is authorized as a request in that namespace, as in RBAC
            scope = target.name if target.rt.kind == "Namespace" and target.name else target.namespace
            if not user.is_admin and not authorize(self.sim.api, user, verb, target.rt, target.subresource,
                                                   scope, target.name):
                raise _forbidden(user, verb, target)
            response = await self._dispatch(request, verb, target)
            code = response.status_code
            return response
        except ApiError as e:
            code = e.code
            return _error(e)
        except Exception as e:  # a simulator bug: answer like a real server's internal error, and say so
            log.exception("kubesim: %s %s failed", request.method, path)
            code = 500
            return _error(ApiError(500, "InternalError", f"Internal error occurred: kubesim: {e!r}"))
        finally:
            self.log.calls.append(ApiCall(verb, resource, ns, name, code, user.name if user else ""))

    def _verb(self, request: Request, t: Target) -> str:
        m = request.method
        if t.subresource:
            if m == "GET":
                return "get"
            if m == "POST":
                return "create"
            if m == "PUT":
                return "update"
            if m == "PATCH":
                return "patch"
            raise ApiError.method_not_allowed()
        if t.name is None:
            if m == "GET":
                return "watch" if _bool(request.query_params.get("watch")) else "list"
            if m == "POST":
                return "create"
            if m == "DELETE":
                return "deletecollection"
            raise ApiError.method_not_allowed()
        if m == "GET":
            if _bool(request.query_params.get("watch")):
                return "watch"
            return "get"
        return {"PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(m) or _raise_405()

    # -- discovery --------------------------------------------------------------------------------------

    def _discovery(self, parts: list[str]) -> dict[str, Any] | None:
        if parts == ["api"]:
            return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{self.sim.port}"}]}
        if parts == ["api", "v1"]:
            return {"kind": "APIResourceList", "groupVersion": "v1", "resources": reg.resource_list("", "v1")}
        if parts == ["apis"]:
            groups = []
            for g, versions in reg.groups().items():
                if g:
                    groups.append(self._group(g, versions))
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
        if len(parts) == 2 and parts[0] == "apis":
            served = reg.groups().get(parts[1])
            if not served or not parts[1]:
                raise ApiError.no_route()
            return {"kind": "APIGroup", "apiVersion": "v1", **self._group(parts[1], served)}
        if len(parts) == 3 and parts[0] == "apis":
            resources = reg.resource_list(parts[1], parts[2])
            if resources is None:
                raise ApiError.no_route()
            return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{parts[1]}/{parts[2]}",
                    "resources": resources}
        return None

    @staticmethod
    def _group(g: str, versions: list[str]) -> dict[str, Any]:
        vs = [{"groupVersion": f"{g}/{v}", "version": v} for v in versions]
        return {"name": g, "versions": vs, "preferredVersion": vs[0]}

    # -- resource requests ------------------------------------------------------------------------------

    async def _body(self, request: Request) -> Any:
        raw = await request.body()
        if not raw:
            return None
        ctype = request.headers.get("content-type", "application/json").split(";")[0].strip()
        if ctype not in ("application/json", "", "*/*"):
            raise ApiError(415, "UnsupportedMediaType", f'the body of the request was in an unknown format - '
                                                        f'accepted media types include: application/json, '
                                                        f'application/yaml (got "{ctype}")')
        try:
            return json.loads(raw)
        except json.JSONDecodeError as e:
            raise ApiError.bad_request(f"json: {e}") from e

    async def _dispatch(self, request: Request, verb: str, t: Target) -> Response:
        api, q = self.sim.api, request.query_params
        ns = t.namespace or ""
        dry_run = q.get("dryRun") == "All"
        if q.get("dryRun") not in (None, "", "All"):
            raise ApiError.bad_request(f'Invalid dry run value: "{q.get("dryRun")}"; supported values: "All"')
        if t.subresource == "log":
            return await self.sim.kubelet.log_response(ns, t.name or "", q)
        if t.subresource == "token":
            return _json(api.token_request(ns, t.name or "", await self._body(request)), 201)
        if t.subresource == "binding":
            return _json(self.sim.bind_pod(ns, t.name or "", await self._body(request)), 201)
        if t.subresource == "eviction":
            api.delete(t.rt, ns, t.name or "", DeleteOptions())
            return _json({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}, 201)
        if verb in ("list", "watch", "deletecollection"):
            labels = parse_label_selector(q.get("labelSelector"))
            fields = parse_field_selector(q.get("fieldSelector"), t.rt.field_selectors)
            if verb == "watch":
                if t.name is not None:
                    fields = parse_field_selector(
                        ",".join(filter(None, [q.get("fieldSelector"), f"metadata.name={t.name}"])),
                        t.rt.field_selectors)
                return await self._watch(request, t, labels, fields)
            if verb == "list":
                return _json(api.list(t.rt, t.namespace, labels, fields, _int(q.get("limit"), "limit"),
                                      q.get("continue")))
            return _json(api.delete_collection(t.rt, t.namespace, labels, fields,
                                               await self._delete_options(request)))
        if verb == "create":
            if t.rt.namespaced and t.namespace is None:
                raise ApiError.method_not_allowed()
            return _json(api.create(t.rt, ns, await self._body(request), dry_run=dry_run), 201)
        assert t.name is not None
        if verb == "get":
            return _json(api.get(t.rt, ns, t.name))
        if verb == "update":
            return _json(api.update(t.rt, ns, t.name, await self._body(request), subresource=t.subresource,
                                    dry_run=dry_run))
        if verb == "patch":
            obj, created = api.patch(t.rt, ns, t.name, await request.body(),
                                     request.headers.get("content-type", ""), subresource=t.subresource,
                                     field_manager=q.get("fieldManager"), dry_run=dry_run)
            return _json(obj, 201 if created else 200)
        if verb == "delete":
            opts = await self._delete_options(request)
            response = _json(api.delete(t.rt, ns, t.name, opts))
            if t.rt.kind == "Job" and opts.propagation is None:
                response.headers["Warning"] = (
                    '299 - "child pods are preserved by default when jobs are deleted; set '
                    'propagationPolicy=Background to remove them or set propagationPolicy=Orphan to suppress '
                    'this warning"')
            return response
        raise ApiError.method_not_allowed()

    async def _delete_options(self, request: Request) -> DeleteOptions:
        q = request.query_params
        body = await self._body(request) or {}
        if not isinstance(body, dict):
            raise ApiError.bad_request("DeleteOptions must be an object")
        grace = _int(q.get("gracePeriodSeconds"), "gracePeriodSeconds")
        if grace is None and body.get("gracePeriodSeconds") is not None:
            grace = int(body["gracePeriodSeconds"])
        policy = q.get("propagationPolicy") or body.get("propagationPolicy")
        orphan = q.get("orphanDependents") or body.get("orphanDependents")
        if orphan is not None and policy is None:
            policy = "Orphan" if str(orphan).lower() == "true" else "Background"
        return DeleteOptions(grace, policy, body.get("preconditions") or {},
                             q.get("dryRun") == "All" or body.get("dryRun") == ["All"])

    async def _watch(self, request: Request, t: Target, labels: Any, fields: Any) -> Response:
        q = request.query_params
        timeout = _int(q.get("timeoutSeconds"), "timeoutSeconds")
        req = WatchRequest(t.rt, t.namespace, labels, fields, q.get("resourceVersion"),
                           _bool(q.get("allowWatchBookmarks")), _bool(q.get("sendInitialEvents")),
                           float(timeout) if timeout else None)
        body = open_stream(self.sim.store, req, self.closing, self.sim.options.bookmark_interval)
        return StreamingResponse(body, media_type="application/json")


def _raise_405() -> str:
    raise ApiError.method_not_allowed()


def _forbidden(user: User, verb: str, t: Target) -> ApiError:
    res = t.rt.plural + (f"/{t.subresource}" if t.subresource else "")
    what = f'{t.rt.group_resource} "{t.name}"' if t.name else t.rt.group_resource
    where = f'in the namespace "{t.namespace}"' if t.namespace else "at the cluster scope"
    return ApiError(403, "Forbidden", f'{what} is forbidden: User "{user.name}" cannot {verb} resource "{res}" in '
                                      f'API group "{t.rt.group}" {where}',
                    {"name": t.name or "", **({"group": t.rt.group} if t.rt.group else {}), "kind": t.rt.plural})

"""What the Clusters and pools page reads: a small protocol, :class:`ClusterSource`.

The default source reads the ephemeral-cluster records of the control plane's store (through the read
models of ``shoal.clusters``) and signals teardowns through the same code as
``POST /v1/clusters/{name}/teardown``; ``app.state.cluster_source`` may hold another implementation
(tests, an external controller). Views are plain dataclasses so the page does not depend on how the
controller stores its objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from shoal.clusters import list_clusters, list_pools
from shoal.server._auth import Principal
from shoal.server._state import ServerState
from shoal.server.api._clusters import teardown_cluster
from shoal.store import Environment
from shoal.store._clusters import ClusterStore


@dataclass(frozen=True, slots=True)
class ConditionView:
    type: str  # Accepted, Provisioned, CredentialsReady, Ready, TeardownRequested, Deprovisioned
    status: str  # "True" | "False" | "Unknown"
    reason: str = ""
    message: str = ""


@dataclass(frozen=True, slots=True)
class ClusterView:
    name: str
    phase: str  # Pending | Provisioning | Ready | Deprovisioning | Deprovisioned | Failed
    owner: str = ""  # who asked for it (a pipeline run, a user, a pool)
    pool: str | None = None
    class_name: str = ""
    expires_at: datetime | None = None
    teardown_requested: bool = False
    conditions: list[ConditionView] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class PoolView:
    name: str
    class_name: str = ""
    size: int | None = None  # ready spares to keep
    max_size: int | None = None
    ready: int = 0
    provisioning: int = 0
    claimed: int = 0


@runtime_checkable
class ClusterSource(Protocol):
    """Read clusters and pools of an environment and request a teardown (sticky, idempotent)."""

    async def clusters(self, env: Environment) -> list[ClusterView]: ...

    async def pools(self, env: Environment) -> list[PoolView]: ...

    async def request_teardown(self, env: Environment, name: str, *, principal: Principal) -> None: ...


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        ts = (
            value
            if isinstance(value, datetime)
            else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        )
    except ValueError:
        return None
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def _owner(owner: Any) -> str:
    if not isinstance(owner, dict) or not owner:
        return ""
    kind, name = owner.get("kind"), owner.get("name")
    return f"{kind}/{name}" if kind and name else str(name or kind or "")


def cluster_view(item: dict[str, Any]) -> ClusterView:
    """A cluster of ``shoal.clusters.list_clusters`` as the page shows it."""
    conditions = [
        ConditionView(
            str(c.get("type", "")),
            str(c.get("status", "Unknown")),
            str(c.get("reason") or ""),
            str(c.get("message") or ""),
        )
        for c in item.get("conditions") or []
        if isinstance(c, dict)
    ]
    pool_state = item.get("poolState")
    return ClusterView(
        name=str(item.get("name")),
        phase=str(item.get("phase") or "Pending"),
        owner=_owner(item.get("owner"))
        or (f"pool ({pool_state})" if item.get("pool") and pool_state else ""),
        pool=str(item["pool"]) if item.get("pool") else None,
        class_name=str(item.get("class") or ""),
        expires_at=_time(item.get("expiresAt")),
        teardown_requested=any(c.type == "TeardownRequested" and c.status == "True" for c in conditions),
        conditions=conditions,
    )


class StoreClusterSource:
    """Clusters and pools of the control plane's own store (whichever process runs the controller)."""

    def __init__(self, state: ServerState) -> None:
        self.state = state

    async def clusters(self, env: Environment) -> list[ClusterView]:
        return [cluster_view(item) for item in await list_clusters(self.state.store, env.id)]

    async def pools(self, env: Environment) -> list[PoolView]:
        specs = {p.name: p.spec or {} for p in await ClusterStore(self.state.store).list_pools(env.id)}
        out = []
        for item in await list_pools(self.state.store, env.id):
            spec = specs.get(str(item.get("name")), {})
            out.append(
                PoolView(
                    name=str(item.get("name")),
                    class_name=str(item.get("class") or ""),
                    size=int(spec["size"]) if isinstance(spec.get("size"), int) else None,
                    max_size=int(spec["maxSize"]) if isinstance(spec.get("maxSize"), int) else None,
                    ready=int(item.get("ready") or 0),
                    provisioning=int(item.get("provisioning") or 0),
                    claimed=int(item.get("claimed") or 0),
                )
            )
        return out

    async def request_teardown(self, env: Environment, name: str, *, principal: Principal) -> None:
        # The REST route's own code: role check, lookup (404), sticky signal, controller wake-up.
        await teardown_cluster(name, self.state, principal, env)


def cluster_source(app_state: Any) -> ClusterSource:
    """``app.state.cluster_source`` when one is registered, else the store-backed source."""
    source = getattr(app_state, "cluster_source", None)
    if isinstance(source, ClusterSource):
        return source
    return StoreClusterSource(app_state.shoal)


def controller_runs_here(app_state: Any) -> bool:
    state: ServerState = app_state.shoal
    return state.clusters is not None


__all__ = [
    "ClusterSource",
    "ClusterView",
    "ConditionView",
    "PoolView",
    "StoreClusterSource",
    "cluster_source",
    "cluster_view",
    "controller_runs_here",
]

"""What the Clusters and pools page reads: a small protocol the ephemeral-cluster controller provides.

The dashboard never reaches into ``shoal.clusters`` itself. Whoever runs the cluster controller in the
server process puts an object implementing :class:`ClusterSource` on ``app.state.cluster_source``;
until then the page says that there is no cluster controller data. Views are plain dataclasses so the
page does not depend on how the controller stores its objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable


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
    size: int = 0  # ready spares to keep
    max_size: int | None = None
    ready: int = 0
    provisioning: int = 0
    claimed: int = 0


@runtime_checkable
class ClusterSource(Protocol):
    """Read clusters and pools of an environment and request a teardown (sticky, idempotent)."""

    async def clusters(self, environment: str) -> list[ClusterView]: ...

    async def pools(self, environment: str) -> list[PoolView]: ...

    async def request_teardown(self, environment: str, name: str, *, requested_by: str) -> None: ...


def cluster_source(app_state: Any) -> ClusterSource | None:
    """The source registered on ``app.state.cluster_source``, or None when no controller runs here."""
    source = getattr(app_state, "cluster_source", None)
    return source if isinstance(source, ClusterSource) else None


__all__ = ["ClusterSource", "ClusterView", "ConditionView", "PoolView", "cluster_source"]

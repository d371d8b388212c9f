"""The provisioner plug-in contract: validate, ensure, observe, credentials, delete, list_owned (plus
installing and removing a shoal agent). Every operation is idempotent, keyed by the external name."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable


class State(enum.StrEnum):
    ABSENT = "ABSENT"
    CREATING = "CREATING"
    READY = "READY"
    DEGRADED = "DEGRADED"
    DELETING = "DELETING"
    FAILED = "FAILED"


class ProvisionerError(Exception):
    """An operation failed. ``permanent`` errors are not retried (the cluster is torn down)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True, slots=True)
class OwnerTags:
    """Stamped on every external object: what makes ``list_owned`` and the reaper possible."""

    controller: str
    cluster_uid: str
    cluster_name: str
    environment: str
    class_name: str
    expires_at: int  # epoch seconds

    def as_dict(self) -> dict[str, str]:
        return {
            "controller": self.controller,
            "uid": self.cluster_uid,
            "name": self.cluster_name,
            "environment": self.environment,
            "class": self.class_name,
            "expiresAt": str(self.expires_at),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OwnerTags:
        return cls(
            controller=str(data.get("controller", "")),
            cluster_uid=str(data.get("uid", "")),
            cluster_name=str(data.get("name", "")),
            environment=str(data.get("environment", "")),
            class_name=str(data.get("class", "")),
            expires_at=int(float(data.get("expiresAt") or 0)),
        )


@dataclass(frozen=True, slots=True)
class Observation:
    state: State
    message: str = ""
    handle: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Credentials:
    """A hand-over kubeconfig (never logged, never in status) and when it stops working."""

    kubeconfig: str
    expires_at: datetime | None = None

    def __repr__(self) -> str:  # keep the secret out of any log line that formats this object
        return f"Credentials(expires_at={self.expires_at!r}, kubeconfig=<{len(self.kubeconfig)} bytes>)"


@dataclass(frozen=True, slots=True)
class OwnedResource:
    external_name: str
    tags: OwnerTags
    created_at: datetime | None = None
    kind: str = ""


@dataclass(frozen=True, slots=True)
class AgentInstall:
    """What an installed agent needs: where to connect, as whom, with which labels."""

    name: str
    server: str
    token: str
    labels: dict[str, str]
    environment: str = "default"

    def __repr__(self) -> str:
        return f"AgentInstall(name={self.name!r}, server={self.server!r}, labels={self.labels!r})"


CrashHook = Callable[[str], None]


@runtime_checkable
class Provisioner(Protocol):
    name: str

    def validate(self, params: dict[str, Any]) -> list[str]:
        """Problems with the parameters (pure; problems are terminal)."""
        ...

    async def ensure(self, ext: str, params: dict[str, Any], tags: OwnerTags) -> None:
        """Create or adopt ``ext``; may return before it is ready (``observe`` tells)."""
        ...

    async def observe(self, ext: str, params: dict[str, Any]) -> Observation: ...

    async def credentials(self, ext: str, params: dict[str, Any], ttl_s: float) -> Credentials: ...

    async def delete(self, ext: str, params: dict[str, Any]) -> None:
        """Start deleting ``ext`` (and anything installed in it); absent is success."""
        ...

    async def list_owned(self, controller: str, params: dict[str, Any]) -> list[OwnedResource]: ...

    async def install_agent(self, ext: str, params: dict[str, Any], agent: AgentInstall) -> None: ...

    async def remove_agent(self, ext: str, params: dict[str, Any], name: str) -> None: ...


def no_crash(_point: str) -> None:
    return None

"""The execution context: what is known about a run before its first container starts.

``ExecutionContext`` feeds the compile-time variables (`execution.*`, `resource.*`, `organization.id`,
...). `shoal compile` makes a fresh one as a run would; the control plane makes the real one.
"""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any


def new_execution_id() -> str:
    """A 24-hex id, like Testkube's ObjectIDs: 4 bytes of time then 8 random bytes."""
    stamp = int(datetime.now(UTC).timestamp()).to_bytes(4, "big")
    return (stamp + secrets.token_bytes(8)).hex()


def _now() -> str:
    """RFC 3339 UTC with milliseconds, as Testkube prints `execution.scheduledAt`."""
    moment = datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass(slots=True)
class ExecutionContext:
    """Everything the compiler may substitute about the run itself."""

    id: str = field(default_factory=new_execution_id)
    name: str = ""  # `<workflow>-<number>` when empty
    number: int = 1
    group_id: str = ""  # the id when empty
    scheduled_at: str = field(default_factory=_now)
    tags: dict[str, str] = field(default_factory=dict)  # run tags; merged over spec.execution.tags
    running_context: dict[str, Any] = field(default_factory=dict)  # {actor: {...}, interface: {...}}
    disable_webhooks: bool = False
    organization: str = ""
    environment: str = ""
    resource_id: str = ""  # the id when empty
    resource_root: str = ""  # the id when empty
    fs_prefix: str = ""
    dashboard_url: str = ""
    namespace: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExecutionContext:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    def variables(self, workflow: str, labels: dict[str, str], tags: dict[str, str]) -> dict[str, Any]:
        """The compile-time variables of this run (dotted names are single variables)."""
        out: dict[str, Any] = {
            "execution.id": self.id,
            "execution.groupId": self.group_id or self.id,
            "execution.name": self.name or f"{workflow}-{self.number}",
            "execution.number": self.number,
            "execution.scheduledAt": self.scheduled_at,
            "execution.disableWebhooks": self.disable_webhooks,
            "execution.tags": dict(tags),
            "execution.runningContext": _running_context(self.running_context),
            "workflow.name": workflow,
            "workflow.labels": dict(labels),
            "labels": {_label_key(k): v for k, v in labels.items()},
            "resource.id": self.resource_id or self.id,
            "resource.root": self.resource_root or self.id,
            "resource.fsPrefix": self.fs_prefix,
            "organization.id": self.organization,
            "environment.id": self.environment,
            "dashboard.url": self.dashboard_url,
        }
        for key, value in tags.items():
            out[f"execution.tags.{key}"] = value
        for key, value in labels.items():
            out[f"workflow.labels.{key}"] = value
            out[f"labels.{_label_key(key)}"] = value
        return out


def _label_key(key: str) -> str:
    return key.replace(".", "_").replace("-", "_").replace("/", "_")


def _running_context(data: dict[str, Any]) -> dict[str, Any]:
    actor = {
        "name": "",
        "email": "",
        "executionId": "",
        "executionPath": "",
        "executionReference": "",
        "type": "",
    }
    interface = {"name": "", "type": ""}
    actor.update(data.get("actor") or {})
    interface.update(data.get("interface") or {})
    return {"actor": actor, "interface": interface}

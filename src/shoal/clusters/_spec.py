"""The three resources as the API speaks them (``EphemeralClusterClass``, ``EphemeralClusterPool``,
``EphemeralCluster``), durations, conditions, and the built-in ``local`` class. Pure: no I/O."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

API_VERSION = "shoal.dev/v1"
KIND_CLASS = "EphemeralClusterClass"
KIND_POOL = "EphemeralClusterPool"
KIND_CLUSTER = "EphemeralCluster"
PHASES = ("Pending", "Provisioning", "Ready", "Deprovisioning", "Deprovisioned", "Failed")
TERMINAL_PHASES = ("Deprovisioned", "Failed")
TEARDOWN_REASONS = (
    "UserRequested",
    "Deleted",
    "Expired",
    "IdleTimeout",
    "OwnerGone",
    "ProvisionFailed",
    "Lost",
    "PoolShrink",
)
FAILURE_REASONS = ("ProvisionFailed", "Lost")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class SpecError(ValueError):
    """A resource document is invalid; ``problems`` are located messages."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


def parse_duration(value: str | float | int | None) -> float | None:
    """``2h``, ``1h30m``, ``90s``, ``500ms`` or a number of seconds; None stays None."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"negative duration {value}")
        return float(value)
    text = str(value).strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"invalid duration {value!r} (expected e.g. 90s, 30m, 2h, 1h30m)")
    return total


def format_duration(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    s = int(seconds)
    if s % 3600 == 0 and s:
        return f"{s // 3600}h"
    if s % 60 == 0 and s:
        return f"{s // 60}m"
    return f"{s}s"


Duration = str | float | int | None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Quota(_Model):
    maxActive: int | None = Field(default=None, ge=0)
    maxConcurrentOps: int | None = Field(default=None, ge=1)


class CredentialPolicy(_Model):
    tokenTTL: Duration = "1h"
    refreshBefore: Duration = "10m"


PROVISIONERS = ("local", "namespace", "script", "noop")  # what the controller can drive


class ClassSpec(_Model):
    provisioner: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    allowedParameters: list[str] = Field(default_factory=list)
    defaultLifetime: Duration = "1h"
    maxLifetime: Duration = "4h"
    idleTimeout: Duration = None
    provisionTimeout: Duration = "15m"
    deprovisionTimeout: Duration = "15m"
    maxProvisionAttempts: int = Field(default=3, ge=1)
    quota: Quota = Field(default_factory=Quota)
    credentials: CredentialPolicy = Field(default_factory=CredentialPolicy)
    installAgent: bool = False
    agentLabels: dict[str, str] = Field(default_factory=dict)
    allowedRoles: list[str] = Field(default_factory=lambda: ["admin", "editor", "runner"])

    @field_validator("provisioner")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in PROVISIONERS:
            raise ValueError(f"expected one of {', '.join(PROVISIONERS)}, got {v!r}")
        return v

    @field_validator(
        "defaultLifetime", "maxLifetime", "idleTimeout", "provisionTimeout", "deprovisionTimeout"
    )
    @classmethod
    def _duration(cls, v: Duration) -> Duration:
        parse_duration(v)
        return v

    def seconds(self, field_name: str) -> float | None:
        value = getattr(self, field_name)
        return parse_duration(value)


class ScheduleEntry(_Model):
    cron: str
    size: int = Field(ge=0)


class PoolSpec(_Model):
    classRef: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    size: int = Field(default=1, ge=0)
    maxSize: int = Field(default=10, ge=0)
    maxSpareAge: Duration = "6h"
    schedule: list[ScheduleEntry] = Field(default_factory=list)

    @field_validator("maxSpareAge")
    @classmethod
    def _duration(cls, v: Duration) -> Duration:
        parse_duration(v)
        return v


class Owner(_Model):
    """Who the cluster lives for. ``execution`` (an id), ``agent`` (a name) and ``heartbeat`` (renewed
    with ``shoal cluster heartbeat``; gone after ``timeout``) are checked; other kinds are recorded."""

    kind: str
    name: str = ""
    uid: str = ""
    namespace: str = ""
    timeout: Duration = None

    @model_validator(mode="after")
    def _complete(self) -> Owner:
        if self.kind == "heartbeat":
            seconds = parse_duration(self.timeout) if self.timeout is not None else None
            if not seconds or seconds <= 0:
                raise ValueError("a heartbeat owner needs a positive timeout (heartbeat/10m)")
        elif not (self.name or self.uid):
            raise ValueError(f"an owner of kind {self.kind!r} needs a name or uid (execution/ID, agent/NAME, ...)")
        return self


class ClusterSpec(_Model):
    classRef: str = ""
    poolRef: str | None = None
    fallbackToFresh: bool = False
    parameters: dict[str, Any] = Field(default_factory=dict)
    lifetime: Duration = None
    teardown: bool = False
    owner: Owner | None = None

    @field_validator("lifetime")
    @classmethod
    def _duration(cls, v: Duration) -> Duration:
        seconds = parse_duration(v)
        if seconds is not None and seconds <= 0:
            raise ValueError(f"expected a positive duration such as 2h, got {v!r}")
        return v


BUILTIN_CLASSES: dict[str, dict[str, Any]] = {
    "local": {
        "provisioner": "local",
        "parameters": {},
        "defaultLifetime": "1h",
        "maxLifetime": "8h",
        "provisionTimeout": "5m",
        "deprovisionTimeout": "5m",
        "installAgent": True,
    }
}


def _problems(exc: ValidationError, prefix: str) -> list[str]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()))
        out.append(f"{prefix}{loc}: {err.get('msg', 'invalid')}")
    return out


def parse_class(spec: dict[str, Any]) -> ClassSpec:
    try:
        return ClassSpec.model_validate(spec)
    except ValidationError as exc:
        raise SpecError("invalid EphemeralClusterClass", _problems(exc, "spec.")) from None


def parse_pool(spec: dict[str, Any]) -> PoolSpec:
    try:
        return PoolSpec.model_validate(spec)
    except ValidationError as exc:
        raise SpecError("invalid EphemeralClusterPool", _problems(exc, "spec.")) from None


def parse_cluster(spec: dict[str, Any]) -> ClusterSpec:
    try:
        return ClusterSpec.model_validate(spec)
    except ValidationError as exc:
        raise SpecError("invalid EphemeralCluster", _problems(exc, "spec.")) from None


def check_name(name: str, what: str) -> None:
    if not _DNS_LABEL.match(name or ""):
        raise SpecError(f"{what} name {name!r}: expected a DNS label (a-z, 0-9, '-', at most 63)")


_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
_LABEL_PREFIX = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*")


def check_labels(labels: dict[str, str], where: str = "metadata.labels") -> None:
    """Labels become Kubernetes labels (of namespaces, agents' objects): check them as Kubernetes would."""
    for key, value in labels.items():
        prefix, _, name = key.rpartition("/")
        if not _LABEL_NAME.fullmatch(name) or (prefix and (len(prefix) > 253 or not _LABEL_PREFIX.fullmatch(prefix))):
            raise SpecError(f"{where}.{key}: expected a label key ([prefix/]name; name: letters, digits, '-', '_', "
                            "'.', at most 63)")
        if value and not _LABEL_NAME.fullmatch(str(value)):
            raise SpecError(f"{where}.{key}: {value!r} is not a label value (letters, digits, '-', '_', '.', "
                            "at most 63)")


def split_document(doc: dict[str, Any]) -> tuple[str, str, dict[str, str], dict[str, Any]]:
    """(kind, name, labels, spec) of an applied document; checks apiVersion, kind and name."""
    if not isinstance(doc, dict):
        raise SpecError("a document must be a mapping")
    kind: str = str(doc.get("kind") or "")
    if kind not in (KIND_CLASS, KIND_POOL, KIND_CLUSTER):
        raise SpecError(f"kind {kind!r}: expected {KIND_CLASS}, {KIND_POOL} or {KIND_CLUSTER}")
    api = doc.get("apiVersion")
    if api not in (None, API_VERSION):
        raise SpecError(f"{kind}: apiVersion {api!r}: expected {API_VERSION}")
    meta = doc.get("metadata") or {}
    name = str(meta.get("name") or "")
    check_name(name, kind)
    labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    spec = doc.get("spec") or {}
    if not isinstance(spec, dict):
        raise SpecError(f"{kind} {name}: spec must be a mapping")
    unknown = set(doc) - {"apiVersion", "kind", "metadata", "spec", "status"}
    if unknown:
        raise SpecError(f"{kind} {name}: unknown fields {', '.join(sorted(unknown))}")
    return kind, name, labels, spec


# ---------------------------------------------------------------------- conditions


def iso(ts: datetime | None) -> str | None:
    return ts.isoformat() if ts is not None else None


def parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def condition(status: dict[str, Any], ctype: str) -> dict[str, Any] | None:
    for c in status.get("conditions") or []:
        if c.get("type") == ctype:
            return dict(c)
    return None


def is_true(status: dict[str, Any], ctype: str) -> bool:
    c = condition(status, ctype)
    return bool(c and c.get("status") == "True")


def set_condition(
    status: dict[str, Any], ctype: str, value: bool, reason: str, message: str, at: datetime
) -> None:
    """Positive conditions (True means it happened); the transition time moves only on a flip."""
    conds = [dict(c) for c in status.get("conditions") or []]
    new: dict[str, Any] = {
        "type": ctype,
        "status": "True" if value else "False",
        "reason": reason,
        "message": message,
    }
    for i, c in enumerate(conds):
        if c.get("type") == ctype:
            new["lastTransitionTime"] = (
                c.get("lastTransitionTime") if c.get("status") == new["status"] else iso(at)
            )
            conds[i] = new
            break
    else:
        new["lastTransitionTime"] = iso(at)
        conds.append(new)
    status["conditions"] = conds


def lifetime_deadline(
    created: datetime, requested: float | None, cls: ClassSpec, skew_s: float = 0.0
) -> datetime:
    """Absolute expiry: ``created + min(requested or default, max)``."""
    default = cls.seconds("defaultLifetime") or 3600.0
    cap = cls.seconds("maxLifetime")
    life = requested if requested is not None else default
    if cap is not None:
        life = min(life, cap)
    return created + timedelta(seconds=life + skew_s)


def override_parameters(cls: ClassSpec, requested: dict[str, Any]) -> dict[str, Any]:
    """Class parameters with the request's overrides; only ``allowedParameters`` may be overridden."""
    bad = sorted(k for k in requested if k not in cls.allowedParameters)
    if bad:
        allowed = ", ".join(cls.allowedParameters) or "none"
        raise SpecError(f"parameters {', '.join(bad)} may not be overridden (allowed: {allowed})")
    return {**cls.parameters, **requested}

"""The Plan: what the compiler produces and every runtime executes. Plain data, JSON round-trippable.

A Plan is a tree of stages (``Stage``) keyed by ref, the execution signature derived from it, and an
ordered list of containers; each container holds the slice of the depth-first action list
(``start``/``exec``/``end`` of refs) that it runs. Expressions that could not be resolved at compile
time stay in the Plan as expression source text (``condition``, ``retry.until``, ``{{ }}`` islands in
templates); the init program resolves them at run time.
"""

from __future__ import annotations

from copy import deepcopy
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal, TypeVar

PLAN_VERSION = 1

StageKind = Literal[
    "group",  # a step with children (or the root)
    "shell",  # shell script: busybox sh -c "set -e\n<script>"
    "run",  # run command/args in the container
    "delay",  # sleep before the rest of the step
    "git",  # clone content.git
    "tarball",  # fetch content.tarball
    "artifacts",  # collect artifacts
    "services-start",
    "services-stop",
    "execute",  # run other workflows
    "parallel",  # fan out workers
    "pause",  # "Wait for continue" placeholder of a paused step without operations
]

# Stages whose work the runtime's toolkit performs; the init program delegates them.
TOOLKIT_KINDS: frozenset[str] = frozenset(
    {"git", "tarball", "artifacts", "services-start", "services-stop", "execute", "parallel"}
)

ActionOp = Literal["start", "exec", "end"]


@dataclass(slots=True)
class EnvVar:
    """An environment variable of a stage. ``value`` is a template (may hold run-time ``{{ }}``)."""

    name: str
    value: str | None = None
    value_from: dict[str, Any] | None = None  # Kubernetes EnvVarSource (configMapKeyRef, secretKeyRef, ...)
    global_: bool = False
    sensitive: bool = False


@dataclass(slots=True)
class Retry:
    count: int
    until: str = "passed"  # expression source, evaluated with self.* bound to the attempt


@dataclass(slots=True)
class Stage:
    """One node of the stage tree: the root, a group (step with children) or an operation."""

    ref: str
    kind: StageKind
    parent: str | None = None
    id: str | None = None  # user-facing step id (for step.<id>.outputs)
    name: str = ""
    category: str = ""
    virtual: bool = False  # unnamed plain group: its children are lifted into the parent in the signature
    condition: str = "passed"  # expression source; "true" = always. `passed`/`failed` already expanded
    status_chain: str = "true"  # expression over refs: the aggregate status before this stage
    optional: bool = False
    negative: bool = False
    paused: bool = False
    pure: bool = False
    timeout_ms: int | None = None
    retry: Retry | None = None
    children: list[str] = field(default_factory=list)
    result: str | None = None  # groups: expression over child refs deciding passed/failed
    container: int | None = None  # operations: index into Plan.containers
    # --- operation payload ---
    command: list[str] | None = None  # templates; a pure `{{ list }}` item expands into several
    args: list[str] | None = None
    shell: str | None = None  # template
    working_dir: str | None = None  # template
    env: list[EnvVar] = field(default_factory=list)
    spec: dict[str, Any] = field(default_factory=dict)  # kind-specific data (delay ms, git, artifacts, ...)


@dataclass(slots=True)
class Action:
    op: ActionOp
    ref: str


@dataclass(slots=True)
class Container:
    """One container of the execution pod (or one process group of the local runtime)."""

    index: int
    name: str
    image: str
    image_pull_policy: str | None = None
    working_dir: str | None = None
    resources: dict[str, Any] = field(default_factory=dict)
    security_context: dict[str, Any] = field(default_factory=dict)
    volume_mounts: list[dict[str, Any]] = field(default_factory=list)
    env_from: list[dict[str, Any]] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    pure: bool = False  # every operation in it is pure


@dataclass(slots=True)
class SignatureNode:
    ref: str
    name: str
    category: str = ""
    id: str | None = None
    optional: bool = False
    negative: bool = False
    children: list[SignatureNode] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ref": self.ref, "name": self.name}
        if self.id:
            out["id"] = self.id
        if self.category:
            out["category"] = self.category
        if self.optional:
            out["optional"] = True
        if self.negative:
            out["negative"] = True
        if self.children:
            out["children"] = [c.to_dict() for c in self.children]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SignatureNode:
        return cls(
            ref=data["ref"],
            name=data.get("name", ""),
            category=data.get("category", ""),
            id=data.get("id"),
            optional=bool(data.get("optional", False)),
            negative=bool(data.get("negative", False)),
            children=[cls.from_dict(c) for c in data.get("children", [])],
        )


@dataclass(slots=True)
class ConfigValue:
    value: str | None
    sensitive: bool = False
    default: bool = False  # the value came from the parameter's default


@dataclass(slots=True)
class Plan:
    workflow: str
    root: str
    stages: dict[str, Stage]
    signature: list[SignatureNode]
    containers: list[Container]
    labels: dict[str, str] = field(default_factory=dict)
    config: dict[str, ConfigValue] = field(default_factory=dict)  # sensitive ones carry value None
    sensitive_env: dict[str, str] = field(default_factory=dict)  # env name -> config name it carries
    job: dict[str, Any] = field(default_factory=dict)  # resolved spec.job (labels, annotations, namespace...)
    pod: dict[str, Any] = field(default_factory=dict)  # resolved spec.pod
    files: list[dict[str, Any]] = field(default_factory=list)  # content.files of every level: path, content, mode
    pvcs: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    target: dict[str, Any] | None = None
    concurrency: dict[str, Any] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    silent: bool = False
    isolated_containers: bool = False
    version: int = PLAN_VERSION
    # ExecutionContext.to_dict() of the run this Plan was compiled for (workers/services are compiled
    # from it: resource ids, execution.* variables)
    context: dict[str, Any] = field(default_factory=dict)

    # ---------------------------------------------------------------- serialisation

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "signature":
                out[f.name] = [n.to_dict() for n in value]
            elif f.name == "stages":
                out[f.name] = {k: _stage_to_dict(v) for k, v in value.items()}
            elif f.name == "containers":
                out[f.name] = [_container_to_dict(c) for c in value]
            elif f.name == "config":
                out[f.name] = {k: asdict(v) for k, v in value.items()}
            else:
                out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        version = data.get("version", PLAN_VERSION)
        if version != PLAN_VERSION:
            raise ValueError(f"plan version {version} is not supported (expected {PLAN_VERSION})")
        return cls(
            workflow=data["workflow"],
            root=data["root"],
            stages={k: _stage_from_dict(v) for k, v in data["stages"].items()},
            signature=[SignatureNode.from_dict(n) for n in data.get("signature", [])],
            containers=[_container_from_dict(c) for c in data.get("containers", [])],
            labels=dict(data.get("labels", {})),
            config={k: ConfigValue(**v) for k, v in data.get("config", {}).items()},
            sensitive_env=dict(data.get("sensitive_env", {})),
            job=dict(data.get("job", {})),
            pod=dict(data.get("pod", {})),
            files=list(data.get("files", [])),
            pvcs=dict(data.get("pvcs", {})),
            tags=dict(data.get("tags", {})),
            target=data.get("target"),
            concurrency=data.get("concurrency"),
            events=list(data.get("events", [])),
            silent=bool(data.get("silent", False)),
            isolated_containers=bool(data.get("isolated_containers", False)),
            version=version,
            context=dict(data.get("context", {})),
        )

    # ---------------------------------------------------------------- queries

    def operations(self) -> list[Stage]:
        """Every non-group stage in execution order."""
        return [self.stages[a.ref] for c in self.containers for a in c.actions if a.op == "exec"]

    def leaves_and_groups(self) -> list[Stage]:
        """Every stage in depth-first order, root first."""
        order: list[Stage] = []
        stack = [self.root]
        while stack:
            ref = stack.pop()
            stage = self.stages[ref]
            order.append(stage)
            stack.extend(reversed(stage.children))
        return order


# What ``dataclasses.asdict`` gives for stages and containers, without its ``deepcopy`` of every leaf:
# a Plan holds plain data only (the runtimes serialise one per execution, stages by the thousand).
_STAGE_FIELDS = tuple(f.name for f in fields(Stage))
_ENV_FIELDS = tuple(f.name for f in fields(EnvVar))
_CONTAINER_FIELDS = tuple(f.name for f in fields(Container))


def _copy(value: Any) -> Any:
    kind = type(value)
    if kind is dict:
        return {_copy(k): _copy(v) for k, v in value.items()}
    if kind is list:
        return [_copy(v) for v in value]
    if kind is str or kind is int or kind is bool or kind is float or value is None:
        return value
    return asdict(value) if hasattr(value, "__dataclass_fields__") else _copy_other(value)


def _copy_other(value: Any) -> Any:
    if isinstance(value, tuple):
        return type(value)(*map(_copy, value)) if hasattr(value, "_fields") else tuple(map(_copy, value))
    if isinstance(value, dict):
        return type(value)((_copy(k), _copy(v)) for k, v in value.items())
    if isinstance(value, list):
        return type(value)(_copy(v) for v in value)
    return deepcopy(value)


def _stage_to_dict(stage: Stage) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for name in _STAGE_FIELDS:
        value = getattr(stage, name)
        if name == "env":
            data[name] = [{n: _copy(getattr(e, n)) for n in _ENV_FIELDS} for e in value]
        elif name == "retry":
            data[name] = None if value is None else {"count": value.count, "until": value.until}
        else:
            data[name] = _copy(value)
    return data


def _container_to_dict(container: Container) -> dict[str, Any]:
    data = {name: _copy(getattr(container, name)) for name in _CONTAINER_FIELDS}
    data["actions"] = [{"op": a.op, "ref": a.ref} for a in container.actions]
    return data


def _stage_from_dict(data: dict[str, Any]) -> Stage:
    data = dict(data)
    data["env"] = [EnvVar(**e) for e in data.get("env", [])]
    retry = data.get("retry")
    data["retry"] = Retry(**retry) if retry else None
    return _build(Stage, data)


def _container_from_dict(data: dict[str, Any]) -> Container:
    data = dict(data)
    data["actions"] = [Action(**a) for a in data.get("actions", [])]
    return _build(Container, data)


_T = TypeVar("_T")


_FIELD_NAMES: dict[type[Any], frozenset[str]] = {}


def _field_names(cls: type[Any]) -> frozenset[str]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = frozenset(f.name for f in fields(cls))
    return names


def _build(cls: type[_T], data: dict[str, Any]) -> _T:
    unknown = set(data) - _field_names(cls)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown fields {sorted(unknown)}")
    return cls(**data)

"""Execution events and the one set of status rules every runtime, the agent and the server share.

An execution is described by seq-numbered ``ExecutionEvent``s. ``ExecutionState`` applies them in seq
order through one transition table and derives step, group and execution statuses and the
Testkube-shaped result (reference §5). Pure: no I/O, no clock — every timestamp comes from an event or
an argument.
"""

from __future__ import annotations

import enum
import functools
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Final, Literal, get_args

from shoal.workflow._expressions import Expression, ExpressionError, Machine, compile_expression, is_truthy
from shoal.workflow._plan import Plan, SignatureNode

# ---------------------------------------------------------------------------------------------- enums


class StepStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    PASSED = "passed"
    FAILED = "failed"
    TIMEOUT = "timeout"
    SKIPPED = "skipped"
    ABORTED = "aborted"
    CANCELED = "canceled"

    @property
    def is_finished(self) -> bool:
        return self not in _UNFINISHED_STEP

    @property
    def is_success(self) -> bool:
        """What a ref evaluates to in a result expression once finished: skipped counts as success."""
        return self in (StepStatus.PASSED, StepStatus.SKIPPED)


_UNFINISHED_STEP: Final = frozenset({StepStatus.QUEUED, StepStatus.RUNNING, StepStatus.PAUSED})


class ExecutionStatus(enum.StrEnum):
    QUEUED = "queued"
    ASSIGNED = "assigned"
    STARTING = "starting"
    SCHEDULING = "scheduling"
    RUNNING = "running"
    PAUSING = "pausing"
    PAUSED = "paused"
    RESUMING = "resuming"
    STOPPING = "stopping"
    PASSED = "passed"
    FAILED = "failed"
    ABORTED = "aborted"
    CANCELED = "canceled"

    @property
    def is_finished(self) -> bool:
        return self in _TERMINAL_EXECUTION


_TERMINAL_EXECUTION: Final = frozenset(
    {ExecutionStatus.PASSED, ExecutionStatus.FAILED, ExecutionStatus.ABORTED, ExecutionStatus.CANCELED}
)

# Lifecycle phases before the steps run, in the only order they may follow each other.
_PRE_RUN_ORDER: Final = (
    ExecutionStatus.QUEUED,
    ExecutionStatus.ASSIGNED,
    ExecutionStatus.STARTING,
    ExecutionStatus.SCHEDULING,
    ExecutionStatus.RUNNING,
)

# ------------------------------------------------------------------------------ the transition table


def step_transition(current: StepStatus | None, requested: StepStatus) -> bool:
    """Whether a step in ``current`` (None: nothing known yet) may move to ``requested``.

    A finished step never changes. Anything unfinished may finish (an ``end`` without a ``start`` is
    fine); a running step may report ``running`` again (the next retry attempt); ``paused`` and
    ``running`` alternate; nothing goes back to ``queued`` once it started.
    """
    if current is None or current is StepStatus.QUEUED:
        return True
    if current.is_finished:
        return False
    return requested is not StepStatus.QUEUED


def execution_transition(current: ExecutionStatus, requested: ExecutionStatus) -> bool:
    """Whether the execution's lifecycle phase may move from ``current`` to ``requested``.

    Terminal statuses never change. Before running, phases only move forward (queued → assigned →
    starting → scheduling → running), except that an assigned execution may be queued again when its
    agent goes away before starting it. Once running it moves freely between running, pausing, paused,
    resuming and stopping, and any unfinished phase may end.
    """
    if current.is_finished:
        return False
    if requested is current or requested.is_finished or requested is ExecutionStatus.STOPPING:
        return True
    if current is ExecutionStatus.ASSIGNED and requested is ExecutionStatus.QUEUED:
        return True
    if current in _PRE_RUN_ORDER and requested in _PRE_RUN_ORDER:
        return _PRE_RUN_ORDER.index(requested) > _PRE_RUN_ORDER.index(current)
    if current is ExecutionStatus.STOPPING:
        return False
    if requested in _PRE_RUN_ORDER:  # from pausing / paused / resuming: only back to running
        return requested is ExecutionStatus.RUNNING
    # pausing / paused / resuming: reachable from running or one another, and from the pre-run phases
    # when a pause is requested before the steps start.
    return True


# -------------------------------------------------------------------------------------------- events

EventType = Literal["log", "step", "output", "status", "artifact", "report", "initialization"]
EVENT_TYPES: Final[frozenset[str]] = frozenset(get_args(EventType))

INIT_REF: Final = "tktw-init"  # the pseudo ref of the initialization phase (reference §4.5)


@dataclass(frozen=True)
class ExecutionEvent:
    """One thing that happened in an execution; ``seq`` is 1, 2, 3, … per execution.

    ``type`` decides which payload fields mean something:

    * ``log``: ``line`` (one line, no newline), ``ref`` = the step running when it was printed.
    * ``step``: ``ref``; ``status`` = the step's new status (``running`` for start/resume/next attempt,
      ``paused``, or a finished status), or None for a pure update of ``exit_code``/``details``/``iteration``.
    * ``initialization``: the init phase, same fields as ``step`` (``details`` = error message).
    * ``output``: ``ref``, ``outputs`` (a dict merged into that step's outputs).
    * ``artifact``: ``ref``, ``artifact`` = ``{"name": str, "size": int}``.
    * ``report``: ``ref``, ``report`` = ``{"kind", "file", "summary"}``.
    * ``status``: an execution-level change: ``status`` is an ``ExecutionStatus`` (queued → … → running,
      paused/resuming, stopping, aborted/canceled with ``details`` = the reason, passed/failed = the
      runtime saw the execution end), ``details`` optional.
    """

    seq: int
    ts: int  # epoch milliseconds
    type: EventType
    ref: str | None = None
    line: str | None = None
    status: str | None = None
    exit_code: int | None = None
    details: str | None = None
    iteration: int | None = None
    outputs: dict[str, Any] | None = None
    artifact: dict[str, Any] | None = None
    report: dict[str, Any] | None = None

    def __hash__(self) -> int:
        # The payload may hold dicts; equal events still hash equal on these fields.
        return hash((self.seq, self.ts, self.type, self.ref))

    def __post_init__(self) -> None:
        if self.type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {self.type!r}")
        if self.seq < 1:
            raise ValueError(f"event seq must be >= 1, got {self.seq}")

    @classmethod
    def log(cls, seq: int, ts: int, ref: str | None, line: str) -> ExecutionEvent:
        """A log event, built without the dataclass ``__init__`` because parsers make millions of them."""
        event = _new_event(cls)
        state = event.__dict__
        state["seq"] = seq
        state["ts"] = ts
        state["type"] = "log"
        state["ref"] = ref
        state["line"] = line
        return event

    @classmethod
    def unchecked(cls, seq: int, ts: int, type: EventType, **payload: Any) -> ExecutionEvent:
        """An event built without ``__init__`` or validation, for producers whose fields are known good
        (the marker parser); equal to the one ``__init__`` would build."""
        event = _new_event(cls)
        event.__dict__.update(payload, seq=seq, ts=ts, type=type)
        return event

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; fields left at None are omitted."""
        out: dict[str, Any] = {"seq": self.seq, "ts": self.ts, "type": self.type}
        for name in _PAYLOAD_FIELDS:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExecutionEvent:
        unknown = set(data) - _ALL_FIELDS
        if unknown:
            raise ValueError(f"ExecutionEvent: unknown fields {sorted(unknown)}")
        return cls(**data)


_new_event = object.__new__
_ALL_FIELDS: Final = frozenset(f.name for f in fields(ExecutionEvent))
_PAYLOAD_FIELDS: Final = tuple(f.name for f in fields(ExecutionEvent) if f.name not in ("seq", "ts", "type"))

# ------------------------------------------------------------------------------------- status tree


@dataclass(frozen=True, slots=True)
class StatusNode:
    """A node of the tree statuses are derived over (a Plan stage or a signature node)."""

    ref: str
    parent: str | None
    children: tuple[str, ...] = ()
    optional: bool = False
    negative: bool = False
    result: str | None = None  # groups: expression over child refs deciding passed/failed
    is_group: bool = False

    def result_expression(self, tree: StatusTree) -> str:
        """The group's result expression; the one the compiler would emit when none is stored."""
        if self.result is not None:
            return self.result
        required = [c for c in self.children if not tree.nodes[c].optional]
        if self.negative:
            return "||".join(f"!{c}" for c in required) if required else "false"
        return "&&".join(required) if required else "true"


@dataclass(frozen=True, slots=True)
class StatusTree:
    """The shape statuses are derived over.

    ``nodes`` holds every known ref (Plan stages, including virtual groups, or signature nodes) plus
    the root; ``sequence`` lists the signature nodes depth-first, parents before children (the order
    Testkube calls the signature sequence); ``leaves`` are the signature nodes without children.
    """

    root: str
    nodes: Mapping[str, StatusNode]
    sequence: tuple[str, ...]
    leaves: tuple[str, ...]
    signature_children: Mapping[str, tuple[str, ...]]
    optional: frozenset[str] = field(default_factory=frozenset)  # signature nodes marked optional

    @classmethod
    def from_plan(cls, plan: Plan) -> StatusTree:
        nodes: dict[str, StatusNode] = {}
        for stage in plan.stages.values():
            nodes[stage.ref] = StatusNode(
                ref=stage.ref,
                parent=stage.parent,
                children=tuple(stage.children),
                optional=stage.optional,
                negative=stage.negative,
                result=stage.result,
                is_group=stage.kind == "group",
            )
        return cls._with_signature(plan.root, nodes, plan.signature)

    @classmethod
    def from_signature(cls, signature: Sequence[SignatureNode], root: str = "") -> StatusTree:
        """A tree from the signature alone (virtual groups already lifted, which changes no status)."""
        nodes: dict[str, StatusNode] = {}

        def add(node: SignatureNode, parent: str) -> None:
            nodes[node.ref] = StatusNode(
                ref=node.ref,
                parent=parent,
                children=tuple(c.ref for c in node.children),
                optional=node.optional,
                negative=node.negative,
                is_group=bool(node.children),
            )
            for child in node.children:
                add(child, node.ref)

        for top in signature:
            add(top, root)
        nodes[root] = StatusNode(
            ref=root, parent=None, children=tuple(n.ref for n in signature), is_group=True
        )
        return cls._with_signature(root, nodes, signature)

    @classmethod
    def _with_signature(
        cls, root: str, nodes: dict[str, StatusNode], signature: Sequence[SignatureNode]
    ) -> StatusTree:
        sequence: list[str] = []
        leaves: list[str] = []
        sig_children: dict[str, tuple[str, ...]] = {}
        optional: set[str] = set()

        def walk(node: SignatureNode) -> None:
            sequence.append(node.ref)
            sig_children[node.ref] = tuple(c.ref for c in node.children)
            if node.optional:
                optional.add(node.ref)
            if not node.children:
                leaves.append(node.ref)
            for child in node.children:
                walk(child)
            if node.ref not in nodes:  # a signature node the plan does not know: keep it derivable
                nodes[node.ref] = StatusNode(
                    ref=node.ref,
                    parent=None,
                    children=tuple(c.ref for c in node.children),
                    optional=node.optional,
                    negative=node.negative,
                    is_group=bool(node.children),
                )

        for top in signature:
            walk(top)
        if root not in nodes:
            nodes[root] = StatusNode(
                ref=root, parent=None, children=tuple(n.ref for n in signature), is_group=True
            )
        return cls(
            root=root,
            nodes=nodes,
            sequence=tuple(sequence),
            leaves=tuple(leaves),
            signature_children=sig_children,
            optional=frozenset(optional),
        )

    def ancestors(self, ref: str) -> Iterator[str]:
        node = self.nodes.get(ref)
        seen = 0
        while node is not None and node.parent is not None and seen < len(self.nodes):
            seen += 1
            yield node.parent
            node = self.nodes.get(node.parent)


# ----------------------------------------------------------------------------- result expressions


def evaluate_result(expression: str, values: Mapping[str, bool]) -> bool:
    """Evaluate a group result expression; ``values`` maps refs to whether they count as success, and a
    ref missing from it counts as true (not finished yet).

    The compiler's own forms (``a&&b&&…``, ``!a||!b||…``, ``true``, ``false``) are evaluated directly:
    a group of hundreds of steps would otherwise exceed the expression engine's nesting limit. Anything
    else goes through the engine."""
    fast = _flat_result(expression, values)
    if fast is not None:
        return fast
    machine = Machine(variables=values, fallback=_unfinished_ref)
    try:
        return is_truthy(_compiled(expression or "true").resolve(machine, final=True).value())
    except ExpressionError as error:
        raise ValueError(f"result expression {expression!r}: {error}") from error


_REF_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _flat_result(expression: str, values: Mapping[str, bool]) -> bool | None:
    text = expression.strip() or "true"
    if text in ("true", "false"):
        return text == "true"
    if "(" in text or ")" in text:
        return None
    if "||" not in text:
        refs = [r.strip() for r in text.split("&&")]
        if all(_REF_NAME.fullmatch(r) for r in refs):
            return all(values.get(r, True) for r in refs)
    elif "&&" not in text:
        terms = [t.strip() for t in text.split("||")]
        if all(t.startswith("!") and _REF_NAME.fullmatch(t[1:].strip()) for t in terms):
            return any(not values.get(t[1:].strip(), True) for t in terms)
    return None


def _unfinished_ref(name: str) -> tuple[Any, bool]:
    return True, True


@functools.lru_cache(maxsize=4096)
def _compiled(expression: str) -> Expression:
    return compile_expression(expression)


# ------------------------------------------------------------------------------------------ results


def format_timestamp(ms: int | None) -> str | None:
    """RFC3339 with milliseconds, UTC (``2024-05-01T10:00:00.123Z``)."""
    if ms is None:
        return None
    seconds, millis = divmod(ms, 1000)
    t = time.gmtime(seconds)
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
        f".{millis:03d}Z"
    )


def parse_timestamp(text: str) -> int:
    """Epoch ms from an RFC3339 timestamp (any fraction precision, ``Z`` or an offset)."""
    match = re.fullmatch(
        r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:?\d{2})?", text.strip()
    )
    if match is None:
        raise ValueError(f"not an RFC3339 timestamp: {text!r}")
    day, clock, fraction, zone = match.groups()
    offset = "+00:00" if zone in (None, "Z", "z") else zone
    if len(offset) == 5:
        offset = offset[:3] + ":" + offset[3:]
    base = datetime.fromisoformat(f"{day}T{clock}{offset}")
    millis = int((fraction or "0")[:3].ljust(3, "0"))
    return int(base.timestamp()) * 1000 + millis


def format_duration(ms: int) -> str:
    """A millisecond duration the way Go's ``time.Duration.String`` prints it (``1m2.5s``, ``350ms``)."""
    if ms <= 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    text = f"{seconds}.{millis:03d}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    if minutes:
        return f"{minutes}m{text}"
    return text


@dataclass(slots=True)
class StepResult:
    """One step's (or the initialization's) result, shaped like Testkube's TestWorkflowStepResult."""

    status: StepStatus = StepStatus.QUEUED
    exit_code: int | None = None
    error_message: str = ""
    queued_at: int | None = None
    started_at: int | None = None
    finished_at: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status.value}
        if self.exit_code is not None:
            out["exitCode"] = self.exit_code
        if self.error_message:
            out["errorMessage"] = self.error_message
        for key, value in (
            ("queuedAt", self.queued_at),
            ("startedAt", self.started_at),
            ("finishedAt", self.finished_at),
        ):
            if value is not None:
                out[key] = format_timestamp(value)
        return out


@dataclass(slots=True)
class Pause:
    ref: str
    paused_at: int
    resumed_at: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ref": self.ref, "pausedAt": format_timestamp(self.paused_at)}
        if self.resumed_at is not None:
            out["resumedAt"] = format_timestamp(self.resumed_at)
        return out


@dataclass(slots=True)
class ExecutionResult:
    """The execution's result, shaped like Testkube's TestWorkflowResult (reference §5.2)."""

    status: ExecutionStatus
    predicted_status: ExecutionStatus
    queued_at: int | None
    started_at: int | None
    finished_at: int | None
    duration_ms: int
    paused_ms: int
    total_duration_ms: int
    pauses: list[Pause]
    initialization: StepResult
    steps: dict[str, StepResult]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "status": self.status.value,
            "predictedStatus": self.predicted_status.value,
        }
        for key, value in (
            ("queuedAt", self.queued_at),
            ("startedAt", self.started_at),
            ("finishedAt", self.finished_at),
        ):
            if value is not None:
                out[key] = format_timestamp(value)
        if self.finished_at is not None:
            out["duration"] = format_duration(self.duration_ms)
            out["totalDuration"] = format_duration(self.total_duration_ms)
            out["durationMs"] = self.duration_ms
            out["pausedMs"] = self.paused_ms
            out["totalDurationMs"] = self.total_duration_ms
        if self.pauses:
            out["pauses"] = [p.to_dict() for p in self.pauses]
        out["initialization"] = self.initialization.to_dict()
        out["steps"] = {ref: step.to_dict() for ref, step in self.steps.items()}
        return out


# ------------------------------------------------------------------------------------------ state


class ApplyOutcome(enum.Enum):
    APPLIED = "applied"  # in order and it changed (or confirmed) something
    IGNORED = "ignored"  # in order, consumed, but the transition table refused it (e.g. a finished step)
    DUPLICATE = "duplicate"  # its seq was applied (or is waiting) already
    BUFFERED = "buffered"  # it arrived after a gap; applied once the missing seqs arrive


ABORTED_MESSAGE: Final = "The execution has been {code}."
ABORTED_BEFORE_MESSAGE: Final = "The execution was {code} before."
VANISHED_REASON: Final = "the runner stopped reporting"
ENDED_EARLY_REASON: Final = "the execution ended before the step reported its end"
FATAL_WITHOUT_DETAILS: Final = "fatal error without details"


@dataclass(slots=True)
class _Step:
    status: StepStatus | None = None
    exit_code: int | None = None
    error_message: str = ""
    started_at: int | None = None
    finished_at: int | None = None
    iteration: int = 0
    by_termination: bool = False  # skipped/aborted by an abort, cancel or vanished runner

    @property
    def is_finished(self) -> bool:
        return self.status is not None and self.status.is_finished


@dataclass(slots=True)
class Artifact:
    ref: str | None
    name: str
    size: int


@dataclass(slots=True)
class Report:
    ref: str | None
    kind: str
    file: str
    summary: dict[str, Any]


class ExecutionState:
    """Applies one execution's events in seq order and derives every status from them.

    Idempotent: an event whose seq was seen is reported as ``DUPLICATE`` and changes nothing. An event
    after a gap is held back (``BUFFERED``) until the gap fills; ``gaps`` lists the missing seqs and
    ``accept_gaps`` gives up on them. The same transitions are reachable as methods (``abort``,
    ``fail_initialization``, ``finalize_vanished``, ``mark_paused``, ``mark_resumed``) for callers that
    decide them outside the event stream; the ``status`` events call these very methods.
    """

    def __init__(self, tree: StatusTree) -> None:
        self.tree = tree
        self.last_seq = 0
        self._pending: dict[int, ExecutionEvent] = {}
        self._steps: dict[str, _Step] = {}
        self._init = _Step()
        self._phase = ExecutionStatus.QUEUED
        self._queued_at: int | None = None
        self._started_at: int | None = None
        self._finished_at: int | None = None
        self._termination: ExecutionStatus | None = None  # aborted/canceled, once terminated
        self._fatal = False
        self._pauses: list[Pause] = []
        self.outputs: dict[str, dict[str, Any]] = {}
        self.artifacts: list[Artifact] = []
        self.reports: list[Report] = []
        self.log_lines = 0
        self.ignored = 0

    @classmethod
    def for_plan(cls, plan: Plan) -> ExecutionState:
        return cls(StatusTree.from_plan(plan))

    @classmethod
    def for_signature(cls, signature: Sequence[SignatureNode], root: str = "") -> ExecutionState:
        return cls(StatusTree.from_signature(signature, root))

    # ------------------------------------------------------------------ applying events

    @property
    def next_seq(self) -> int:
        return self.last_seq + 1

    @property
    def gaps(self) -> list[tuple[int, int]]:
        """Missing seq ranges (inclusive) before the events held back."""
        out: list[tuple[int, int]] = []
        expected = self.last_seq + 1
        for seq in sorted(self._pending):
            if seq > expected:
                out.append((expected, seq - 1))
            expected = seq + 1
        return out

    def apply(self, event: ExecutionEvent) -> ApplyOutcome:
        if event.seq <= self.last_seq or event.seq in self._pending:
            return ApplyOutcome.DUPLICATE
        if event.seq > self.last_seq + 1:
            self._pending[event.seq] = event
            return ApplyOutcome.BUFFERED
        outcome = self._apply_now(event)
        self._drain()
        return outcome

    def apply_all(self, events: Iterable[ExecutionEvent]) -> list[ApplyOutcome]:
        return [self.apply(e) for e in events]

    def accept_gaps(self) -> None:
        """Apply the held-back events as if the missing seqs never existed."""
        while self._pending:
            seq = min(self._pending)
            self.last_seq = seq - 1
            self._drain()

    def _drain(self) -> None:
        while self.last_seq + 1 in self._pending:
            self._apply_now(self._pending.pop(self.last_seq + 1))

    def _apply_now(self, event: ExecutionEvent) -> ApplyOutcome:
        self.last_seq = event.seq
        kind = event.type
        if kind == "log":
            self.log_lines += 1
            return ApplyOutcome.APPLIED
        if kind == "step":
            return self._count(self._apply_step(event))
        if kind == "initialization":
            return self._count(self._apply_initialization(event))
        if kind == "status":
            return self._count(self._apply_status(event))
        if kind == "output":
            if event.outputs:
                self.outputs.setdefault(event.ref or "", {}).update(event.outputs)
            return ApplyOutcome.APPLIED
        if kind == "artifact":
            data = event.artifact or {}
            self.artifacts.append(
                Artifact(ref=event.ref, name=str(data.get("name", "")), size=int(data.get("size", 0)))
            )
            return ApplyOutcome.APPLIED
        data = event.report or {}
        self.reports.append(
            Report(
                ref=event.ref,
                kind=str(data.get("kind", "")),
                file=str(data.get("file", "")),
                summary=dict(data.get("summary") or {}),
            )
        )
        return ApplyOutcome.APPLIED

    def _count(self, applied: bool) -> ApplyOutcome:
        if applied:
            return ApplyOutcome.APPLIED
        self.ignored += 1
        return ApplyOutcome.IGNORED

    # ------------------------------------------------------------------ step transitions

    def _step(self, ref: str) -> _Step:
        step = self._steps.get(ref)
        if step is None:
            step = self._steps[ref] = _Step()
        return step

    def _apply_step(self, event: ExecutionEvent) -> bool:
        ref = event.ref
        if ref is None:
            return False
        if ref == INIT_REF:
            return self._apply_initialization(event)
        if self._finished_at is not None:
            return False
        step = self._step(ref)
        requested = _step_status(event.status)
        if requested is None:
            if event.status is not None:
                return False  # a status this version does not know
            if step.is_finished:
                return _fill_info(step, event)
            _update_info(step, event)
            return True
        if not step_transition(step.status, requested):
            return False
        self._mark_started(event.ts)
        if self._init.status is None or self._init.status is StepStatus.RUNNING:
            # Steps only run after a successful initialization, even when nobody reported its end.
            self._finish_initialization_implicitly(event.ts)
        _update_info(step, event)
        if requested is StepStatus.RUNNING:
            if step.status is StepStatus.PAUSED:
                self._close_pause(ref, event.ts)
            if self._phase in (ExecutionStatus.PAUSING, ExecutionStatus.PAUSED, ExecutionStatus.RESUMING):
                self._phase = ExecutionStatus.RUNNING  # a step runs again: the execution was resumed
            if step.started_at is None:
                step.started_at = event.ts
            step.status = StepStatus.RUNNING
            self._start_ancestors(ref, event.ts)
        elif requested is StepStatus.PAUSED:
            if step.status is not StepStatus.PAUSED:
                self._pauses.append(Pause(ref=ref, paused_at=event.ts))
            if step.started_at is None:
                step.started_at = event.ts
            step.status = StepStatus.PAUSED
            self._start_ancestors(ref, event.ts)
        elif requested is StepStatus.QUEUED:
            step.status = StepStatus.QUEUED
        else:
            if step.status is StepStatus.PAUSED:
                self._close_pause(ref, event.ts)
            step.status = requested
            step.finished_at = event.ts
            if step.started_at is None and requested is not StepStatus.SKIPPED:
                self._start_ancestors(ref, event.ts)
            if ref == self.tree.root:
                self._finish(event.ts, ENDED_EARLY_REASON)
        return True

    def _start_ancestors(self, ref: str, ts: int) -> None:
        for parent in self.tree.ancestors(ref):
            step = self._step(parent)
            if step.status is None or step.status is StepStatus.QUEUED:
                step.status = StepStatus.RUNNING
            if step.started_at is None:
                step.started_at = ts

    def _close_pause(self, ref: str, ts: int) -> None:
        for pause in self._pauses:
            if pause.ref == ref and pause.resumed_at is None:
                pause.resumed_at = ts

    def _mark_started(self, ts: int) -> None:
        if self._started_at is None:
            self._started_at = ts
        if self._queued_at is None:
            self._queued_at = ts

    # ------------------------------------------------------------------ initialization

    def _apply_initialization(self, event: ExecutionEvent) -> bool:
        requested = _step_status(event.status)
        init = self._init
        if requested is None:
            if event.status is not None:
                return False
            if init.is_finished:
                return _fill_info(init, event)
            _update_info(init, event)
            return True
        if not step_transition(init.status, requested):
            return False
        self._mark_started(event.ts)
        if requested in (StepStatus.RUNNING, StepStatus.PAUSED, StepStatus.QUEUED):
            init.status = requested
            if requested is not StepStatus.QUEUED and init.started_at is None:
                init.started_at = event.ts
            _update_info(init, event)
            return True
        if requested.is_success:
            init.status = requested
            init.finished_at = event.ts
            if init.started_at is None:
                init.started_at = event.ts
            _update_info(init, event)
            return True
        if requested in (StepStatus.ABORTED, StepStatus.CANCELED):
            self.abort(event.ts, event.details or "", canceled=requested is StepStatus.CANCELED)
            return True
        self.fail_initialization(event.ts, event.details or "", exit_code=event.exit_code)
        if requested is StepStatus.TIMEOUT:
            init.status = StepStatus.TIMEOUT
        return True

    def _finish_initialization_implicitly(self, ts: int) -> None:
        init = self._init
        if init.started_at is None:
            init.started_at = ts
        init.status = StepStatus.PASSED
        init.finished_at = ts

    def fail_initialization(
        self, ts: int, message: str, *, aborted: bool = False, exit_code: int | None = None
    ) -> None:
        """A fatal error before or while starting (bad config, missing template, pod error).

        The execution fails (or is aborted), the initialization carries the message, steps that never
        started are skipped and the ones that were running fail (or are aborted).
        """
        if self._finished_at is not None:
            return
        self._mark_started(ts)
        init = self._init
        init.error_message = message or init.error_message or FATAL_WITHOUT_DETAILS
        if exit_code is not None:
            init.exit_code = exit_code
        if not init.is_finished:
            init.status = StepStatus.ABORTED if aborted else StepStatus.FAILED
            init.finished_at = ts
            if init.started_at is None:
                init.started_at = ts
        interrupted = StepStatus.ABORTED if aborted else StepStatus.FAILED
        for ref in self._known_refs():
            step = self._step(ref)
            if step.status is None or step.status is StepStatus.QUEUED:
                step.status = StepStatus.SKIPPED
                step.by_termination = True
            elif not step.is_finished:
                if step.status is StepStatus.PAUSED:
                    self._close_pause(ref, ts)
                step.status = interrupted
                step.finished_at = ts
        self._fatal = True
        if aborted:
            self._termination = ExecutionStatus.ABORTED
        self._finished_at = ts

    # ------------------------------------------------------------------ execution-level status

    def _apply_status(self, event: ExecutionEvent) -> bool:
        if event.status is None:
            return False
        try:
            requested = ExecutionStatus(event.status)
        except ValueError:
            return False
        if self._finished_at is not None:
            return False
        if requested in (ExecutionStatus.ABORTED, ExecutionStatus.CANCELED):
            self.abort(event.ts, event.details or "", canceled=requested is ExecutionStatus.CANCELED)
            return True
        if requested.is_finished:
            # The runtime saw the end; what it thinks the status is does not matter, the steps decide.
            if requested is ExecutionStatus.FAILED and event.details and not self._init.is_finished:
                self.fail_initialization(event.ts, event.details)
                return True
            self._mark_started(event.ts)
            self._finish(event.ts, event.details or ENDED_EARLY_REASON)
            return True
        if not execution_transition(self._phase, requested):
            return False
        if requested is ExecutionStatus.QUEUED and self._queued_at is None:
            self._queued_at = event.ts
        if self._queued_at is None:
            self._queued_at = event.ts
        if requested is ExecutionStatus.PAUSED:
            self.mark_paused(event.ts)
        elif requested in (ExecutionStatus.RUNNING, ExecutionStatus.RESUMING) and self._phase in (
            ExecutionStatus.PAUSED,
            ExecutionStatus.PAUSING,
        ):
            self.mark_resumed(event.ts)
        if requested is ExecutionStatus.RUNNING and self._started_at is None:
            self._started_at = event.ts
        self._phase = requested
        return True

    def mark_paused(self, ts: int) -> None:
        """Pause the execution: every running leaf step becomes paused (a pause interval opens)."""
        if self._finished_at is not None:
            return
        for ref in self._known_refs():
            node = self.tree.nodes.get(ref)
            step = self._steps.get(ref)
            if step is None or (node is not None and node.is_group and node.children):
                continue
            if step.status is StepStatus.RUNNING:
                step.status = StepStatus.PAUSED
                self._pauses.append(Pause(ref=ref, paused_at=ts))
        self._phase = ExecutionStatus.PAUSED

    def mark_resumed(self, ts: int) -> None:
        """Resume a paused execution: paused steps run again and their pause intervals close."""
        if self._finished_at is not None:
            return
        for ref, step in self._steps.items():
            if step.status is StepStatus.PAUSED:
                step.status = StepStatus.RUNNING
                self._close_pause(ref, ts)
        self._phase = ExecutionStatus.RUNNING

    # ------------------------------------------------------------------ termination

    def abort(self, ts: int, reason: str = "", *, canceled: bool = False) -> None:
        """Abort (or cancel) the execution now.

        The first unfinished step becomes aborted/canceled ("The execution has been aborted."), later
        unfinished steps skipped ("The execution was aborted before."), unfinished groups follow their
        children. When the initialization had not finished it takes the first place.
        """
        if self._finished_at is not None:
            return
        self._mark_started(ts)
        code = ExecutionStatus.CANCELED if canceled else ExecutionStatus.ABORTED
        self._terminate(ts, code, reason)
        self._termination = code
        self._finished_at = ts

    def finalize_vanished(self, ts: int, reason: str = VANISHED_REASON) -> None:
        """The runner went away for good: everything unfinished is aborted (first) or skipped (later)."""
        self.abort(ts, reason)

    def _finish(self, ts: int, reason: str) -> None:
        """The execution ended; steps that never reported their end are terminated as an abort would."""
        if self._finished_at is not None:
            return
        if any(not self._derived(ref).is_finished for ref in self.tree.leaves):
            self._terminate(ts, ExecutionStatus.ABORTED, reason)
            self._termination = ExecutionStatus.ABORTED
        elif not self._init.is_finished:
            self._finish_initialization_implicitly(self._init.started_at or ts)
        for ref, step in self._steps.items():
            if not step.is_finished and ref in self.tree.nodes:
                step.status = self._derived(ref)
                if step.status.is_finished and step.finished_at is None:
                    step.finished_at = ts
        self._finished_at = ts

    def _terminate(self, ts: int, code: ExecutionStatus, reason: str) -> None:
        step_code = StepStatus(code.value)
        stopped = False
        suffix = f" ({reason})" if reason else ""
        init = self._init
        if not init.is_finished:
            init.status = step_code
            init.finished_at = ts
            init.started_at = init.started_at or ts
            init.error_message = ABORTED_MESSAGE.format(code=code.value) + suffix
            init.by_termination = True
            stopped = True
        for ref in self.tree.leaves:
            step = self._step(ref)
            if step.is_finished:
                continue
            if step.status is StepStatus.PAUSED:
                self._close_pause(ref, ts)
            if stopped:
                step.status = StepStatus.SKIPPED
                step.error_message = ABORTED_BEFORE_MESSAGE.format(code=code.value) + suffix
            else:
                step.status = step_code
                step.error_message = ABORTED_MESSAGE.format(code=code.value) + suffix
                stopped = True
            step.finished_at = ts
            step.by_termination = True
        # Groups, innermost first (reverse of the parents-first sequence), then the non-signature ones.
        order = [r for r in reversed(self.tree.sequence) if self.tree.signature_children.get(r)]
        rest = [r for r in self._known_refs() if r not in self.tree.signature_children]
        order += sorted(rest, key=lambda r: -sum(1 for _ in self.tree.ancestors(r)))
        for ref in order:
            step = self._step(ref)
            if step.is_finished:
                continue
            children = self.tree.signature_children.get(ref) or self._children(ref)
            statuses = [self._derived(c) for c in children]
            if (
                ref in self.tree.signature_children
                and children
                and all(s is StepStatus.SKIPPED for s in statuses)
            ):
                step.status = StepStatus.SKIPPED
            elif any(s is StepStatus.ABORTED for s in statuses):
                step.status = StepStatus.ABORTED
            elif any(s is StepStatus.CANCELED for s in statuses):
                step.status = StepStatus.CANCELED
            elif any(self._steps.get(c, _Step()).by_termination for c in children):
                step.status = step_code
            elif all(s.is_finished for s in statuses) and children:
                step.status = self._derived(ref)
            else:
                step.status = step_code
                step.error_message = ABORTED_MESSAGE.format(code=code.value) + suffix
            step.finished_at = ts
            step.by_termination = True

    # ------------------------------------------------------------------ derivation

    def _children(self, ref: str) -> tuple[str, ...]:
        node = self.tree.nodes.get(ref)
        return node.children if node is not None else ()

    def _known_refs(self) -> list[str]:
        refs = [r for r in self.tree.nodes if r != self.tree.root]
        refs += [r for r in self._steps if r not in self.tree.nodes]
        return refs

    def _derived(self, ref: str) -> StepStatus:
        """A step's status: the reported one, else (groups) derived from the children."""
        step = self._steps.get(ref)
        if step is not None and step.status is not None and step.status.is_finished:
            return step.status
        node = self.tree.nodes.get(ref)
        children = node.children if node is not None else ()
        if node is not None and node.is_group and children:
            statuses = [self._derived(c) for c in children]
            if all(s.is_finished for s in statuses):
                # Until the group's own end arrives; the init program's end wins (e.g. the group's timeout).
                if StepStatus.ABORTED in statuses:
                    return StepStatus.ABORTED
                if StepStatus.CANCELED in statuses:
                    return StepStatus.CANCELED
                values = {c: s.is_success for c, s in zip(children, statuses, strict=True)}
                passed = evaluate_result(node.result_expression(self.tree), values)
                return StepStatus.PASSED if passed else StepStatus.FAILED
            if any(s is StepStatus.PAUSED for s in statuses):
                return StepStatus.PAUSED
            if step is None or step.status in (None, StepStatus.QUEUED):
                started = any(s is not StepStatus.QUEUED for s in statuses)
                return StepStatus.RUNNING if started else StepStatus.QUEUED
        if step is None or step.status is None:
            return StepStatus.QUEUED
        return step.status

    def step_status(self, ref: str) -> StepStatus:
        """The step's status: as reported, else (groups) derived from the children."""
        return self._derived(ref)

    def running_refs(self) -> list[str]:
        """The stages that started and have not ended, outermost first (the root included), following
        the running child at each level: where a resumed marker parser picks up."""
        chain: list[str] = []
        ref: str | None = self.tree.root
        while ref is not None:
            step = self._steps.get(ref)
            if step is None or step.status not in (StepStatus.RUNNING, StepStatus.PAUSED):
                break
            chain.append(ref)
            ref = next(
                (
                    child
                    for child in self._children(ref)
                    if (s := self._steps.get(child)) is not None
                    and s.status in (StepStatus.RUNNING, StepStatus.PAUSED)
                ),
                None,
            )
        return chain

    def reported_status(self, ref: str) -> StepStatus | None:
        """The status an event (or a termination) gave the step, None when nothing did."""
        step = self._steps.get(ref)
        return step.status if step is not None else None

    @property
    def initialization_status(self) -> StepStatus:
        return self._init.status or StepStatus.QUEUED

    @property
    def is_finished(self) -> bool:
        return self._finished_at is not None

    def root_passed(self) -> bool:
        """The root group's result expression over its children's statuses (unfinished = true)."""
        root = self.tree.nodes[self.tree.root]
        values = {c: _ref_value(self._derived(c)) for c in root.children}
        return evaluate_result(root.result_expression(self.tree), values)

    def _all_statuses(self) -> Iterator[StepStatus]:
        for ref in self.tree.sequence:
            yield self._derived(ref)

    def final_status(self) -> ExecutionStatus:
        """The status the execution ends with (shoal's rule): abort/cancel and initialization failures
        first, then the root group's result expression over the step statuses."""
        statuses = list(self._all_statuses())
        init = self._init.status
        if init is StepStatus.CANCELED or StepStatus.CANCELED in statuses:
            return ExecutionStatus.CANCELED
        if self._termination is ExecutionStatus.CANCELED:
            return ExecutionStatus.CANCELED
        if init in (StepStatus.ABORTED, StepStatus.TIMEOUT) or StepStatus.ABORTED in statuses:
            return ExecutionStatus.ABORTED
        if self._termination is ExecutionStatus.ABORTED:
            return ExecutionStatus.ABORTED
        if init is StepStatus.FAILED or self._fatal:
            return ExecutionStatus.FAILED
        return ExecutionStatus.PASSED if self.root_passed() else ExecutionStatus.FAILED

    def predicted_status(self) -> ExecutionStatus:
        """Testkube's heuristic (``healPredictedStatus``): canceled > aborted > failed > passed, where only
        a step's own ``optional`` flag excludes it, and anything else counts as aborted."""
        init = self._init.status
        statuses = {ref: self._derived(ref) for ref in self.tree.sequence}
        if init is StepStatus.CANCELED or StepStatus.CANCELED in statuses.values():
            return ExecutionStatus.CANCELED
        if init in (StepStatus.ABORTED, StepStatus.TIMEOUT) or StepStatus.ABORTED in statuses.values():
            return ExecutionStatus.ABORTED
        optional = self.tree.optional
        if init is StepStatus.FAILED or any(
            s is StepStatus.FAILED and ref not in optional for ref, s in statuses.items()
        ):
            return ExecutionStatus.FAILED
        if init is StepStatus.PASSED and all(s.is_success or ref in optional for ref, s in statuses.items()):
            return ExecutionStatus.PASSED
        return ExecutionStatus.ABORTED

    @property
    def status(self) -> ExecutionStatus:
        if self._finished_at is not None:
            return self.final_status()
        if self._phase is ExecutionStatus.PAUSED or self._init.status is StepStatus.PAUSED:
            return ExecutionStatus.PAUSED
        if any(s.status is StepStatus.PAUSED for s in self._steps.values()):
            return ExecutionStatus.PAUSED
        if self._phase in (ExecutionStatus.PAUSING, ExecutionStatus.RESUMING, ExecutionStatus.STOPPING):
            return self._phase
        if self._started_at is not None:
            return ExecutionStatus.RUNNING
        return self._phase

    # ------------------------------------------------------------------ the result

    def result(self, scheduled_at: int | None = None) -> ExecutionResult:
        """The TestWorkflowResult-shaped result, with timestamps healed (reference §5.3)."""
        return build_execution_result(self, scheduled_at)


def build_execution_result(state: ExecutionState, scheduled_at: int | None = None) -> ExecutionResult:
    """Build the result of ``state``: statuses derived, timestamps healed (reference §5.3)."""
    tree = state.tree
    finished_at = state._finished_at
    queued_at = _latest(state._queued_at, scheduled_at)
    started_at = _latest(state._started_at, queued_at)

    init_src = state._init
    init = StepResult(
        status=init_src.status or StepStatus.QUEUED,
        exit_code=init_src.exit_code,
        error_message=init_src.error_message,
        queued_at=started_at,  # the initialization queues once the execution started (pod created)
        started_at=init_src.started_at,
        finished_at=init_src.finished_at,
    )
    if init.status is not StepStatus.QUEUED:
        init.started_at = _latest(init.started_at, init.queued_at)
    if init.status.is_finished and init.finished_at is None:
        init.finished_at = init.started_at
    if init.finished_at is not None and init.started_at is not None and init.finished_at < init.started_at:
        init.finished_at = init.started_at

    steps: dict[str, StepResult] = {}
    for ref in tree.sequence:
        src = state._steps.get(ref)
        steps[ref] = StepResult(
            status=state._derived(ref),
            exit_code=src.exit_code if src else None,
            error_message=src.error_message if src else "",
            started_at=src.started_at if src else None,
            finished_at=src.finished_at if src else None,
        )

    # Leaves: each is queued when the previous one finished; fill what the stream never said.
    last = init.finished_at
    ended = finished_at is not None
    for index, ref in enumerate(tree.leaves):
        step = steps[ref]
        step.queued_at = last
        if step.finished_at is None and step.status.is_finished and ended:
            step.finished_at = _next_leaf_start(steps, tree.leaves, index) or finished_at
        if step.started_at is None and step.finished_at is not None:
            step.started_at = step.queued_at
        if step.started_at is not None and step.queued_at is not None and step.started_at < step.queued_at:
            step.started_at = step.queued_at
        if (
            step.finished_at is not None
            and step.started_at is not None
            and step.finished_at < step.started_at
        ):
            step.finished_at = step.started_at
        last = step.finished_at

    # Groups span their first leaf's queue time to their last leaf's end, innermost first.
    for ref in reversed(tree.sequence):
        children = tree.signature_children.get(ref)
        if not children:
            continue
        first, final = _first_leaf(tree, ref), _last_leaf(tree, ref)
        step = steps[ref]
        step.queued_at = steps[first].queued_at
        if step.status.is_finished:
            step.finished_at = steps[final].finished_at or step.finished_at
        if step.started_at is None and step.finished_at is not None:
            step.started_at = step.queued_at
        if step.started_at is not None and step.queued_at is not None and step.started_at < step.queued_at:
            step.started_at = step.queued_at

    pauses = [Pause(p.ref, p.paused_at, p.resumed_at) for p in state._pauses]
    paused_ms = 0
    duration_ms = 0
    total_ms = 0
    if finished_at is not None:
        for pause in pauses:
            owner = steps.get(pause.ref)
            if owner is not None and owner.finished_at is not None:
                if pause.resumed_at is None:
                    pause.resumed_at = owner.finished_at
                if owner.started_at is not None and pause.paused_at < owner.started_at:
                    pause.paused_at = owner.started_at
                if pause.resumed_at < pause.paused_at:
                    pause.paused_at = pause.resumed_at
        paused_ms = _merged_pause_ms(pauses, finished_at)
        origin = queued_at if queued_at is not None else finished_at
        total_ms = max(0, finished_at - origin)
        duration_ms = max(0, total_ms - paused_ms)

    return ExecutionResult(
        status=state.status,
        predicted_status=state.predicted_status(),
        queued_at=queued_at,
        started_at=started_at,
        finished_at=finished_at,
        duration_ms=duration_ms,
        paused_ms=paused_ms,
        total_duration_ms=total_ms,
        pauses=pauses,
        initialization=init,
        steps=steps,
    )


# ------------------------------------------------------------------------------------------ helpers


def _step_status(value: str | None) -> StepStatus | None:
    if value is None:
        return None
    try:
        return StepStatus(value)
    except ValueError:
        return None


def _ref_value(status: StepStatus) -> bool:
    return status.is_success or not status.is_finished


def _update_info(step: _Step, event: ExecutionEvent) -> None:
    if event.exit_code is not None:
        # An attempt's report replaces the previous attempt's: a retry that passed has no error.
        step.exit_code = event.exit_code
        step.error_message = event.details or ""
    elif event.details:
        step.error_message = event.details
    if event.iteration is not None:
        step.iteration = event.iteration


def _fill_info(step: _Step, event: ExecutionEvent) -> bool:
    """After a step finished only what it never said may be added; nothing is overwritten."""
    changed = False
    if event.exit_code is not None and step.exit_code is None:
        step.exit_code = event.exit_code
        changed = True
    if event.details and not step.error_message:
        step.error_message = event.details
        changed = True
    return changed


def _latest(*values: int | None) -> int | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _next_leaf_start(steps: Mapping[str, StepResult], leaves: Sequence[str], index: int) -> int | None:
    if index + 1 >= len(leaves):
        return None
    following = steps[leaves[index + 1]]
    return following.started_at


def _first_leaf(tree: StatusTree, ref: str) -> str:
    children = tree.signature_children.get(ref)
    while children:
        ref = children[0]
        children = tree.signature_children.get(ref)
    return ref


def _last_leaf(tree: StatusTree, ref: str) -> str:
    children = tree.signature_children.get(ref)
    while children:
        ref = children[-1]
        children = tree.signature_children.get(ref)
    return ref


def _merged_pause_ms(pauses: Sequence[Pause], finished_at: int) -> int:
    intervals = sorted(
        (p.paused_at, p.resumed_at if p.resumed_at is not None else finished_at) for p in pauses
    )
    total = 0
    current: tuple[int, int] | None = None
    for start, end in intervals:
        if current is None or start > current[1]:
            if current is not None:
                total += max(0, current[1] - current[0])
            current = (start, end)
        else:
            current = (current[0], max(current[1], end))
    if current is not None:
        total += max(0, current[1] - current[0])
    return total


__all__ = [
    "ABORTED_BEFORE_MESSAGE",
    "ABORTED_MESSAGE",
    "EVENT_TYPES",
    "INIT_REF",
    "ApplyOutcome",
    "Artifact",
    "EventType",
    "ExecutionEvent",
    "ExecutionResult",
    "ExecutionState",
    "ExecutionStatus",
    "Pause",
    "Report",
    "StatusNode",
    "StatusTree",
    "StepResult",
    "StepStatus",
    "build_execution_result",
    "evaluate_result",
    "execution_transition",
    "format_duration",
    "format_timestamp",
    "parse_timestamp",
    "step_transition",
]

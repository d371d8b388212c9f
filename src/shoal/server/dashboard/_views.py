"""The data behind each page, read from the store and shaped for the templates (no HTML here)."""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shoal.server._executions import Target
from shoal.server._state import ServerState
from shoal.server.dashboard._charts import TrendPoint
from shoal.server.dashboard._format import parse_ts
from shoal.server.dashboard._junit import FailedCase, ReportUnreadable, failed_cases
from shoal.store import ACTIVE_STATUSES, Agent, Environment, Execution, ExecutionFilter, NotFound, now
from shoal.store._dashboard_queries import (
    EnvironmentCounts,
    WorkflowRollup,
    agent_label_keys,
    environment_counts,
    facts_count,
    group_members,
    live_runs,
    step_failures,
    workflow_names,
    workflow_rollup,
)

WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
TREND_POINTS = 30
LATEST_SHOWN = 24


# ------------------------------------------------------------------------------------------ environments


@dataclass(slots=True)
class EnvironmentRow:
    env: Environment
    counts: EnvironmentCounts


async def environments(state: ServerState, envs: Sequence[Environment]) -> list[EnvironmentRow]:
    counts = await environment_counts(state.store, [e.id for e in envs])
    return [EnvironmentRow(e, counts.get(e.id, EnvironmentCounts())) for e in envs]


@dataclass(slots=True)
class AgentRow:
    agent: Agent
    labels: list[tuple[str, str]]
    running: list[Execution]


@dataclass(slots=True)
class QueuedRow:
    execution: Execution
    target: str
    reason: str


@dataclass(slots=True)
class EnvironmentView:
    env: Environment
    agents: list[AgentRow]
    online: int
    running: list[Execution]
    queued: list[QueuedRow]
    recent: list[Execution]


async def environment(state: ServerState, env: Environment) -> EnvironmentView:
    store = state.store
    # Independent reads on separate connections: SQLite (WAL) and PostgreSQL serve them side by side.
    agents, active_rows, queued, (recent, _total) = await asyncio.gather(
        store.list_agents(env.id),
        store.active_executions(env_id=env.id),
        store.queued_executions(env.id, limit=200),
        store.list_executions(env.id, ExecutionFilter(), page=0, page_size=15),
    )
    active = sorted(active_rows, key=lambda e: e.scheduled_at)
    by_agent: dict[str, list[Execution]] = defaultdict(list)
    for ex in active:
        if ex.agent_id:
            by_agent[ex.agent_id].append(ex)
    rows = [
        AgentRow(a, sorted((str(k), str(v)) for k, v in (a.labels or {}).items()), by_agent.get(a.id, []))
        for a in sorted(agents, key=lambda a: (a.status != "online", a.name))
    ]
    queued_rows = [
        QueuedRow(ex, Target.parse(ex.target).describe() or "any agent", ex.queue_reason or "waiting")
        for ex in queued
    ]
    return EnvironmentView(
        env, rows, sum(1 for a in agents if a.status == "online"), active, queued_rows, recent
    )


# ------------------------------------------------------------------------------------------ workflows


@dataclass(slots=True)
class KeyStatus:
    key: str
    status: str
    execution_id: str
    at: datetime


@dataclass(slots=True)
class FlakyStep:
    name: str
    failures: int
    runs: int


@dataclass(slots=True)
class WorkflowRow:
    name: str
    runs: int = 0
    passed: int = 0
    latest: list[KeyStatus] = field(default_factory=list)
    latest_status: str | None = None
    latest_id: str | None = None
    trend: list[TrendPoint] = field(default_factory=list)
    flaky: list[FlakyStep] = field(default_factory=list)
    running: int = 0
    queued: int = 0
    median_ms: float | None = None
    latest_more: int = 0  # keys not shown in the row
    latest_bad: int = 0  # keys whose latest run did not pass

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.runs if self.runs else None


@dataclass(slots=True)
class WorkflowsView:
    rows: list[WorkflowRow]
    by: str
    label: str
    status: str
    window: str
    label_keys: list[str]
    total_runs: int


_LABEL_KEY = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._/-]{0,252})$")


def is_label_key(text: str) -> bool:
    """Label keys as Kubernetes spells them (they go into a JSON path, so nothing else is accepted)."""
    return bool(_LABEL_KEY.match(text))


def parse_label(text: str) -> tuple[str, str] | None:
    key, sep, value = text.partition("=")
    key = key.strip()
    return (key, value.strip()) if sep and is_label_key(key) else None


def _label_ok(labels: Mapping[str, Any], agent: str | None, wanted: tuple[str, str] | None) -> bool:
    if wanted is None:
        return True
    key, value = wanted
    if key == "name":
        return agent == value
    return str(labels.get(key)) == value if key in labels else False


async def default_group_key(state: ServerState, env: Environment) -> str:
    agents = await state.store.list_agents(env.id)
    return "cluster" if any("cluster" in (a.labels or {}) for a in agents) else "agent"


class RollupCache:
    """Recent workflow rollups of this server, reused while the window holds the same facts.

    The key is (environment, group key, label filter, window start to the minute, number of facts in
    the window): a new finished execution changes the count, so a cached figure is never stale by a
    run; only the window's edge may lag by up to a minute.
    """

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._items: dict[tuple[Any, ...], WorkflowRollup] = {}

    def get(self, key: tuple[Any, ...]) -> WorkflowRollup | None:
        value = self._items.pop(key, None)
        if value is not None:
            self._items[key] = value  # most recently used last
        return value

    def put(self, key: tuple[Any, ...], value: WorkflowRollup) -> None:
        self._items[key] = value
        while len(self._items) > self.size:
            del self._items[next(iter(self._items))]

    def clear(self) -> None:
        self._items.clear()


async def _rollup(
    state: ServerState,
    env: Environment,
    cache: RollupCache,
    window: str,
    by: str,
    wanted: tuple[str, str] | None,
) -> WorkflowRollup:
    since = (now() - WINDOWS.get(window, WINDOWS["7d"])).replace(second=0, microsecond=0)
    count = await facts_count(state.store, env.id, since)
    key = (env.id, by, wanted, since, count)
    cached = cache.get(key)
    if cached is None:
        cached = await workflow_rollup(state.store, env.id, since, by, wanted, recent=TREND_POINTS)
        cache.put(key, cached)
    return cached


async def workflows(
    state: ServerState,
    env: Environment,
    cache: RollupCache,
    *,
    by: str,
    label: str,
    status: str,
    window: str,
) -> WorkflowsView:
    store = state.store
    since = now() - WINDOWS.get(window, WINDOWS["7d"])
    wanted = parse_label(label)
    rollup, names_list, live_list, failures, label_keys = await asyncio.gather(
        _rollup(state, env, cache, window, by, wanted),
        workflow_names(store, env.id),
        live_runs(store, env.id),
        step_failures(store, env.id, since),
        agent_label_keys(store, env.id),
    )
    names = set(names_list)
    rows: dict[str, WorkflowRow] = {n: WorkflowRow(n) for n in names | set(rollup.counts)}
    for name, (runs, passed) in rollup.counts.items():
        row = rows[name]
        row.runs, row.passed = runs, passed
        latest = [KeyStatus(k, st, ex_id, at) for k, st, ex_id, at in rollup.latest.get(name, [])]
        row.latest_more = max(0, len(latest) - LATEST_SHOWN)
        row.latest_bad = sum(1 for k in latest if k.status != "passed")
        # The ones that did not pass first: with a hundred agents, the row shows what needs looking at.
        row.latest = sorted(latest, key=lambda k: k.status == "passed")[:LATEST_SHOWN]
        recent = rollup.recent.get(name, [])
        row.trend = [TrendPoint(st, ms, ex_id) for ex_id, st, ms in recent]
        if recent:
            row.latest_id, row.latest_status = recent[-1][0], recent[-1][1]
        row.median_ms = rollup.medians.get(name)
    for run in live_list:
        live = rows.get(run.workflow)
        if live is None:
            continue
        if run.status == "queued":
            live.queued += 1
        elif _label_ok(run.agent_labels, run.agent_name, wanted):
            live.running += 1
    if wanted is None:
        # A step that fails in some runs and not in others, in a workflow that also passes: flaky.
        for sf in failures:
            found = rows.get(sf.workflow)
            if found is not None and found.passed and 0 < sf.failures < found.runs:
                found.flaky.append(FlakyStep(sf.name, sf.failures, found.runs))
        for row in rows.values():
            row.flaky.sort(key=lambda s: (-s.failures, s.name))
            del row.flaky[5:]
    selected = sorted(rows.values(), key=lambda r: r.name)
    if status == "running":
        selected = [r for r in selected if r.running or r.queued]
    elif status == "failing":
        selected = [r for r in selected if r.latest_bad]
    elif status:
        selected = [r for r in selected if r.latest_status == status]
    return WorkflowsView(selected, by, label, status, window, label_keys, sum(r.runs for r in selected))


@dataclass(slots=True)
class WorkflowView:
    name: str
    metrics: dict[str, Any]
    executions: list[Execution]
    total: int
    trend: list[TrendPoint]
    exists: bool


async def workflow(
    state: ServerState, env: Environment, name: str, *, by: str, window: str, page: int
) -> WorkflowView:
    store = state.store
    since = now() - WINDOWS.get(window, WINDOWS["7d"])

    async def exists() -> bool:
        try:
            await store.get_resource(env.id, "TestWorkflow", name)
        except NotFound:
            return False
        return True

    # The summary reads in five parts at once (SQLite's pool holds five connections); then the rest,
    # independent of each other, side by side.
    metrics = await store.metrics(env.id, name, since, None if by == "agent" else by)
    (executions, total), rollup, is_resource = await asyncio.gather(
        store.list_executions(env.id, ExecutionFilter(workflow=name), page, 25),
        workflow_rollup(store, env.id, since, by, recent=60, workflow=name),
        exists(),
    )
    trend = [TrendPoint(st, ms, ex_id) for ex_id, st, ms in rollup.recent.get(name, [])]
    if not is_resource and not total:
        raise NotFound(f"workflow {name!r} not found")
    return WorkflowView(name, metrics, executions, total, trend, is_resource)


# ------------------------------------------------------------------------------------------ execution


@dataclass(slots=True)
class StepRow:
    ref: str
    name: str
    category: str
    depth: int
    status: str
    started: datetime | None
    finished: datetime | None
    duration_ms: int | None
    exit_code: int | None
    error: str
    optional: bool
    group: bool


@dataclass(slots=True)
class ConfigRow:
    name: str
    value: str
    sensitive: bool
    default: bool


@dataclass(slots=True)
class ReportView:
    kind: str
    file: str
    summary: dict[str, Any]
    failed: list[FailedCase]
    problem: str = ""


@dataclass(slots=True)
class ExecutionView:
    execution: Execution
    status: str
    duration_ms: int | None
    started: datetime | None
    finished: datetime | None
    cluster: str | None
    steps: list[StepRow]
    timeline_start: int
    timeline_end: int
    config: list[ConfigRow]
    artifacts: list[tuple[str, int]]
    reports: list[ReportView]
    siblings: list[Execution]
    init_error: str
    selected: StepRow | None
    is_active: bool

    @property
    def is_finished(self) -> bool:
        return self.status in ("passed", "failed", "aborted", "canceled")


def _ms(ts: datetime | None) -> int | None:
    return int(ts.timestamp() * 1000) if ts else None


def step_rows(signature: Sequence[Mapping[str, Any]], steps: Mapping[str, Any]) -> list[StepRow]:
    rows: list[StepRow] = []

    def walk(nodes: Sequence[Mapping[str, Any]], depth: int) -> None:
        for node in nodes:
            ref = str(node.get("ref"))
            res = steps.get(ref) or {}
            started, finished = parse_ts(res.get("startedAt")), parse_ts(res.get("finishedAt"))
            dur = int((finished - started).total_seconds() * 1000) if started and finished else None
            children = node.get("children") or []
            rows.append(
                StepRow(
                    ref=ref,
                    name=str(node.get("name") or node.get("category") or ref),
                    category=str(node.get("category") or ""),
                    depth=depth,
                    status=str(res.get("status") or "queued"),
                    started=started,
                    finished=finished,
                    duration_ms=dur,
                    exit_code=res.get("exitCode"),
                    error=str(res.get("errorMessage") or ""),
                    optional=bool(node.get("optional")),
                    group=bool(children),
                )
            )
            walk(children, depth + 1)

    walk(signature, 0)
    return rows


def config_rows(ex: Execution) -> list[ConfigRow]:
    """Config of the run: given values and defaults; sensitive ones are never shown (nor stored)."""
    spec = (ex.workflow or {}).get("spec") or {}
    declared = spec.get("config") or {}
    given = ex.config or {}
    sealed = bool(ex.sealed_config)
    rows: list[ConfigRow] = []
    for name in sorted(set(declared) | set(given)):
        raw = declared.get(name)
        decl: dict[str, Any] = raw if isinstance(raw, dict) else {}
        sensitive = bool(decl.get("sensitive"))
        if sensitive:
            rows.append(
                ConfigRow(
                    name, "hidden (sensitive)" if sealed or name not in given else "hidden", True, False
                )
            )
        elif name in given:
            rows.append(ConfigRow(name, str(given[name]), False, False))
        elif "default" in decl:
            rows.append(ConfigRow(name, str(decl.get("default")), False, True))
        else:
            rows.append(ConfigRow(name, "", False, True))
    return rows


async def _reports(state: ServerState, ex: Execution, artifacts: dict[str, int]) -> list[ReportView]:
    out: list[ReportView] = []
    for rep in ex.reports or []:
        kind, file = str(rep.get("kind") or ""), str(rep.get("file") or "")
        summary = dict(rep.get("summary") or {})
        view = ReportView(kind, file, summary, [])
        name = file if file in artifacts else next((a for a in artifacts if a.endswith("/" + file)), None)
        if (
            kind == "junit"
            and name is not None
            and int(summary.get("failed") or 0) + int(summary.get("errored") or 0)
        ):
            try:
                art = await state.store.get_artifact(ex.id, name)
                view.failed = failed_cases(await state.blobs.read(art.blob_key))
            except (NotFound, ReportUnreadable) as exc:
                view.problem = str(exc)
        out.append(view)
    return out


async def execution(state: ServerState, env: Environment, ex: Execution, step: str | None) -> ExecutionView:
    result = ex.result or {}
    started = parse_ts(result.get("startedAt")) or ex.started_at
    finished = parse_ts(result.get("finishedAt")) or ex.finished_at
    duration_ms = ex.duration_ms
    is_active = ex.status in ACTIVE_STATUSES
    if duration_ms is None and started is not None:
        duration_ms = int(((finished or datetime.now(UTC)) - _aware(started)).total_seconds() * 1000)
    steps = step_rows(ex.signature or [], result.get("steps") or {})
    t0 = _ms(_aware(started)) if started else None
    t1 = _ms(_aware(finished)) if finished else _ms(datetime.now(UTC))
    artifacts = {a.name: a.size for a in await state.store.list_artifacts(ex.id)}
    siblings: list[Execution] = []
    if ex.group_id and ex.group_id != ex.id:
        members = await group_members(state.store, env.id, ex.group_id)
        siblings = members if len(members) > 1 else []
    init = result.get("initialization") or {}
    selected = next((s for s in steps if s.ref == step), None) if step else None
    return ExecutionView(
        execution=ex,
        status=ex.status,
        duration_ms=duration_ms,
        started=_aware(started) if started else None,
        finished=_aware(finished) if finished else None,
        cluster=str((ex.agent_labels or {}).get("cluster"))
        if (ex.agent_labels or {}).get("cluster")
        else None,
        steps=steps,
        timeline_start=t0 or 0,
        timeline_end=t1 or 0,
        config=config_rows(ex),
        artifacts=sorted(artifacts.items()),
        reports=await _reports(state, ex, artifacts),
        siblings=siblings,
        init_error=str(init.get("errorMessage") or ""),
        selected=selected,
        is_active=is_active or ex.status == "queued",
    )


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


__all__ = [
    "WINDOWS",
    "EnvironmentView",
    "ExecutionView",
    "WorkflowView",
    "WorkflowsView",
    "default_group_key",
    "environment",
    "environments",
    "execution",
    "parse_label",
    "workflow",
    "workflows",
]

"""Executions in the control plane: creation, routing to agents, ingest of events, finishing, abort.

Statuses are never decided here: every change goes through ``ExecutionState`` (shoal.workflow's
transition rules), fed with the events the agents send or with the few decisions the control plane
takes itself (abort before start, initialization failure, a runner that vanished).
"""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import logging
import random
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shoal.clusters import SPARE_LABEL
from shoal.protocol import Ack, Assignment, Control
from shoal.server._bus import LocalBus
from shoal.server._hub import AgentHub
from shoal.server._sealing import Sealer
from shoal.store import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    Agent,
    BlobStore,
    Environment,
    Execution,
    NotFound,
    Store,
    Token,
    new_execution_id,
    now,
)
from shoal.workflow import (
    ExecutionContext,
    ResolutionError,
    WorkflowError,
    compile_workflow,
)
from shoal.workflow._plan import SignatureNode
from shoal.workflow._status import ExecutionEvent, ExecutionState, ExecutionStatus

log = logging.getLogger("shoal.server.executions")

WORKFLOW = "TestWorkflow"
TEMPLATE = "TestWorkflowTemplate"


class RequestError(Exception):
    """A run request the user must fix (bad config, invalid workflow); ``problems`` are located lines."""

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


@dataclass(slots=True)
class Target:
    match: dict[str, list[str]]
    not_: dict[str, list[str]]
    replicate: list[str]

    @classmethod
    def parse(cls, data: Mapping[str, Any] | None) -> Target:
        data = data or {}

        def lists(value: Any) -> dict[str, list[str]]:
            out: dict[str, list[str]] = {}
            for k, v in (value or {}).items():
                out[str(k)] = [str(x) for x in v] if isinstance(v, list) else [str(v)]
            return out

        return cls(
            lists(data.get("match")), lists(data.get("not")), [str(x) for x in data.get("replicate") or []]
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.match:
            out["match"] = self.match
        if self.not_:
            out["not"] = self.not_
        if self.replicate:
            out["replicate"] = self.replicate
        return out

    def describe(self) -> str:
        parts = [f"{k}={'|'.join(v)}" for k, v in sorted(self.match.items())]
        parts += [f"{k}!={'|'.join(v)}" for k, v in sorted(self.not_.items())]
        return ",".join(parts)


def agent_labels(agent: Agent) -> dict[str, str]:
    labels = {str(k): str(v) for k, v in (agent.labels or {}).items()}
    labels.setdefault("name", agent.name)
    labels.setdefault("id", agent.id)
    return labels


def target_matches(target: Target, labels: Mapping[str, str]) -> bool:
    if SPARE_LABEL in labels and SPARE_LABEL not in target.match:
        return False  # a pool's unclaimed spare: only runs that name it reach its agent
    for key, values in target.match.items():
        if labels.get(key) not in values:
            return False
    return all(labels.get(key) not in values for key, values in target.not_.items())


def iso(ts: datetime | None) -> str | None:
    if ts is None:
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def epoch_ms(ts: datetime | None) -> int | None:
    if ts is None:
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return int(ts.timestamp() * 1000)


def from_ms(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)


class ExecutionService:
    def __init__(
        self,
        store: Store,
        blobs: BlobStore,
        hub: AgentHub,
        bus: LocalBus,
        sealer: Sealer,
        *,
        organization: str = "default",
        dashboard_url: str = "",
    ) -> None:
        self.store = store
        self.blobs = blobs
        self.hub = hub
        self.bus = bus
        self.sealer = sealer
        self.organization = organization
        self.dashboard_url = dashboard_url
        self._states: dict[str, ExecutionState] = {}
        self._state_locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._schedule_locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._background: set[asyncio.Task[Any]] = set()
        bus.on("schedule", self._on_schedule_notice)

    # ------------------------------------------------------------------ creating

    async def templates_of(self, env_id: str) -> dict[str, dict[str, Any]]:
        return {r.name: r.document for r in await self.store.list_resources(env_id, TEMPLATE)}

    async def create_executions(
        self,
        env: Environment,
        workflow_name: str,
        *,
        config: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
        target: Mapping[str, Any] | None = None,
        running_context: Mapping[str, Any] | None = None,
        parent_ids: Sequence[str] = (),
        name: str | None = None,
        creator: Token | None = None,
    ) -> list[Execution]:
        """Create one execution, or one per distinct value of the replicate labels, and route them."""
        resource = await self.store.get_resource(env.id, WORKFLOW, workflow_name)
        document = resource.document
        spec = document.get("spec") or {}
        spec_target = (spec.get("execution") or {}).get("target")
        tgt = Target.parse(target if target else spec_target)
        config = {str(k): str(v) for k, v in (config or {}).items()}
        templates = await self.templates_of(env.id)

        buckets: list[Target] = [tgt]
        if tgt.replicate:
            agents = [a for a in await self.store.list_agents(env.id, online_only=True)]
            values: set[tuple[str, ...]] = set()
            for agent in agents:
                labels = agent_labels(agent)
                if target_matches(tgt, labels) and all(k in labels for k in tgt.replicate):
                    values.add(tuple(labels[k] for k in tgt.replicate))
            if values:
                buckets = []
                for combo in sorted(values):
                    match = dict(tgt.match)
                    for key, value in zip(tgt.replicate, combo, strict=True):
                        match[key] = [value]
                    buckets.append(Target(match, dict(tgt.not_), []))
        group_id = new_execution_id()
        created: list[Execution] = []
        for bucket in buckets:
            ex = await self._create_one(
                env,
                document,
                templates,
                config,
                dict(tags or {}),
                bucket,
                dict(running_context or {}),
                list(parent_ids),
                group_id,
                name if len(buckets) == 1 else None,
                {"env_id": creator.env_id, "role": creator.role} if creator is not None else {},
            )
            created.append(ex)
        await self.request_schedule(env.id)
        return created

    async def _create_one(
        self,
        env: Environment,
        document: dict[str, Any],
        templates: dict[str, dict[str, Any]],
        config: dict[str, str],
        tags: dict[str, str],
        target: Target,
        running_context: dict[str, Any],
        parent_ids: list[str],
        group_id: str,
        name: str | None,
        created_by: dict[str, Any],
    ) -> Execution:
        workflow_name = str((document.get("metadata") or {}).get("name"))
        exe_id = new_execution_id()
        number = await self.store.reserve_number(env.id, workflow_name)
        # The agent compiles with this very context, so both sides derive the same Plan and signature.
        context = ExecutionContext(
            id=exe_id,
            name=name or f"{workflow_name}-{number}",
            number=number,
            scheduled_at=iso(now()) or "",
            group_id=group_id,
            tags=tags,
            running_context=running_context,
            organization=self.organization,
            environment=env.name,
            dashboard_url=self.dashboard_url,
        )
        init_error: str | None = None
        signature: list[dict[str, Any]] = []
        public_config: dict[str, Any] = dict(config)
        sealed: str | None = None
        resolved_tags = dict(tags)
        try:
            compiled = compile_workflow(document, templates, config, context)
            plan = compiled.plan
            signature = [n.to_dict() for n in plan.signature]
            sensitive = {k for k, v in plan.config.items() if v.sensitive}
            public_config = {k: v for k, v in config.items() if k not in sensitive}
            secret_values = {k: v for k, v in config.items() if k in sensitive}
            sealed = self.sealer.seal(secret_values) if secret_values else None
            resolved_tags = dict(plan.tags)
        except ResolutionError as exc:
            init_error = "; ".join(str(p) for p in exc.problems) or str(exc)
        except WorkflowError as exc:
            raise RequestError(
                f"workflow {workflow_name!r} cannot run", [str(p) for p in exc.problems]
            ) from None
        ex = await self.store.create_execution(
            env.id,
            workflow_name,
            number,
            id=exe_id,
            group_id=group_id,
            name=context.name,
            scheduled_at=_parse_iso(context.scheduled_at) or now(),
            target=target.to_dict(),
            config=public_config,
            sealed_config=sealed,
            tags=resolved_tags,
            running_context=running_context,
            parent_id=parent_ids[-1] if parent_ids else None,
            parent_ids=parent_ids,
            created_by=created_by,
            workflow=document,
            signature=signature,
            queue_reason="waiting for the scheduler" if init_error is None else None,
        )
        if init_error is not None:
            state = ExecutionState.for_signature([], root="")
            state.fail_initialization(_ms_now(), init_error)
            await self._persist_state(ex, state)
            ex = await self.store.get_execution(ex.id)
        return ex

    async def rerun(self, env: Environment, ex: Execution, creator: Token | None = None) -> list[Execution]:
        config = dict(ex.config or {})
        if ex.sealed_config:
            config.update(self.sealer.unseal(ex.sealed_config))
        return await self.create_executions(
            env,
            ex.workflow_name,
            config=config,
            tags={k: str(v) for k, v in (ex.tags or {}).items()},
            target=ex.target or None,
            running_context={"interface": {"type": "api"}, "actor": {"type": "user", "name": "rerun"}},
            creator=creator,
        )

    # ------------------------------------------------------------------ routing

    async def request_schedule(self, env_id: str) -> None:
        await self.bus.publish("schedule", env_id=env_id)

    async def _on_schedule_notice(self, notice: dict[str, Any]) -> None:
        await self.schedule(str(notice["env_id"]))

    async def schedule(self, env_id: str) -> int:
        """Assign the environment's queued executions to matching agents this process holds."""
        async with self._schedule_locks[env_id]:
            queued = await self.store.queued_executions(env_id)
            if not queued:
                return 0
            agents = await self.store.list_agents(env_id, online_only=True)
            active = await self.store.active_executions(env_id=env_id)
            load: dict[str, int] = defaultdict(int)
            running_by_key: dict[str, list[Execution]] = defaultdict(list)
            for ex in active:
                if ex.agent_id:
                    load[ex.agent_id] += 1
                running_by_key[_concurrency_key(ex)].append(ex)
            assigned = 0
            for ex in queued:
                tgt = Target.parse(ex.target)
                limit = _concurrency_limit(ex)
                key = _concurrency_key(ex)
                if limit and len(running_by_key[key]) >= limit:
                    reason = f"concurrency limit {limit} reached for {key}"
                    if _cancel_in_progress(ex) and running_by_key[key]:
                        oldest = min(running_by_key[key], key=lambda e: e.scheduled_at)
                        await self.abort(oldest, canceled=True, reason="canceled in favour of a newer run")
                    await self._set_reason(ex, reason)
                    continue
                candidates = [
                    a
                    for a in agents
                    if self.hub.is_local(a.id)
                    and target_matches(tgt, agent_labels(a))
                    and load[a.id] < max(1, a.max_concurrent)
                ]
                if not candidates:
                    matching = [a for a in agents if target_matches(tgt, agent_labels(a))]
                    if matching:
                        reason = "every matching agent is busy"
                    elif tgt.match or tgt.not_:
                        reason = f"no online agent matches {tgt.describe()}"
                    else:
                        reason = "no agent is online in this environment"
                    if not any(self.hub.is_local(a.id) for a in matching) and matching:
                        reason = "waiting for a matching agent's server"
                    await self._set_reason(ex, reason)
                    continue
                least = min(load[a.id] for a in candidates)
                agent = random.choice([a for a in candidates if load[a.id] == least])
                if not await self.store.assign_execution(ex.id, agent):
                    continue
                load[agent.id] += 1
                running_by_key[key].append(ex)
                assigned += 1
                fresh = await self.store.get_execution(ex.id)
                await self.send_assignment(fresh)
                await self.bus.publish("execution", id=ex.id)
            return assigned

    async def _set_reason(self, ex: Execution, reason: str) -> None:
        if ex.queue_reason != reason:
            await self.store.update_execution(ex.id, expect_status=["queued"], queue_reason=reason)

    async def send_assignment(self, ex: Execution) -> None:
        env = await self.store.get_environment_by_id(ex.env_id)
        config = dict(ex.config or {})
        if ex.sealed_config:
            config.update(self.sealer.unseal(ex.sealed_config))
        message = Assignment(
            execution_id=ex.id,
            name=ex.name,
            number=ex.number,
            group_id=ex.group_id,
            workflow=ex.workflow,
            templates=await self.templates_of(ex.env_id),
            config=config,
            tags={k: str(v) for k, v in (ex.tags or {}).items()},
            scheduled_at=iso(ex.scheduled_at) or "",
            running_context=ex.running_context or {},
            organization=self.organization,
            environment=env.name,
            parent_execution_ids=list(ex.parent_ids or []),
            execution_token=await self._execution_token(ex),
        )
        if ex.agent_id:
            await self.hub.send(ex.agent_id, message)

    async def _execution_token(self, ex: Execution) -> str:
        """A token to start child executions with the creator's rights, at most a runner's."""
        creator = ex.created_by or {}
        if creator.get("role") not in ("admin", "editor", "runner"):
            return ""
        env = await self.store.get_environment_by_id(ex.env_id)
        _token, plaintext = await self.store.create_token(
            env.org_id,
            creator.get("env_id"),
            "runner",
            f"execution {ex.id}",
            expires_at=now() + timedelta(hours=24),
        )
        return plaintext

    # ------------------------------------------------------------------ agents' view

    async def on_agent_connected(
        self, agent: Agent, held: Mapping[str, int]
    ) -> tuple[dict[str, int], list[str]]:
        """Reconcile what an agent says it holds with what the store knows; returns (acked, forget)."""
        acked: dict[str, int] = {}
        forget: list[str] = []
        for exe_id in held:
            try:
                ex = await self.store.get_execution(exe_id)
            except NotFound:
                forget.append(exe_id)
                continue
            if ex.agent_id != agent.id:
                forget.append(exe_id)
                continue
            acked[exe_id] = ex.last_seq
            if ex.status in TERMINAL_STATUSES and ex.compacted:
                forget.append(exe_id)
        # Assigned executions the agent does not hold (assignment lost in flight): send them again.
        for ex in await self.store.active_executions(agent_id=agent.id):
            if ex.id not in held and ex.status == "assigned":
                await self.send_assignment(ex)
        return acked, forget

    async def on_accepted(self, agent: Agent, execution_id: str, namespace: str | None) -> None:
        ex = await self.store.get_execution(execution_id)
        if ex.agent_id != agent.id:
            return
        values: dict[str, Any] = {"status": "starting"}
        if namespace:
            values["namespace"] = namespace
        await self.store.update_execution(execution_id, expect_status=["assigned"], **values)
        await self.bus.publish("execution", id=execution_id)

    async def on_declined(self, agent: Agent, execution_id: str, reason: str) -> None:
        ex = await self.store.get_execution(execution_id)
        if ex.agent_id != agent.id:
            return
        async with self._state_locks[execution_id]:
            state = await self._state(ex)
            state.fail_initialization(_ms_now(), reason)
            await self._persist_state(ex, state)

    # ------------------------------------------------------------------ ingest

    async def ingest(
        self, agent: Agent, execution_id: str, events: Sequence[Mapping[str, Any]]
    ) -> int | None:
        """Store a batch idempotently, fold it into the execution's state; returns the seq to ack."""
        async with self._state_locks[execution_id]:
            try:
                ex = await self.store.get_execution(execution_id)
            except NotFound:
                return None
            if ex.agent_id != agent.id:
                log.warning(
                    "agent %s sent events for %s, assigned to another agent", agent.name, execution_id
                )
                return None
            if ex.status in TERMINAL_STATUSES and ex.compacted:
                return ex.last_seq
            state = await self._state(ex)  # from what was stored before this batch
            last = await self.store.ingest_events(execution_id, [dict(e) for e in events])
            before = (state.status, state.last_seq)
            changed = False
            for data in sorted(events, key=lambda e: int(e["seq"])):
                if int(data["seq"]) > last:
                    break
                if int(data["seq"]) == state.last_seq + 1 and data.get("type") != "log":
                    changed = True
                state.apply(ExecutionEvent.from_dict(data))
            while state.last_seq < last:  # a batch filled a gap: fold in what was stored beyond it
                stored = await self.store.read_events(execution_id, after_seq=state.last_seq, limit=5000)
                if not stored:
                    break
                for data in stored:
                    changed = changed or data.get("type") != "log"
                    state.apply(ExecutionEvent.from_dict(data))
            if changed or before[0] != state.status or ex.status in ("assigned", "starting"):
                ex = await self.store.get_execution(execution_id)
                await self._persist_state(ex, state)
        await self.bus.publish("execution", id=execution_id)
        return last

    async def _state(self, ex: Execution) -> ExecutionState:
        state = self._states.get(ex.id)
        if state is not None and state.last_seq == ex.last_seq:
            return state
        # Not cached, or another server process ingested events meanwhile: rebuild from the store.
        signature = [SignatureNode.from_dict(n) for n in ex.signature or []]
        state = ExecutionState.for_signature(signature, root="")
        for data in await self._non_log_events(ex):
            state.apply(ExecutionEvent.from_dict(data))
        state.accept_gaps()
        if state.last_seq < ex.last_seq:
            state.last_seq = ex.last_seq
        self._states[ex.id] = state
        return state

    async def _non_log_events(self, ex: Execution) -> list[dict[str, Any]]:
        if ex.compacted:
            return [e async for e in self.events(ex) if e.get("type") != "log"]
        types = ["step", "output", "status", "artifact", "report", "initialization"]
        out: list[dict[str, Any]] = []
        after = 0
        while True:
            batch = await self.store.read_events(ex.id, after_seq=after, limit=5000, types=types)
            if not batch:
                return out
            out.extend(batch)
            after = int(batch[-1]["seq"])

    async def _persist_state(self, ex: Execution, state: ExecutionState) -> None:
        scheduled = epoch_ms(ex.scheduled_at)
        result = state.result(scheduled).to_dict()
        status = state.status
        values: dict[str, Any] = {
            "result": result,
            "output": [
                {"ref": ref, "name": "outputs", "value": outputs}
                for ref, outputs in sorted(state.outputs.items())
            ],
            "reports": [
                {"ref": r.ref, "kind": r.kind, "file": r.file, "summary": r.summary} for r in state.reports
            ],
        }
        if status is not ExecutionStatus.QUEUED or ex.status == "queued":
            values["status"] = status.value
        started = result.get("startedAt")
        if started and ex.started_at is None:
            values["started_at"] = _parse_iso(started)
        finished = status.is_finished
        if finished:
            values["finished_at"] = _parse_iso(result.get("finishedAt")) or now()
            values["duration_ms"] = result.get("durationMs")
            values["queue_reason"] = None
        await self.store.update_execution(ex.id, **values)
        if finished:
            self._states.pop(ex.id, None)
            self._spawn(self._after_finish(ex))

    async def _after_finish(self, ex: Execution) -> None:
        await self.store.revoke_tokens_named(f"execution {ex.id}")
        fresh = await self.store.get_execution(ex.id)
        await self.store.record_facts(fresh, failed_steps(fresh.signature or [], fresh.result or {}))
        await self.compact(ex.id)
        await self.request_schedule(ex.env_id)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def wait_background(self) -> None:
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    # ------------------------------------------------------------------ events & logs

    async def compact(self, execution_id: str) -> None:
        """Move a finished execution's events into one blob, then drop the rows (idempotent)."""
        async with self._state_locks[execution_id]:
            try:
                ex = await self.store.get_execution(execution_id)
            except NotFound:
                return
            if ex.compacted or ex.status not in TERMINAL_STATUSES:
                return
            buf = io.BytesIO()
            with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=5) as gz:
                after = 0
                while True:
                    batch = await self.store.read_events(execution_id, after_seq=after, limit=5000)
                    if not batch:
                        break
                    for e in batch:
                        gz.write(json.dumps(e, separators=(",", ":")).encode() + b"\n")
                    after = int(batch[-1]["seq"])
            await self.blobs.put(events_key(execution_id), buf.getvalue())
            await self.store.drop_events(execution_id)
        self._state_locks.pop(execution_id, None)

    async def events(self, ex: Execution, after_seq: int = 0) -> AsyncIterator[dict[str, Any]]:
        """Every stored event after ``after_seq``, from the rows or, once compacted, from the blob."""
        if not ex.compacted:
            after = after_seq
            while True:
                batch = await self.store.read_events(ex.id, after_seq=after, limit=2000)
                if not batch:
                    fresh = await self.store.get_execution(ex.id)
                    if not fresh.compacted:
                        return
                    ex = fresh
                    after_seq = after
                    break
                for e in batch:
                    yield e
                after = int(batch[-1]["seq"])
        try:
            data = await self.blobs.read(events_key(ex.id))
        except NotFound:
            return
        for line in gzip.decompress(data).splitlines():
            e = json.loads(line)
            if int(e["seq"]) > after_seq:
                yield e

    async def follow(self, execution_id: str, after_seq: int = 0) -> AsyncIterator[dict[str, Any]]:
        """Events as they arrive, until the execution is finished and everything was delivered."""
        waiter = self.bus.watch(execution_id)
        try:
            last = after_seq
            while True:
                waiter.clear()
                ex = await self.store.get_execution(execution_id)
                async for e in self.events(ex, last):
                    last = int(e["seq"])
                    yield e
                if ex.status in TERMINAL_STATUSES:
                    fresh = await self.store.get_execution(execution_id)
                    if fresh.last_seq <= last or fresh.compacted:
                        async for e in self.events(fresh, last):
                            last = int(e["seq"])
                            yield e
                        return
                    continue
                try:
                    await asyncio.wait_for(waiter.wait(), timeout=15)
                except TimeoutError:
                    yield {"type": "heartbeat", "seq": last, "ts": _ms_now()}
        finally:
            self.bus.unwatch(execution_id, waiter)

    # ------------------------------------------------------------------ abort / cancel / vanished

    async def abort(self, ex: Execution, *, canceled: bool = False, reason: str = "") -> None:
        if ex.status in TERMINAL_STATUSES:
            return
        if ex.status == "queued" or ex.agent_id is None or not await self._agent_online(ex.agent_id):
            async with self._state_locks[ex.id]:
                state = await self._state(ex)
                state.abort(_ms_now(), reason, canceled=canceled)
                await self._persist_state(await self.store.get_execution(ex.id), state)
            await self.bus.publish("execution", id=ex.id)
            return
        await self.store.update_execution(ex.id, expect_status=list(ACTIVE_STATUSES), status="stopping")
        await self.hub.send(ex.agent_id, Control(type="cancel" if canceled else "abort", execution_id=ex.id))
        await self.bus.publish("execution", id=ex.id)

    async def _agent_online(self, agent_id: str) -> bool:
        agent = await self.store.get_agent_by_id(agent_id)
        return agent is not None and agent.status == "online"

    async def sweep(self, agent_timeout_s: float, grace_s: float) -> None:
        """Agents silent too long go offline; executions of agents gone past the grace period end."""
        cutoff = now() - timedelta(seconds=agent_timeout_s)
        stale = await self.store.mark_stale_agents_offline(cutoff)
        envs = {a.env_id for a in stale}
        grace_cutoff = now() - timedelta(seconds=grace_s)
        for ex in await self.store.active_executions():
            if ex.agent_id is None:
                continue
            agent = await self.store.get_agent_by_id(ex.agent_id)
            gone = agent is None or (
                agent.status == "offline"
                and (agent.disconnected_at is None or _aware(agent.disconnected_at) <= grace_cutoff)
            )
            if not gone:
                continue
            envs.add(ex.env_id)
            if ex.status == "assigned":
                # Never started: give it back to the queue for another agent.
                await self.store.update_execution(
                    ex.id, expect_status=["assigned"], status="queued", agent_id=None, agent_name=None
                )
                continue
            async with self._state_locks[ex.id]:
                state = await self._state(ex)
                state.finalize_vanished(_ms_now())
                await self._persist_state(await self.store.get_execution(ex.id), state)
            await self.bus.publish("execution", id=ex.id)
        for env_id in envs:
            await self.request_schedule(env_id)

    def ack(self, execution_id: str, seq: int) -> Ack:
        return Ack(execution_id=execution_id, seq=seq)

    # ------------------------------------------------------------------ presenting

    def to_api(self, ex: Execution, env_name: str) -> dict[str, Any]:
        """The execution in the shape of Testkube's TestWorkflowExecution (reference §5.1)."""
        result = dict(ex.result or {})
        if not result:
            result = {"status": ex.status, "predictedStatus": ex.status, "steps": {}}
        result["status"] = ex.status
        return {
            "id": ex.id,
            "groupId": ex.group_id,
            "name": ex.name,
            "number": ex.number,
            "namespace": ex.namespace,
            "environment": env_name,
            "runnerId": ex.agent_id,
            "runner": ex.agent_name,
            "runnerLabels": ex.agent_labels or {},
            "runnerTarget": ex.target or {},
            "queueReason": ex.queue_reason,
            "scheduledAt": iso(ex.scheduled_at),
            "assignedAt": iso(ex.assigned_at),
            "statusAt": iso(ex.status_at),
            "signature": ex.signature or [],
            "result": result,
            "output": ex.output or [],
            "reports": ex.reports or [],
            "workflow": {
                "name": ex.workflow_name,
                "labels": (ex.workflow.get("metadata") or {}).get("labels", {}),
            },
            "tags": ex.tags or {},
            "runningContext": ex.running_context or {},
            "configParams": {k: {"value": v} for k, v in (ex.config or {}).items()},
            "parentExecutionIds": ex.parent_ids or [],
        }

    def to_summary(self, ex: Execution) -> dict[str, Any]:
        result = ex.result or {}
        return {
            "id": ex.id,
            "groupId": ex.group_id,
            "name": ex.name,
            "number": ex.number,
            "runnerId": ex.agent_id,
            "runner": ex.agent_name,
            "scheduledAt": iso(ex.scheduled_at),
            "statusAt": iso(ex.status_at),
            "result": {
                "status": ex.status,
                "predictedStatus": result.get("predictedStatus", ex.status),
                "duration": result.get("duration"),
                "durationMs": result.get("durationMs"),
                "queuedAt": result.get("queuedAt"),
                "startedAt": result.get("startedAt"),
                "finishedAt": result.get("finishedAt"),
            },
            "workflow": {"name": ex.workflow_name},
            "tags": ex.tags or {},
            "queueReason": ex.queue_reason,
        }


def failed_steps(
    signature: Sequence[Mapping[str, Any]], result: Mapping[str, Any]
) -> list[tuple[str, str, str]]:
    """(ref, name, status) of every signature node that did not pass or get skipped."""
    steps = result.get("steps") or {}
    out: list[tuple[str, str, str]] = []
    stack = list(signature)
    while stack:
        node = stack.pop(0)
        status = str((steps.get(node.get("ref")) or {}).get("status") or "")
        if status in ("failed", "timeout", "aborted", "canceled"):
            out.append(
                (
                    str(node.get("ref")),
                    str(node.get("name") or node.get("category") or node.get("ref")),
                    status,
                )
            )
        stack.extend(node.get("children") or [])
    return out


def events_key(execution_id: str) -> str:
    return f"executions/{execution_id}/events.jsonl.gz"


def artifact_key(execution_id: str, name: str) -> str:
    return f"executions/{execution_id}/artifacts/{name}"


def _concurrency(ex: Execution) -> dict[str, Any]:
    spec = (ex.workflow or {}).get("spec") or {}
    value = spec.get("concurrency") or {}
    return value if isinstance(value, dict) else {}


def _concurrency_limit(ex: Execution) -> int:
    try:
        return max(0, int(_concurrency(ex).get("max") or 0))
    except (TypeError, ValueError):
        return 0


def _concurrency_key(ex: Execution) -> str:
    group = _concurrency(ex).get("group")
    return f"group {group}" if group else f"workflow {ex.workflow_name}"


def _cancel_in_progress(ex: Execution) -> bool:
    return bool(_concurrency(ex).get("cancelInProgress"))


def _ms_now() -> int:
    return int(time.time() * 1000)


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def _parse_iso(text: Any) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


__all__ = [
    "ExecutionService",
    "RequestError",
    "Target",
    "artifact_key",
    "events_key",
    "from_ms",
    "target_matches",
]

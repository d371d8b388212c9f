"""The agent daemon: one outgoing WebSocket to the control plane, a durable outbox, a runtime.

Loop: connect (jittered exponential back-off, capped), say hello with the executions it still holds,
reconcile with the server's acknowledgements, then at once run what it is assigned and stream every
event — written to the outbox first, dropped only when acknowledged. After any disconnect or restart
it replays from the server's last acknowledged seq; an execution that was running when the agent
died is re-attached through the runtime (or, when it cannot continue, ends as aborted).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import random
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from shoal import __version__
from shoal.agent._outbox import Outbox
from shoal.client import AsyncClient, ClientError
from shoal.execution import ExecutionHandle, ExecutionJob, LocalRuntime, Runtime
from shoal.protocol import (
    Accepted,
    Ack,
    Assignment,
    Control,
    EventBatch,
    Heartbeat,
    HeldExecution,
    Hello,
    ResourcesChanged,
    Welcome,
    server_message_adapter,
)
from shoal.workflow import ExecutionContext, Plan, WorkflowError, compile_workflow
from shoal.workflow._status import ExecutionEvent

log = logging.getLogger("shoal.agent")

BATCH_EVENTS = 500
FLUSH_INTERVAL_S = 0.05
WINDOW_EVENTS = 10_000  # unacknowledged events in flight per execution (flow control)


@dataclass(slots=True)
class AgentConfig:
    server: str
    token: str
    name: str
    labels: dict[str, str] = field(default_factory=dict)
    state_dir: Path = field(default_factory=lambda: Path.home() / ".shoal" / "agent")
    max_concurrent: int = 4
    backoff_max_s: float = 30.0
    capabilities: list[str] = field(default_factory=lambda: ["local"])


@dataclass(eq=False)
class _Running:
    execution_id: str
    handle: ExecutionHandle | None = None
    task: asyncio.Task[None] | None = None
    stop_requested: bool = False


class Agent:
    def __init__(self, config: AgentConfig, runtime: Runtime | None = None) -> None:
        self.config = config
        config.state_dir.mkdir(parents=True, exist_ok=True)
        self.outbox = Outbox(config.state_dir / "outbox.db")
        self.runtime: Runtime = runtime or LocalRuntime(home=config.state_dir)
        self.api = AsyncClient(config.server, config.token)
        self._ws: ClientConnection | None = None
        self._send_lock = asyncio.Lock()
        self._running: dict[str, _Running] = {}
        self._sent: dict[str, int] = {}  # execution id -> highest seq sent on this connection
        self._acked: dict[str, int] = {}  # execution id -> highest seq the server acknowledged
        self._wake_sender = asyncio.Event()
        self._connected = asyncio.Event()
        self.agent_id: str | None = None
        self.refused = False  # the server refused the token: run() returned for good
        self.orphaned = False  # its state directory was removed: run() returned for good

    # ------------------------------------------------------------------ lifecycle

    async def run(self, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        await self._reattach_held()
        sender = asyncio.create_task(self._sender(), name="agent-sender")
        try:
            attempt = 0
            while not stop.is_set():
                try:
                    await self._session(stop)
                    attempt = 0
                except (OSError, ConnectionClosed, InvalidStatus, TimeoutError) as exc:
                    if isinstance(exc, InvalidStatus) and exc.response.status_code in (401, 403):
                        # Retrying cannot help: stop, so a supervisor or a pipeline sees the failure.
                        log.error("the server refused the agent token (HTTP %s)", exc.response.status_code)
                        self.refused = True
                        break
                    else:
                        log.info("connection to %s lost: %s", self.config.server, exc)
                self._connected.clear()
                self._ws = None
                if stop.is_set():
                    break
                if not self.config.state_dir.is_dir():
                    # Whoever gave it this directory (an ephemeral cluster's sandbox) has removed it:
                    # nothing it could deliver would be kept, and nobody will stop it otherwise.
                    log.error("the agent's state directory %s is gone: exiting", self.config.state_dir)
                    self.orphaned = True
                    break
                attempt += 1
                delay = min(self.config.backoff_max_s, 0.2 * 2 ** min(attempt, 10)) * random.uniform(0.5, 1.0)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
            for running in list(self._running.values()):
                if running.task is not None:
                    running.task.cancel()
            await asyncio.gather(
                *(r.task for r in self._running.values() if r.task is not None), return_exceptions=True
            )
            await self.api.close()
            self.outbox.close()

    async def _session(self, stop: asyncio.Event) -> None:
        url = (
            self.config.server.replace("http://", "ws://").replace("https://", "wss://") + "/v1/agent/connect"
        )
        headers = {"Authorization": f"Bearer {self.config.token}"}
        async with connect(url, additional_headers=headers, max_size=None, open_timeout=10) as ws:
            self._ws = ws
            held = [HeldExecution(execution_id=h.id, next_seq=h.next_seq) for h in self.outbox.held()]
            hello = Hello(
                name=self.config.name,
                labels=self.config.labels,
                capabilities=self.config.capabilities,
                version=__version__,
                executions=held,
                max_concurrent=self.config.max_concurrent,
            )
            await ws.send(hello.model_dump_json())
            welcome = server_message_adapter.validate_json(await asyncio.wait_for(ws.recv(), timeout=30))
            if not isinstance(welcome, Welcome):
                raise ConnectionError("expected a welcome message")
            self.agent_id = welcome.agent_id
            await self._on_welcome(welcome)
            self._connected.set()
            self._wake_sender.set()
            heart = asyncio.create_task(self._heartbeat(welcome.heartbeat_interval_s))
            stopper = asyncio.create_task(stop.wait())
            try:
                while True:
                    recv = asyncio.create_task(ws.recv())
                    done, _ = await asyncio.wait({recv, stopper}, return_when=asyncio.FIRST_COMPLETED)
                    if stopper in done:
                        recv.cancel()
                        await ws.close()
                        return
                    await self._on_message(recv.result())
            finally:
                heart.cancel()
                stopper.cancel()

    async def _heartbeat(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self._send(Heartbeat(running=sorted(self._running)))

    async def _send(self, message: Any) -> bool:
        ws = self._ws
        if ws is None:
            return False
        try:
            async with self._send_lock:
                await ws.send(message.model_dump_json())
            return True
        except ConnectionClosed:
            return False

    # ------------------------------------------------------------------ server messages

    async def _on_welcome(self, welcome: Welcome) -> None:
        for execution_id in welcome.forget:
            self._forget(execution_id)
        self._sent = {}
        for h in self.outbox.held():
            acked = welcome.acked.get(h.id, 0)
            if acked:
                self.outbox.ack(h.id, acked)
            self._sent[h.id] = acked
            self._acked[h.id] = acked
        await self._sync_resources(welcome.resources_revision)

    async def _sync_resources(self, revision: int) -> None:
        local = int(self.outbox.get_value("revision", "0") or 0)
        if revision <= local:
            return
        try:
            changes = await self.api.agent_resources(local)
        except ClientError as exc:
            log.warning("resource sync failed: %s", exc)
            return
        self.outbox.sync_resources(changes["resources"], int(changes["revision"]))

    async def _on_message(self, text: str | bytes) -> None:
        message = server_message_adapter.validate_json(text)
        if isinstance(message, Ack):
            self._acked[message.execution_id] = max(self._acked.get(message.execution_id, 0), message.seq)
            await asyncio.to_thread(self.outbox.ack, message.execution_id, message.seq)
            self._maybe_forget(message.execution_id)
            self._wake_sender.set()
        elif isinstance(message, Assignment):
            await self._start(message)
        elif isinstance(message, Control):
            running = self._running.get(message.execution_id)
            if running is not None and running.handle is not None:
                running.stop_requested = True
                await self.runtime.stop(running.handle)
        elif isinstance(message, ResourcesChanged):
            await self._sync_resources(message.revision)

    # ------------------------------------------------------------------ executions

    async def _start(self, a: Assignment) -> None:
        if a.execution_id in self._running or self.outbox.get(a.execution_id) is not None:
            await self._send(Accepted(execution_id=a.execution_id))
            return
        meta = {
            "name": a.name,
            "number": a.number,
            "workflow": (a.workflow.get("metadata") or {}).get("name"),
        }
        self.outbox.hold(a.execution_id, meta)
        await self._send(Accepted(execution_id=a.execution_id))
        running = _Running(a.execution_id)
        self._running[a.execution_id] = running
        running.task = asyncio.create_task(self._execute(running, a), name=f"exec-{a.execution_id}")

    async def _execute(self, running: _Running, a: Assignment) -> None:
        context = ExecutionContext(
            id=a.execution_id,
            name=a.name,
            number=a.number,
            group_id=a.group_id,
            scheduled_at=a.scheduled_at,
            tags=dict(a.tags),
            running_context=dict(a.running_context),
            organization=a.organization,
            environment=a.environment,
        )
        try:
            compiled = compile_workflow(a.workflow, a.templates, a.config, context)
        except WorkflowError as exc:
            message = "; ".join(str(p) for p in exc.problems) or str(exc)
            await self._emit(a.execution_id, self._failure_events(a.execution_id, message))
            self._finish(a.execution_id)
            return
        secrets = dict(compiled.secrets)
        if a.execution_token:
            # For `execute` steps: the toolkit starts child executions through the control plane. One
            # opaque value, so only it is masked in logs (not the environment name or the URL).
            secrets["SHOAL_CONTROL_PLANE"] = encode_control_plane(
                self.config.server,
                a.execution_token,
                a.environment,
                [*a.parent_execution_ids, a.execution_id],
            )
        job = ExecutionJob(
            execution_id=a.execution_id,
            plan=compiled.plan,
            secrets=secrets,
            name=a.name,
            number=a.number,
            tags=dict(a.tags),
        )
        meta = self.outbox.get(a.execution_id)
        if meta is not None:
            self.outbox.update_meta(a.execution_id, {**meta.meta, "plan": compiled.plan.to_dict()})
        try:
            running.handle = await self.runtime.start(job)
        except Exception as exc:  # the runtime could not even start: report it as the init failure
            log.exception("runtime failed to start %s", a.execution_id)
            await self._emit(a.execution_id, self._failure_events(a.execution_id, f"cannot start: {exc}"))
            self._finish(a.execution_id)
            return
        await self._follow(running, from_seq=1)

    def _failure_events(self, execution_id: str, message: str) -> list[dict[str, Any]]:
        seq = self.outbox.next_seq(execution_id)
        ts = int(time.time() * 1000)
        return [
            ExecutionEvent(seq=seq, ts=ts, type="initialization", status="failed", details=message).to_dict(),
            ExecutionEvent(seq=seq + 1, ts=ts, type="status", status="failed", details=message).to_dict(),
        ]

    async def _follow(self, running: _Running, from_seq: int) -> None:
        """Move the runtime's events into the outbox in batches, flushing at least every 50 ms."""
        assert running.handle is not None
        handle = running.handle
        queue: asyncio.Queue[ExecutionEvent | None] = asyncio.Queue(maxsize=BATCH_EVENTS * 4)

        async def pump() -> None:
            try:
                async for event in self.runtime.observe(handle, from_seq):
                    await queue.put(event)
            finally:
                await queue.put(None)

        reader = asyncio.create_task(pump(), name=f"observe-{running.execution_id}")
        buffer: list[dict[str, Any]] = []
        first_buffered = 0.0
        try:
            while True:
                timeout = (
                    None if not buffer else max(0.0, first_buffered + FLUSH_INTERVAL_S - time.monotonic())
                )
                try:
                    event = await asyncio.wait_for(queue.get(), timeout=timeout)
                except TimeoutError:
                    await self._emit(running.execution_id, buffer)
                    buffer = []
                    continue
                if event is None:
                    break
                if not buffer:
                    first_buffered = time.monotonic()
                buffer.append(event.to_dict())
                if len(buffer) >= BATCH_EVENTS:
                    await self._emit(running.execution_id, buffer)
                    buffer = []
            if buffer:
                await self._emit(running.execution_id, buffer)
                buffer = []
            await reader  # re-raises what the runtime's observer raised
            outcome = await self.runtime.wait(handle)
            await self._upload_artifacts(running.execution_id, outcome.execution)
        finally:
            reader.cancel()
            if buffer:
                await self._emit(running.execution_id, buffer)
        self._finish(running.execution_id)

    async def _emit(self, execution_id: str, events: list[dict[str, Any]]) -> None:
        await asyncio.to_thread(self.outbox.append, execution_id, events)
        self._wake_sender.set()

    async def _upload_artifacts(self, execution_id: str, execution: Mapping[str, Any]) -> None:
        base = self._artifacts_dir(execution_id, execution)
        for art in execution.get("artifacts") or []:
            name = str(art.get("name", ""))
            path = base / name
            if not name or not path.is_file():
                continue
            for attempt in range(5):
                try:
                    await self.api.upload_artifact(execution_id, name, path)
                    break
                except ClientError as exc:
                    log.warning("artifact upload %s failed (attempt %d): %s", name, attempt + 1, exc)
                    await asyncio.sleep(min(10.0, 0.5 * 2**attempt))

    def _artifacts_dir(self, execution_id: str, execution: Mapping[str, Any]) -> Path:
        where = execution.get("artifactsDir")
        if where:
            return Path(str(where))
        return self.config.state_dir / "executions" / execution_id / "artifacts"

    def _finish(self, execution_id: str) -> None:
        self._running.pop(execution_id, None)
        self.outbox.set_state(execution_id, "finished")
        self._maybe_forget(execution_id)

    def _maybe_forget(self, execution_id: str) -> None:
        held = self.outbox.get(execution_id)
        if held is None or held.state != "finished" or execution_id in self._running:
            return
        if self.outbox.unacked_count(execution_id) == 0:
            self._forget(execution_id)

    def _forget(self, execution_id: str) -> None:
        if execution_id in self._running:
            return
        self.outbox.forget(execution_id)
        self._sent.pop(execution_id, None)
        self._acked.pop(execution_id, None)
        shutil.rmtree(self.config.state_dir / "executions" / execution_id, ignore_errors=True)

    async def _reattach_held(self) -> None:
        """After a restart: continue every execution the outbox says was running."""
        for held in self.outbox.held():
            if held.state != "running":
                continue
            running = _Running(held.id)
            self._running[held.id] = running
            running.task = asyncio.create_task(self._resume(running, held.next_seq), name=f"resume-{held.id}")

    async def _resume(self, running: _Running, next_seq: int) -> None:
        handle = None
        with contextlib.suppress(Exception):
            handle = await self.runtime.attach(running.execution_id)
        if handle is None:
            ts = int(time.time() * 1000)
            event = ExecutionEvent(
                seq=next_seq, ts=ts, type="status", status="aborted", details="the agent lost this execution"
            )
            await self._emit(running.execution_id, [event.to_dict()])
            self._finish(running.execution_id)
            return
        running.handle = handle
        await self._follow(running, from_seq=next_seq)

    # ------------------------------------------------------------------ sending

    async def _sender(self) -> None:
        while True:
            await self._wake_sender.wait()
            self._wake_sender.clear()
            if not self._connected.is_set():
                continue
            for held in self.outbox.held():
                sent = max(self._sent.get(held.id, 0), held.acked_seq)
                while sent - max(self._acked.get(held.id, 0), held.acked_seq) < WINDOW_EVENTS:
                    batch = await asyncio.to_thread(self.outbox.pending, held.id, sent, BATCH_EVENTS)
                    if not batch:
                        break
                    ok = await self._send(EventBatch(execution_id=held.id, events=batch))
                    if not ok:
                        break
                    sent = int(batch[-1]["seq"])
                    self._sent[held.id] = sent


def encode_control_plane(server: str, token: str, environment: str, parents: list[str]) -> str:
    data = {"server": server, "token": token, "environment": environment, "parents": parents}
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode()


def plan_of(meta: Mapping[str, Any]) -> Plan | None:
    data = meta.get("plan")
    return Plan.from_dict(data) if isinstance(data, dict) else None

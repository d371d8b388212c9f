"""The lifecycle controller: level-triggered reconcile of every ``EphemeralCluster`` and pool.

Each pass reads the record, observes the world, performs **at most one side effect** and writes the
status with a compare-and-swap (a conflict means: re-read, decide again). Intent is durable before
effect: the external name, the resolved class and the absolute deadlines are stored before ``ensure``;
``TeardownRequested`` (sticky, with its reason) before ``delete``. ``Failed`` and ``Deprovisioned``
are written only once the provisioner reports the resource absent. Nothing is kept in memory that a
restart would need: timers are recomputed from the stored deadlines.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from croniter import croniter

from shoal.clusters._agents import set_agent_labels
from shoal.clusters._provisioner import (
    AgentInstall,
    CrashHook,
    Observation,
    OwnerTags,
    Provisioner,
    ProvisionerError,
    State,
    no_crash,
)
from shoal.clusters._spec import (
    BUILTIN_CLASSES,
    FAILURE_REASONS,
    ClassSpec,
    PoolSpec,
    SpecError,
    condition,
    is_true,
    iso,
    lifetime_deadline,
    override_parameters,
    parse_class,
    parse_cluster,
    parse_duration,
    parse_pool,
    parse_time,
    set_condition,
)
from shoal.store import Conflict, ExecutionFilter, NotFound, Store, now
from shoal.store._cluster_models import ClusterPoolRow, ClusterRow
from shoal.store._clusters import ClusterStore, aware

log = logging.getLogger("shoal.clusters")

LEASE_NAME = "clusters"
SPARE_LABEL = "shoal.dev/spare"  # on the agent of a pool's unclaimed spare
TERMINAL_EXECUTION = ("passed", "failed", "aborted", "canceled")


class Sealer(Protocol):
    def seal(self, value: Any) -> str: ...

    def unseal(self, token: str) -> Any: ...


@dataclass(slots=True)
class ControllerSettings:
    controller_id: str = ""  # ownership tag on every external object; default: derived from the organisation
    holder: str = field(default_factory=lambda: "ctl-" + secrets.token_hex(4))
    server_url: str = ""  # where installed agents connect
    poll_interval_s: float = 1.0
    lease_ttl_s: float = 15.0
    concurrency: int = 32
    observe_interval_s: float = 15.0  # re-observe Ready clusters this often
    retry_base_s: float = 0.5
    retry_max_s: float = 30.0
    pool_interval_s: float = 1.0
    reap_interval_s: float = 300.0
    reap_grace_s: float = 600.0
    history_s: float = 7 * 86400.0  # finished records kept this long, then removed


@dataclass(slots=True)
class Pass:
    """What one reconcile pass did (for tests, benchmarks and logs)."""

    cluster: str
    phase: str
    action: str = ""
    wrote: bool = False
    again: bool = False  # due again at once: the next pass runs on the row as written, without a read


class ClusterController:
    """Owns the reconcile loop. ``provisioners`` maps a class's ``provisioner`` to its plug-in."""

    def __init__(
        self,
        store: Store,
        sealer: Sealer,
        provisioners: dict[str, Provisioner],
        settings: ControllerSettings | None = None,
        *,
        crash: CrashHook = no_crash,
        clock: Callable[[], datetime] = now,
    ) -> None:
        self.store = store
        self.clusters = ClusterStore(store)
        self.sealer = sealer
        self.provisioners = provisioners
        self.settings = settings or ControllerSettings()
        self.crash = crash
        self.clock = clock
        self._wake = asyncio.Event()
        self._busy: set[str] = set()
        self._last_pool_sync = 0.0
        self._last_reap = 0.0
        self.is_leader = False
        self.passes = 0
        self._classes: dict[tuple[str, str], tuple[datetime, ClassSpec]] = {}

    # ------------------------------------------------------------------ loop

    async def controller_id(self) -> str:
        if not self.settings.controller_id:
            org = await self.store.ensure_organization("default")
            self.settings.controller_id = "shoal-" + org.id[:12]
        return self.settings.controller_id

    def wake(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Reconcile until ``stop`` is set; only the holder of the lease writes."""
        from shoal.clusters._reaper import Reaper

        stop = stop or asyncio.Event()
        await self.controller_id()
        loop = asyncio.get_running_loop()
        reaper = Reaper(self)
        # Clusters are reconciled in tasks of their own: a slow pass (an agent that takes its time to
        # stop, a script's long call) never holds up the passes of the other clusters.
        in_flight: set[asyncio.Task[Any]] = set()
        sem = asyncio.Semaphore(self.settings.concurrency)
        renew_at = 0.0
        try:
            while not stop.is_set():
                try:
                    if not self.is_leader or loop.time() >= renew_at:
                        # renewed a third of its time-to-live ahead, not on every round: a round is
                        # cheap, a write competes with the passes' own
                        self.is_leader = await self.clusters.acquire_lease(
                            LEASE_NAME, self.settings.holder, self.settings.lease_ttl_s
                        )
                        renew_at = loop.time() + self.settings.lease_ttl_s / 3
                    if self.is_leader:
                        await self._start_due(in_flight, sem)
                        if loop.time() - self._last_pool_sync >= self.settings.pool_interval_s:
                            self._last_pool_sync = loop.time()
                            await self.sync_pools()
                        if loop.time() - self._last_reap >= self.settings.reap_interval_s:
                            self._last_reap = loop.time()
                            await reaper.sweep()
                except Exception:  # one failed pass is logged; the next one starts from the store again
                    log.exception("cluster controller pass failed")
                delay = self.settings.poll_interval_s
                if self.is_leader:
                    due = await self._next_due_delay()
                    if due is not None:
                        if due <= 0 and in_flight:
                            # what is due may be what is running (its next due time is written when its
                            # pass ends): look again soon rather than at once
                            due = min(self.settings.poll_interval_s, 0.05)
                        delay = min(delay, max(due, 0.0))
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(_first(stop, self._wake), timeout=delay)
        finally:
            if in_flight:  # passes are short and each ends with its own write: let them finish
                await asyncio.gather(*in_flight, return_exceptions=True)
            if self.is_leader:
                with contextlib.suppress(Exception):
                    await self.clusters.release_lease(LEASE_NAME, self.settings.holder)

    async def _start_due(self, in_flight: set[asyncio.Task[Any]], sem: asyncio.Semaphore, limit: int = 500) -> None:
        """Start a reconcile task for every due cluster that has none running."""
        for row in await self.clusters.due_rows(self.clock(), limit):
            if row.id in self._busy or len(in_flight) >= limit:
                continue

            async def one(row: ClusterRow = row) -> None:
                try:
                    async with sem:
                        self._busy.discard(row.id)  # reconcile() takes the mark again, with no await between
                        # Read afresh: a task of this cluster may have ended (and written) after the due
                        # rows were read, and a stale row would decide (and act) again on an old state.
                        await self.reconcile(row.id)
                except Exception:  # logged; the next round starts from the store again
                    log.exception("cluster %s: reconcile failed", row.name)

            self._busy.add(row.id)  # reserved now, so the next round does not start it twice
            task = asyncio.create_task(one())
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)

    async def _next_due_delay(self) -> float | None:
        at = await self.clusters.next_due_at()
        if at is None:
            return None
        return (at - self.clock()).total_seconds()

    async def reconcile_due(self, limit: int = 500) -> int:
        """Reconcile every cluster that is due now (several at once, never one twice at once)."""
        rows = [r for r in await self.clusters.due_rows(self.clock(), limit) if r.id not in self._busy]
        if not rows:
            return 0
        sem = asyncio.Semaphore(self.settings.concurrency)

        async def one(row: ClusterRow) -> None:
            async with sem:
                await self.reconcile(row.id, row)

        await asyncio.gather(*(one(r) for r in rows))
        return len(rows)

    async def settle(self, max_passes: int = 200) -> None:
        """Reconcile until nothing is due now (tests and benchmarks drive the controller with this)."""
        for _ in range(max_passes):
            await self.sync_pools()
            if not await self.reconcile_due():
                return

    async def reconcile(self, cluster_id: str, row: ClusterRow | None = None) -> Pass | None:
        """Passes for one cluster while it is due at once (each pass: at most one side effect, then a
        compare-and-swap write); after a write conflict the row is read again and decided afresh."""
        if cluster_id in self._busy:
            return None
        self._busy.add(cluster_id)
        result: Pass | None = None
        try:
            conflicts = 0
            for _ in range(12):
                if row is None:
                    row = await self.clusters.get_cluster_by_id(cluster_id)
                    if row is None:
                        return result
                try:
                    result = await self._reconcile(row)
                    self.passes += 1
                except Conflict:
                    conflicts += 1
                    if conflicts > 5:
                        return result
                    row = None
                    continue
                if not result.again:
                    return result
            return result
        finally:
            self._busy.discard(cluster_id)

    # ------------------------------------------------------------------ one pass

    async def _reconcile(self, row: ClusterRow) -> Pass:
        t = self.clock()
        st: dict[str, Any] = dict(row.status or {})
        st.setdefault("conditions", [])
        if row.finished:
            return await self._finished(row, t)
        if not row.external_name:
            return await self._record_intent(row, st, t)
        cls = ClassSpec.model_validate(st["resolved"]["class"])
        prov = self._provisioner(st)
        reason = await self._teardown_reason(row, st, cls, t)
        if reason and row.phase != "Deprovisioning":
            return await self._start_teardown(row, st, reason, "", t)
        if row.phase == "Deprovisioning":
            return await self._deprovision(row, st, cls, prov, t)
        if row.phase == "Pending":
            return await self._admit(row, st, cls, t)
        if row.phase == "Provisioning":
            return await self._provision(row, st, cls, prov, t)
        return await self._ready(row, st, cls, prov, t)

    def _provisioner(self, st: dict[str, Any]) -> Provisioner:
        name = st["resolved"]["provisioner"]
        prov = self.provisioners.get(name)
        if prov is None:
            raise ProvisionerError(f"no provisioner {name!r} in this controller")
        return prov

    async def _write(
        self,
        row: ClusterRow,
        st: dict[str, Any],
        t: datetime,
        *,
        action: str = "",
        requeue_s: float | None = 0.0,
        credentials: tuple[str, datetime | None] | None = None,
        **columns: Any,
    ) -> Pass:
        phase = columns.get("phase", row.phase)
        st["phase"] = phase
        if requeue_s is None:
            nxt = t + timedelta(seconds=self.settings.history_s)
        else:
            nxt = t + timedelta(seconds=requeue_s)
        await self.clusters.write_cluster(
            row.id, row.resource_version, credentials=credentials, status=st, next_reconcile_at=nxt, **columns
        )
        # The row as written: a pass that is due at once continues from it without reading it again.
        row.status, row.next_reconcile_at = st, nxt
        row.resource_version += 1
        for key, value in columns.items():
            setattr(row, key, value)
        self.crash(f"recorded:{action or phase}")
        return Pass(row.name, phase, action, True, again=requeue_s == 0.0 and not row.finished)

    async def _effect(self, verb: str, fn: Callable[[], Any]) -> Any:
        """Run one side effect between two crash points (``before:<verb>``, ``after:<verb>``)."""
        self.crash(f"before:{verb}")
        result = await fn()
        self.crash(f"after:{verb}")
        return result

    # -- Pending: nothing external yet --------------------------------------------------------------

    async def _record_intent(self, row: ClusterRow, st: dict[str, Any], t: datetime) -> Pass:
        """Validate, resolve the class, and store the external name and the deadlines (no side effect)."""
        try:
            spec = parse_cluster(row.spec)
            cls = await self.resolve_class(row.env_id, row.class_name)
            params = override_parameters(cls, spec.parameters)
            prov = self.provisioners.get(cls.provisioner)
            if prov is None:
                raise SpecError(f"provisioner {cls.provisioner!r} is not available in this controller")
            problems = prov.validate(params)
            if problems:
                raise SpecError("; ".join(problems))
        except SpecError as exc:
            message = "; ".join([str(exc), *exc.problems])
            set_condition(st, "Accepted", False, "InvalidSpec", message, t)
            st["message"] = message
            return await self._write(
                row, st, t, action="reject", phase="Failed", finished=True, requeue_s=None
            )
        created = aware(row.created_at) or t
        lifetime = parse_duration(spec.lifetime)
        expires = lifetime_deadline(created, lifetime, cls)
        ext = external_name(row)
        st.update(
            {
                "externalName": ext,
                "expiresAt": iso(expires),
                "resolved": {
                    "provisioner": cls.provisioner,
                    "parameters": params,
                    "class": cls.model_dump(mode="json"),
                },
                "attempts": {"provision": 0, "deprovision": 0},
            }
        )
        if not spec.poolRef and cls.quota.maxActive is None and cls.quota.maxConcurrentOps is None:
            # Nothing to wait for: the intent and the admission are one write (still before any effect).
            set_condition(st, "Accepted", True, "Admitted", "", t)
            st["provisionStartedAt"] = iso(t)
            return await self._write(
                row, st, t, action="admit", external_name=ext, expires_at=expires, phase="Provisioning"
            )
        return await self._write(
            row, st, t, action="record", external_name=ext, expires_at=expires, phase="Pending"
        )

    async def resolve_class(self, env_id: str, name: str) -> ClassSpec:
        key = (env_id, name)
        cached = self._classes.get(key)
        if cached is not None and cached[0] > self.clock():
            return cached[1]
        cls = await self._load_class(env_id, name)
        self._classes[key] = (self.clock() + timedelta(seconds=1), cls)
        return cls

    async def _load_class(self, env_id: str, name: str) -> ClassSpec:
        stored = await self.clusters.get_class(env_id, name)
        if stored is not None:
            return parse_class(stored.spec)
        if name in BUILTIN_CLASSES:
            return parse_class(BUILTIN_CLASSES[name])
        raise SpecError(f"cluster class {name!r} not found")

    async def _admit(self, row: ClusterRow, st: dict[str, Any], cls: ClassSpec, t: datetime) -> Pass:
        spec = parse_cluster(row.spec)
        if spec.poolRef:
            bound = await self._bind(row, st, spec.poolRef, t)
            if bound is not None:
                return bound
            if not spec.fallbackToFresh:
                set_condition(
                    st, "Accepted", False, "PoolExhausted", f"no ready spare in pool {spec.poolRef}", t
                )
                return await self._write(row, st, t, action="wait-pool", requeue_s=self._jitter(0.5))
        quota = cls.quota
        if quota.maxActive is not None:
            active = await self.clusters.count_active(row.env_id, row.class_name, exclude=row.id)
            if active >= quota.maxActive:
                set_condition(
                    st,
                    "Accepted",
                    False,
                    "QuotaExceeded",
                    f"{active} of {quota.maxActive} clusters active",
                    t,
                )
                return await self._write(row, st, t, action="wait-quota", requeue_s=self._jitter(2.0))
        if quota.maxConcurrentOps is not None:
            busy = await self.clusters.count_in_phases(
                row.env_id, row.class_name, ("Provisioning", "Deprovisioning")
            )
            if busy >= quota.maxConcurrentOps:
                set_condition(
                    st,
                    "Accepted",
                    False,
                    "QuotaExceeded",
                    f"{busy} operations under way (max {quota.maxConcurrentOps})",
                    t,
                )
                return await self._write(row, st, t, action="wait-ops", requeue_s=self._jitter(1.0))
        set_condition(st, "Accepted", True, "Admitted", "", t)
        st["provisionStartedAt"] = iso(t)
        return await self._write(row, st, t, action="admit", phase="Provisioning")

    def _bound_status(self, st: dict[str, Any], member: ClusterRow, t: datetime) -> dict[str, Any]:
        bound = {**st, "boundMember": member.name, "memberId": member.id, "provisionStartedAt": iso(t)}
        set_condition(bound, "Accepted", True, "PoolMemberBound", f"bound to {member.name}", t)
        bound["phase"] = "Provisioning"
        return bound

    async def _bind(self, row: ClusterRow, st: dict[str, Any], pool: str, t: datetime) -> Pass | None:
        """Adopt the member already claimed for this request, or claim the oldest ready spare: the
        member's compare-and-swap and the claim's own (its resource_version) in one transaction, so a
        member goes to one claim and a claim gets one member, however many controllers race."""
        adopted = [m for m in await self.clusters.claimed_by(row.id) if not m.finished]
        if len(adopted) > 1:
            log.error("cluster %s: %d pool members claimed for it; using the oldest", row.name, len(adopted))
        if adopted:
            member = sorted(adopted, key=lambda m: m.created_at)[0]
            return await self._write(
                row, self._bound_status(st, member, t), t, action="bind", phase="Provisioning"
            )
        claim_life = parse_duration(parse_cluster(row.spec).lifetime)
        for member in await self.clusters.available_members(row.env_id, pool):
            mst = member.status or {}
            cls = ClassSpec.model_validate(mst["resolved"]["class"])
            cap = lifetime_deadline(
                aware(member.created_at) or t,
                None,
                cls.model_copy(update={"defaultLifetime": cls.maxLifetime}),
            )
            claim_exp = aware(row.expires_at) or (t + timedelta(seconds=claim_life or 3600))
            expires = min(claim_exp, cap)
            bound = self._bound_status(st, member, t)
            self.crash("before:claim")
            if await self.clusters.claim_member(
                member, row, expires, status=bound, phase="Provisioning", next_reconcile_at=t
            ):
                row.status, row.phase, row.next_reconcile_at = bound, "Provisioning", t
                row.resource_version += 1
                self.crash("recorded:bind")
                return Pass(row.name, "Provisioning", "bind", True, again=True)
        return None

    # -- Provisioning ---------------------------------------------------------------------------------

    async def _target(self, row: ClusterRow, st: dict[str, Any]) -> tuple[ClusterRow, str] | None:
        """For a pool claim the member (its record and external name); else the cluster itself."""
        member_id = st.get("memberId")
        if not member_id:
            return row, str(row.external_name)
        member = await self.clusters.get_cluster_by_id(member_id)
        if member is None or member.external_name is None:
            return None
        return member, member.external_name

    async def _provision(
        self, row: ClusterRow, st: dict[str, Any], cls: ClassSpec, prov: Provisioner, t: datetime
    ) -> Pass:
        params = st["resolved"]["parameters"]
        target = await self._target(row, st)
        if target is None:
            return await self._start_teardown(row, st, "Lost", "the pool member is gone", t)
        member, ext = target
        started = parse_time(st.get("provisionStartedAt")) or t
        timeout = cls.seconds("provisionTimeout")
        timed_out = timeout is not None and t > started + timedelta(seconds=timeout)
        if member is not row:
            if member.finished or member.teardown or member.phase == "Deprovisioning":
                return await self._start_teardown(row, st, "Lost", f"pool member {member.name} went away", t)
            if member.phase != "Ready":
                if timed_out:
                    return await self._start_teardown(row, st, "ProvisionFailed", "provision timeout", t)
                return await self._write(row, st, t, action="wait-member", requeue_s=0.2)
            params = (member.status or {}).get("resolved", {}).get("parameters", params)
        else:
            obs = await self._observe(prov, ext, params)
            st["observed"] = {"state": obs.state.value, "message": obs.message, "at": iso(t)}
            if obs.state == State.FAILED:
                return await self._start_teardown(
                    row, st, "ProvisionFailed", obs.message or "provisioner failed", t
                )
            if timed_out:
                return await self._start_teardown(row, st, "ProvisionFailed", "provision timeout", t)
            if obs.state == State.ABSENT or (obs.state == State.CREATING and obs.handle.get("retryEnsure")):
                attempts = dict(st.get("attempts") or {})
                if attempts.get("provision", 0) >= cls.maxProvisionAttempts:
                    return await self._start_teardown(
                        row, st, "ProvisionFailed", f"still absent after {attempts['provision']} attempts", t
                    )
                tags = self._tags(row, cls)
                try:
                    await self._effect("ensure", lambda: prov.ensure(ext, params, tags))
                except ProvisionerError as exc:
                    if exc.permanent:
                        return await self._start_teardown(row, st, "ProvisionFailed", str(exc), t)
                    return await self._retry(row, st, t, "ensure", exc)
                attempts["provision"] = attempts.get("provision", 0) + 1
                st["attempts"] = attempts
                set_condition(st, "Provisioned", False, "Creating", "ensure issued", t)
                return await self._write(row, st, t, action="ensure", requeue_s=0.0)
            if obs.state != State.READY:
                return await self._write(row, st, t, action="wait", requeue_s=self._poll(st))
            if not is_true(st, "Provisioned"):
                set_condition(st, "Provisioned", True, "Ready", obs.message, t)
        install = cls.installAgent
        minted: tuple[str, datetime | None] | None = None
        if not is_true(st, "CredentialsReady"):
            try:
                minted = await self._effect("credentials", lambda: self._mint(row, prov, ext, params, cls, t))
            except ProvisionerError as exc:
                return await self._retry(row, st, t, "credentials", exc)
            set_condition(st, "CredentialsReady", True, "Minted", "kubeconfig stored sealed", t)
            st["credentialsRef"] = f"clusters/{row.name}/kubeconfig"
            st["credentialsExpireAt"] = iso(minted[1])
            st["credentialsMintedAt"] = iso(t)
            if install:  # the agent is the next effect: record this one first
                return await self._write(row, st, t, action="credentials", requeue_s=0.0, credentials=minted)
        if install:
            agent = st.get("agent") or {}
            spare_agent = (member.status or {}).get("agent") or {} if member is not row else {}
            if not agent.get("installedAt") and spare_agent.get("installedAt") and not spare_agent.get("removedAt"):
                # The spare's agent is already running: the claim only gives it the claim's labels.
                labels = self._agent_labels(row, cls)
                try:
                    await self._effect(
                        "relabel_agent", lambda: self._relabel_agent(row.env_id, spare_agent["name"], labels)
                    )
                except NotFound:
                    return await self._start_teardown(row, st, "Lost", "the spare's agent is gone", t)
                st["agent"] = {
                    "name": spare_agent["name"],
                    "installedAt": iso(t),
                    "target": ext,
                    "token": spare_agent.get("token") or f"shoal-cluster:{member.id}",
                    "labels": labels,
                    "adopted": True,
                }
                return await self._write(row, st, t, action="adopt_agent", requeue_s=0.0)
            if not agent.get("installedAt"):
                try:
                    name = await self._effect(
                        "install_agent", lambda: self._install_agent(row, prov, ext, params, cls)
                    )
                except ProvisionerError as exc:
                    if exc.permanent:
                        return await self._start_teardown(row, st, "ProvisionFailed", str(exc), t)
                    return await self._retry(row, st, t, "install_agent", exc)
                st["agent"] = {
                    "name": name,
                    "installedAt": iso(t),
                    "target": ext,
                    "token": f"shoal-cluster:{row.id}",
                    "labels": self._agent_labels(row, cls),
                }
                return await self._write(row, st, t, action="install_agent", requeue_s=0.1)
            if not await self._agent_online(row.env_id, agent["name"]):
                if timed_out:
                    return await self._start_teardown(
                        row, st, "ProvisionFailed", "the agent never came online", t
                    )
                return await self._write(row, st, t, action="wait-agent", requeue_s=0.1)
            set_condition(st, "AgentReady", True, "Online", f"agent {agent['name']} is online", t)
        st["readyAt"] = iso(t)
        st.setdefault("lastActivityAt", iso(t))
        set_condition(st, "Ready", True, "Ready", "", t)
        extra: dict[str, Any] = {}
        if row.member_of and row.pool_state == "provisioning":
            extra["pool_state"] = "available"
        return await self._write(
            row,
            st,
            t,
            action="ready",
            phase="Ready",
            requeue_s=self._ready_requeue(row, st, cls, t),
            credentials=minted,
            **extra,
        )

    async def _observe(self, prov: Provisioner, ext: str, params: dict[str, Any]) -> Observation:
        try:
            return await prov.observe(ext, params)
        except ProvisionerError as exc:
            if exc.permanent:
                return Observation(State.FAILED, str(exc))
            return Observation(State.DEGRADED, f"observe failed: {exc}")

    async def _mint(
        self,
        row: ClusterRow,
        prov: Provisioner,
        ext: str,
        params: dict[str, Any],
        cls: ClassSpec,
        t: datetime,
    ) -> tuple[str, datetime | None]:
        """Mint a kubeconfig and seal it; it is stored in the same transaction as the status."""
        ttl = parse_duration(cls.credentials.tokenTTL) or 3600.0
        expires = aware(row.expires_at)
        if expires is not None:
            ttl = max(60.0, min(ttl, (expires - t).total_seconds()))
        creds = await prov.credentials(ext, params, ttl)
        return self.sealer.seal({"kubeconfig": creds.kubeconfig}), creds.expires_at

    async def _install_agent(
        self, row: ClusterRow, prov: Provisioner, ext: str, params: dict[str, Any], cls: ClassSpec
    ) -> str:
        env = await self.store.get_environment_by_id(row.env_id)
        name = agent_name(row)
        token_name = f"shoal-cluster:{row.id}"
        await self.store.revoke_tokens_named(token_name)  # a token minted by a crashed pass is dropped
        _tok, plaintext = await self.store.create_token(env.org_id, env.id, "agent", token_name)
        labels = self._agent_labels(row, cls)
        server = self.settings.server_url
        if not server:
            raise ProvisionerError("the controller does not know the server URL agents should connect to")
        await prov.install_agent(ext, params, AgentInstall(name, server, plaintext, labels, env.name))
        return name

    @staticmethod
    def _agent_labels(row: ClusterRow, cls: ClassSpec) -> dict[str, str]:
        """``cluster=<name>`` plus the request's labels; a pool's spare waits under neutral labels
        (``shoal.dev/spare=<pool>``: only runs that name that label reach it) until a claim relabels it."""
        if row.member_of and row.pool_state != "claimed":
            return {**cls.agentLabels, SPARE_LABEL: row.member_of}
        return {
            **cls.agentLabels,
            **{str(k): str(v) for k, v in (row.labels or {}).items()},
            "cluster": row.name,
        }

    async def _relabel_agent(self, env_id: str, name: str, labels: dict[str, str]) -> None:
        """The server-side labels of a running agent (what routing matches): the ones it registered with,
        less the spare mark, plus ``labels``."""
        agent = await self.store.get_agent(env_id, name)
        current = {str(k): str(v) for k, v in (agent.labels or {}).items() if k != SPARE_LABEL}
        await set_agent_labels(self.store, agent.id, {**current, **labels})

    async def _agent_online(self, env_id: str, name: str) -> bool:
        try:
            agent = await self.store.get_agent(env_id, name)
        except NotFound:
            return False
        return agent.status == "online"

    # -- Ready ----------------------------------------------------------------------------------------

    async def _ready(
        self, row: ClusterRow, st: dict[str, Any], cls: ClassSpec, prov: Provisioner, t: datetime
    ) -> Pass:
        target = await self._target(row, st)
        if target is None:
            return await self._start_teardown(row, st, "Lost", "the pool member is gone", t)
        member, ext = target
        refresh = self._refresh_at(st, cls)
        if refresh is not None and t >= refresh:
            # The hand-over would expire before the cluster does: mint a new one, replace it in place.
            params = (member.status or {}).get("resolved", {}).get("parameters", st["resolved"]["parameters"])
            try:
                sealed = await self._effect("credentials", lambda: self._mint(row, prov, ext, params, cls, t))
            except ProvisionerError as exc:
                return await self._retry(row, st, t, "credentials", exc)
            st["credentialsExpireAt"] = iso(sealed[1])
            st["credentialsMintedAt"] = iso(t)
            set_condition(st, "CredentialsReady", True, "Refreshed", "kubeconfig replaced before expiry", t)
            return await self._write(
                row,
                st,
                t,
                action="refresh",
                credentials=sealed,
                requeue_s=self._ready_requeue(row, st, cls, t),
            )
        if member is not row:
            if member.finished or member.phase == "Deprovisioning":
                return await self._start_teardown(row, st, "Lost", f"pool member {member.name} went away", t)
            agent = st.get("agent") or {}
            if agent.get("adopted") and not agent.get("removedAt"):
                # An agent that reconnected registered its spare labels again: give it the claim's back.
                with contextlib.suppress(NotFound):
                    current = (await self.store.get_agent(row.env_id, agent["name"])).labels or {}
                    wanted = dict(agent.get("labels") or {})
                    if SPARE_LABEL in current or any(current.get(k) != v for k, v in wanted.items()):
                        await self._effect(
                            "relabel_agent", lambda: self._relabel_agent(row.env_id, agent["name"], wanted)
                        )
        else:
            last = parse_time((st.get("observed") or {}).get("at"))
            if last is None or t >= last + timedelta(seconds=self.settings.observe_interval_s):
                params = st["resolved"]["parameters"]
                obs = await self._observe(prov, ext, params)
                st["observed"] = {"state": obs.state.value, "message": obs.message, "at": iso(t)}
                if obs.state in (State.ABSENT, State.DELETING, State.FAILED):
                    return await self._start_teardown(
                        row, st, "Lost", f"provisioner says {obs.state.value}", t
                    )
                healthy = obs.state == State.READY
                if healthy != is_true(st, "Provisioned"):
                    set_condition(
                        st, "Provisioned", healthy, "Ready" if healthy else "Degraded", obs.message, t
                    )
        return await self._write(row, st, t, action="observe", requeue_s=self._ready_requeue(row, st, cls, t))

    def _refresh_at(self, st: dict[str, Any], cls: ClassSpec) -> datetime | None:
        """When to replace the hand-over: ``refreshBefore`` its expiry, if it expires before the cluster."""
        creds = parse_time(st.get("credentialsExpireAt"))
        expires = parse_time(st.get("expiresAt"))
        if creds is None or (expires is not None and creds >= expires):
            return None
        at = creds - timedelta(seconds=parse_duration(cls.credentials.refreshBefore) or 0.0)
        minted = parse_time(st.get("credentialsMintedAt"))
        if minted is not None:  # never sooner than half-way through a token's life (short TTLs)
            at = max(at, minted + (creds - minted) / 2)
        return at

    def _ready_requeue(self, row: ClusterRow, st: dict[str, Any], cls: ClassSpec, t: datetime) -> float:
        deadlines = [t + timedelta(seconds=self.settings.observe_interval_s)]
        refresh = self._refresh_at(st, cls)
        if refresh is not None:
            deadlines.append(refresh)
        expires = parse_time(st.get("expiresAt"))
        if expires is not None:
            deadlines.append(expires)
        idle = cls.seconds("idleTimeout")
        if idle is not None:
            last = parse_time(st.get("lastActivityAt")) or t
            deadlines.append(last + timedelta(seconds=idle))
        owner_timeout = parse_duration((row.owner or {}).get("timeout"))
        if (row.owner or {}).get("kind") == "heartbeat" and owner_timeout is not None:
            last = parse_time(st.get("lastActivityAt")) or t
            deadlines.append(last + timedelta(seconds=owner_timeout))
        return max(0.0, (min(deadlines) - t).total_seconds())

    # -- teardown -------------------------------------------------------------------------------------

    async def _teardown_reason(self, row: ClusterRow, st: dict[str, Any], cls: ClassSpec, t: datetime) -> str:
        sticky = condition(st, "TeardownRequested")
        if sticky and sticky.get("status") == "True":
            return str(sticky.get("reason"))
        if row.deletion_requested:
            return "Deleted"
        if row.teardown:
            return "UserRequested"
        expires = aware(row.expires_at) or parse_time(st.get("expiresAt"))
        if expires is not None and t >= expires:
            return "Expired"
        if row.phase == "Ready":
            idle = cls.seconds("idleTimeout")
            last = parse_time(st.get("lastActivityAt")) or parse_time(st.get("readyAt"))
            if idle is not None and last is not None and t >= last + timedelta(seconds=idle):
                busy = await self._agent_activity(row, st, t)  # runs on the cluster's agent count too
                if busy is None or t >= busy + timedelta(seconds=idle):
                    return "IdleTimeout"
                st["lastActivityAt"] = iso(busy)
        if not await self._owner_alive(row, st, t):
            return "OwnerGone"
        return ""

    async def _agent_activity(self, row: ClusterRow, st: dict[str, Any], t: datetime) -> datetime | None:
        """When the cluster's agent last worked: now while an execution is on it, else when its newest
        execution changed status."""
        name = (st.get("agent") or {}).get("name")
        if not name:
            return None
        newest, _total = await self.store.list_executions(
            row.env_id, ExecutionFilter(agent=name), page_size=1
        )
        if not newest:
            return None
        ex = newest[0]
        if ex.status not in TERMINAL_EXECUTION:
            return t
        return aware(ex.finished_at) or aware(ex.status_at)

    async def _owner_alive(self, row: ClusterRow, st: dict[str, Any], t: datetime) -> bool:
        owner = row.owner or {}
        kind = str(owner.get("kind") or "").lower()
        if kind == "execution":
            try:
                ex = await self.store.get_execution(str(owner.get("uid") or owner.get("name")))
            except NotFound:
                return False
            return ex.status not in TERMINAL_EXECUTION
        if kind == "agent":
            try:
                await self.store.get_agent(row.env_id, str(owner.get("name")))
            except NotFound:
                return False
            return True
        if kind == "heartbeat":
            timeout = parse_duration(owner.get("timeout")) or 600.0
            last = parse_time(st.get("lastActivityAt")) or aware(row.created_at) or t
            return t < last + timedelta(seconds=timeout)
        return True

    async def _start_teardown(
        self, row: ClusterRow, st: dict[str, Any], reason: str, message: str, t: datetime
    ) -> Pass:
        """Sticky decision, written before anything is deleted; the hand-over is revoked at once."""
        if not is_true(st, "TeardownRequested"):
            set_condition(st, "TeardownRequested", True, reason, message, t)
            st["teardownRequestedAt"] = iso(t)
        set_condition(st, "Ready", False, "TearingDown", reason, t)
        if message and reason in FAILURE_REASONS:
            st["message"] = message
        await self.clusters.delete_credentials(row.id)
        if is_true(st, "CredentialsReady"):
            set_condition(st, "CredentialsReady", False, "Revoked", "revoked at teardown", t)
        return await self._write(row, st, t, action=f"teardown:{reason}", phase="Deprovisioning")

    async def _deprovision(
        self, row: ClusterRow, st: dict[str, Any], cls: ClassSpec, prov: Provisioner, t: datetime
    ) -> Pass:
        params = st["resolved"]["parameters"]
        reason = str((condition(st, "TeardownRequested") or {}).get("reason") or "UserRequested")
        agent = st.get("agent") or {}
        if agent.get("name") and not agent.get("removedAt"):
            # The agent goes first; its executions' results stay in the control plane.
            target = str(agent.get("target") or row.external_name)
            try:
                await self._effect("remove_agent", lambda: prov.remove_agent(target, params, agent["name"]))
            except ProvisionerError as exc:
                return await self._retry(row, st, t, "remove_agent", exc)
            with contextlib.suppress(NotFound):
                await self.store.delete_agent(row.env_id, agent["name"])
            await self.store.revoke_tokens_named(f"shoal-cluster:{row.id}")
            if agent.get("token") and agent["token"] != f"shoal-cluster:{row.id}":
                await self.store.revoke_tokens_named(str(agent["token"]))
            st["agent"] = {**agent, "removedAt": iso(t)}
            set_condition(st, "AgentReady", False, "Removed", f"agent {agent['name']} removed", t)
            return await self._write(row, st, t, action="remove_agent")
        # A claim never returns its member to the pool: the member is torn down, and the claim waits.
        # A member claimed by a pass that crashed before recording it is found by its claimed_by mark.
        members = [m for m in await self.clusters.claimed_by(row.id) if not m.finished]
        if members or st.get("memberId"):
            for member in members:
                if not member.teardown:
                    await self.clusters.signal(member.id, teardown=True)
                    self.wake()
            if members:
                return await self._write(row, st, t, action="wait-member-teardown", requeue_s=0.2)
            return await self._finish(row, st, reason, t)
        obs = await self._observe(prov, str(row.external_name), params)
        st["observed"] = {"state": obs.state.value, "message": obs.message, "at": iso(t)}
        if obs.state == State.ABSENT:
            return await self._finish(row, st, reason, t)
        started = parse_time(st.get("teardownRequestedAt")) or t
        limit = cls.seconds("deprovisionTimeout")
        if (
            limit is not None
            and t > started + timedelta(seconds=limit)
            and not condition(st, "Deprovisioned")
        ):
            set_condition(
                st, "Deprovisioned", False, "Stuck", f"still {obs.state.value} after {int(limit)}s", t
            )
            log.warning("cluster %s: deprovisioning is stuck (%s)", row.name, obs.state.value)
        if obs.state == State.DELETING and not obs.handle.get("retryDelete"):
            return await self._write(row, st, t, action="wait-delete", requeue_s=self._poll(st))
        try:
            await self._effect("delete", lambda: prov.delete(str(row.external_name), params))
        except ProvisionerError as exc:
            return await self._retry(row, st, t, "delete", exc)
        attempts = dict(st.get("attempts") or {})
        attempts["deprovision"] = attempts.get("deprovision", 0) + 1
        st["attempts"] = attempts
        return await self._write(row, st, t, action="delete", requeue_s=0.05)

    async def _finish(self, row: ClusterRow, st: dict[str, Any], reason: str, t: datetime) -> Pass:
        failed = reason in FAILURE_REASONS
        set_condition(st, "Deprovisioned", True, "Absent", "nothing is left outside", t)
        st["deprovisionedAt"] = iso(t)
        phase = "Failed" if failed else "Deprovisioned"
        return await self._write(row, st, t, action="finish", phase=phase, finished=True, requeue_s=None)

    async def _finished(self, row: ClusterRow, t: datetime) -> Pass:
        """A finished record is removed when deletion was asked for (or its history time is over)."""
        updated = aware(row.updated_at) or t
        if row.deletion_requested or t >= updated + timedelta(seconds=self.settings.history_s):
            await self.clusters.delete_cluster_row(row.id, row.resource_version)
            return Pass(row.name, row.phase, "remove", True)
        nxt = updated + timedelta(seconds=self.settings.history_s)
        await self.clusters.write_cluster(row.id, row.resource_version, next_reconcile_at=nxt)
        return Pass(row.name, row.phase, "", True)

    # -- helpers --------------------------------------------------------------------------------------

    async def _retry(
        self, row: ClusterRow, st: dict[str, Any], t: datetime, verb: str, exc: Exception
    ) -> Pass:
        """Transient failure: capped exponential back-off with jitter, counted in status."""
        errors = dict(st.get("errors") or {})
        n = int(errors.get(verb, 0)) + 1
        errors[verb] = n
        st["errors"] = errors
        st["message"] = f"{verb} failed (attempt {n}): {exc}"
        log.warning("cluster %s: %s failed (attempt %d): %s", row.name, verb, n, exc)
        delay = min(self.settings.retry_max_s, self.settings.retry_base_s * 2 ** min(n, 10))
        return await self._write(row, st, t, action=f"retry:{verb}", requeue_s=self._jitter(delay))

    def _poll(self, st: dict[str, Any]) -> float:
        polls = int((st.get("attempts") or {}).get("polls", 0))
        return float(min(2.0, 0.1 * 2 ** min(polls, 5)))

    @staticmethod
    def _jitter(delay: float) -> float:
        return delay * random.uniform(0.8, 1.2)

    def _tags(self, row: ClusterRow, cls: ClassSpec) -> OwnerTags:
        expires = aware(row.expires_at)
        return OwnerTags(
            controller=self.settings.controller_id,
            cluster_uid=row.id,
            cluster_name=row.name,
            environment=row.env_id,
            class_name=row.class_name,
            expires_at=int(expires.timestamp()) if expires else 0,
        )

    # ------------------------------------------------------------------ pools

    async def sync_pools(self) -> None:
        for pool in await self.clusters.list_pools():
            try:
                await self.sync_pool(pool)
            except (SpecError, ProvisionerError) as exc:
                await self.clusters.set_pool_status(pool.id, {**(pool.status or {}), "message": str(exc)})

    async def sync_pool(self, pool: ClusterPoolRow) -> None:
        """Keep ``size`` spares (ready + provisioning) within ``maxSize`` members; drop surplus spares,
        oldest first. Stale spares expire by their own lifetime (``maxSpareAge``); broken ones are torn
        down by their own reconcile — both are then replaced here."""
        spec = parse_pool(pool.spec)
        await self.resolve_class(pool.env_id, spec.classRef)  # SpecError: reported on the pool, nothing made
        t = self.clock()
        size = effective_size(spec, t)
        members = await self.clusters.pool_members(pool.env_id, pool.name, include_finished=True)
        recent_failures = [
            m
            for m in members
            if m.phase == "Failed" and (aware(m.created_at) or t) > t - timedelta(minutes=10)
        ]
        members = [m for m in members if not m.finished]
        live = [m for m in members if not m.teardown and m.phase != "Deprovisioning"]
        spares = [m for m in live if m.pool_state != "claimed"]
        if len(recent_failures) >= max(3, size):
            # members keep failing: stop making new ones for a while instead of filling the store
            message = f"{len(recent_failures)} members failed in the last 10 minutes; not replenishing"
            await self.clusters.set_pool_status(pool.id, {**(pool.status or {}), "message": message})
            return
        if len(spares) < size:
            room = spec.maxSize - len(live)
            for _ in range(max(0, min(size - len(spares), room))):
                await self._create_member(pool, spec)
        elif len(spares) > size:
            for m in sorted(spares, key=lambda m: m.created_at)[: len(spares) - size]:
                await self.clusters.signal(m.id, teardown=True)
        counts = await self.clusters.pool_counts(pool.env_id, pool.name)
        status = {**counts, "size": size, "observedAt": iso(t)}
        if status != {k: (pool.status or {}).get(k) for k in status}:
            await self.clusters.set_pool_status(pool.id, status)

    async def _create_member(self, pool: ClusterPoolRow, spec: PoolSpec) -> ClusterRow:
        name = f"{pool.name[:50]}-{secrets.token_hex(3)}"
        body = {"classRef": spec.classRef, "parameters": spec.parameters, "lifetime": spec.maxSpareAge}
        labels = {"pool": pool.name}
        return await self.clusters.create_cluster(
            pool.env_id,
            name,
            spec.classRef,
            body,
            labels=labels,
            member_of=pool.name,
            created_at=self.clock(),
        )


def external_name(row: ClusterRow) -> str:
    """Deterministic: the same record always names the same external resource."""
    return f"ec-{row.id[:10]}"


def agent_name(row: ClusterRow) -> str:
    return f"cluster-{row.name}"


def effective_size(spec: PoolSpec, t: datetime) -> int:
    """The size of the schedule entry that fired last (``spec.size`` without a schedule)."""
    best: tuple[datetime, int] | None = None
    for entry in spec.schedule:
        fired = croniter(entry.cron, t).get_prev(datetime)
        if best is None or fired > best[0]:
            best = (fired, entry.size)
    return spec.size if best is None else best[1]


async def _first(*events: asyncio.Event) -> None:
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()

"""Lifetime, idle timeout and a vanished owner each tear a cluster down on their own; the reason is
recorded and sticky; an invalid request fails without touching anything; a failed provision is Failed
only once nothing is left outside."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shoal.clusters import Reaper
from shoal.clusters._spec import condition, is_true
from shoal.store import now
from tests.clusters.conftest import Rig, drive
from tests.clusters.crash import CrashOnce, SimulatedCrash


def _teardown_reason(status: dict[str, object]) -> object:
    c = condition(status, "TeardownRequested")  # type: ignore[arg-type]
    return c and c["reason"]


async def _finished(rig: Rig, name: str) -> bool:
    return await rig.phase(name) in ("Deprovisioned", "Failed")


async def test_lifetime_and_idle_timeout_end_clusters(rig: Rig) -> None:
    await rig.noop_class(maxLifetime="2h")
    await rig.noop_class("idler", maxLifetime="2h", idleTimeout="30m")
    offset = timedelta(0)
    ctl = rig.controller()
    ctl.clock = lambda: now() + offset
    await rig.request("short", lifetime="10m")
    await rig.request("capped", lifetime="100h")  # capped at maxLifetime
    await rig.request("idle", class_name="idler", lifetime="90m")
    for name in ("short", "capped", "idle"):
        await drive(ctl, lambda n=name: _ready(rig, n))
    capped = await rig.clusters.get_cluster(rig.env.id, "capped")
    assert capped.expires_at is not None
    assert (
        timedelta(hours=1, minutes=59)
        < capped.expires_at.replace(tzinfo=None) - capped.created_at.replace(tzinfo=None)
        <= timedelta(hours=2, seconds=1)
    )

    idle = await rig.clusters.get_cluster(rig.env.id, "idle")
    offset = timedelta(minutes=20)
    await rig.clusters.touch_activity(idle.id, now() + offset)  # activity renews the idle deadline
    offset = timedelta(minutes=31)
    await drive(ctl, lambda: _finished(rig, "short"))
    assert await rig.phase("idle") == "Ready" and await rig.phase("capped") == "Ready"
    offset = timedelta(minutes=52)  # 32 minutes after the renewal
    await drive(ctl, lambda: _finished(rig, "idle"))
    offset = timedelta(hours=2, minutes=1)
    await drive(ctl, lambda: _finished(rig, "capped"))
    reasons = {
        n: _teardown_reason((await rig.clusters.get_cluster(rig.env.id, n)).status)
        for n in ("short", "idle", "capped")
    }
    assert reasons == {"short": "Expired", "idle": "IdleTimeout", "capped": "Expired"}
    assert rig.world.resources == {}


async def test_owner_gone_tears_down(rig: Rig) -> None:
    await rig.noop_class()
    ctl = rig.controller()
    offset = timedelta(0)
    ctl.clock = lambda: now() + offset
    await rig.request("pipeline", owner={"kind": "heartbeat", "timeout": "10m"})
    await rig.request("by-agent", owner={"kind": "agent", "name": "ci-runner"})
    await rig.store.connect_agent(rig.env.id, "ci-runner", {}, [], "t", "s", 1)
    await drive(ctl, lambda: _ready(rig, "pipeline"))
    await drive(ctl, lambda: _ready(rig, "by-agent"))
    pipeline = await rig.clusters.get_cluster(rig.env.id, "pipeline")
    offset = timedelta(minutes=8)
    await rig.clusters.touch_activity(pipeline.id, now() + offset)  # the pipeline is still alive: it renews
    await rig.store.delete_agent(rig.env.id, "ci-runner")  # this owner vanished
    await drive(ctl, lambda: _finished(rig, "by-agent"))
    assert await rig.phase("pipeline") == "Ready"
    offset = timedelta(minutes=40)  # no heartbeat for far longer than 10 minutes
    await drive(ctl, lambda: _finished(rig, "pipeline"))
    for name in ("pipeline", "by-agent"):
        row = await rig.clusters.get_cluster(rig.env.id, name)
        assert row.phase == "Deprovisioned" and _teardown_reason(row.status) == "OwnerGone"


async def test_teardown_is_sticky_and_invalid_requests_fail_cleanly(rig: Rig) -> None:
    await rig.noop_class(allowedParameters=["size"])
    ctl = rig.controller()
    await rig.request("bad-param", parameters={"region": "mars"})
    await rig.request("rejected", parameters={"size": 1, "invalid": True})
    await rig.request("no-class", class_name="missing")
    for name in ("bad-param", "no-class"):
        await drive(ctl, lambda n=name: _finished(rig, n))
        row = await rig.clusters.get_cluster(rig.env.id, name)
        assert row.phase == "Failed" and condition(row.status, "Accepted")["reason"] == "InvalidSpec"  # type: ignore[index]
    assert rig.world.calls == []  # nothing was ever attempted outside

    uid = await rig.request("sticky")
    await drive(ctl, lambda: _ready(rig, "sticky"))
    await rig.clusters.signal(uid, teardown=True)
    with pytest.raises(SimulatedCrash):  # TeardownRequested is recorded before anything is deleted
        await rig.controller(crash=CrashOnce("before:delete")).reconcile(uid)
    row = await rig.clusters.get_cluster(rig.env.id, "sticky")
    assert row.phase == "Deprovisioning" and is_true(row.status, "TeardownRequested")
    assert row.external_name in rig.world.resources
    await rig.clusters.update_cluster(row.id, row.resource_version, teardown=False)  # "never mind"
    await drive(ctl, lambda: _finished(rig, "sticky"))
    assert await rig.phase("sticky") == "Deprovisioned"


async def test_failed_provision_is_failed_only_when_nothing_is_left(rig: Rig) -> None:
    await rig.noop_class(provisionTimeout="5m", allowedParameters=["fail"])
    offset = timedelta(0)
    ctl = rig.controller()
    ctl.clock = lambda: now() + offset
    await rig.request("broken", parameters={"fail": True})
    await drive(ctl, lambda: _finished(rig, "broken"))
    row = await rig.clusters.get_cluster(rig.env.id, "broken")
    assert row.phase == "Failed" and _teardown_reason(row.status) == "ProvisionFailed"
    assert "ensure fails on request" in row.status["message"]

    slow = rig.controller()
    slow.provisioners["noop"].ready_after = 10**6  # type: ignore[attr-defined]
    slow.clock = ctl.clock
    await rig.request("slow")
    await drive(slow, lambda: _phase(rig, "slow", "Provisioning"))
    row = await rig.clusters.get_cluster(rig.env.id, "slow")
    await drive(slow, lambda: _has_resource(rig, "slow"))
    offset = timedelta(minutes=6)
    await drive(slow, lambda: _finished(rig, "slow"))
    row = await rig.clusters.get_cluster(rig.env.id, "slow")
    assert row.phase == "Failed" and row.external_name not in rig.world.resources
    assert await Reaper(slow).owned() == []


async def _ready(rig: Rig, name: str) -> bool:
    return await rig.phase(name) == "Ready"


async def _phase(rig: Rig, name: str, phase: str) -> bool:
    return await rig.phase(name) == phase


async def _has_resource(rig: Rig, name: str) -> bool:
    row = await rig.clusters.get_cluster(rig.env.id, name)
    return row.external_name in rig.world.resources


async def test_work_on_the_clusters_agent_keeps_it_from_idling(rig: Rig) -> None:
    await rig.noop_class(idleTimeout="30m", maxLifetime="8h", installAgent=True)
    offset = timedelta(0)
    ctl = rig.controller()
    ctl.clock = lambda: now() + offset
    await rig.request("busy", lifetime="4h")

    async def agent_installed() -> bool:
        row = await rig.clusters.get_cluster(rig.env.id, "busy")
        return bool((row.status.get("agent") or {}).get("installedAt"))

    await drive(ctl, agent_installed)
    await rig.store.connect_agent(rig.env.id, "cluster-busy", {"cluster": "busy"}, ["local"], "t", "s", 1)
    await drive(ctl, lambda: _ready(rig, "busy"))
    ex = await rig.store.create_execution(
        rig.env.id,
        "wf",
        name="wf-1",
        group_id="g",
        status="running",
        agent_name="cluster-busy",
        scheduled_at=now(),
    )
    offset = timedelta(minutes=45)  # idle by the clock, but its agent is running something
    await rig.clusters.poke((await rig.clusters.get_cluster(rig.env.id, "busy")).id, now() + offset)
    await drive(ctl, lambda: _activity_after(rig, "busy", now() + timedelta(minutes=44)))
    assert await rig.phase("busy") == "Ready"
    await rig.store.update_execution(ex.id, status="passed", finished_at=now() + offset)
    offset = timedelta(minutes=80)  # 35 minutes after the run ended
    await drive(ctl, lambda: _finished(rig, "busy"))
    row = await rig.clusters.get_cluster(rig.env.id, "busy")
    assert _teardown_reason(row.status) == "IdleTimeout"
    assert rig.world.agents == {}  # the agent went first


async def _activity_after(rig: Rig, name: str, at: object) -> bool:
    row = await rig.clusters.get_cluster(rig.env.id, name)
    last = row.status.get("lastActivityAt")
    return bool(last and last > at.isoformat())  # type: ignore[attr-defined]

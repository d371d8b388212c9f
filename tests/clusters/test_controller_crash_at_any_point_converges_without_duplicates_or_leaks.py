"""Kill the controller after each kind of side effect (before and after recording it, in the middle of
ensure and of delete); a fresh controller converges: one external resource per request, nothing left
outside once every request is Deprovisioned, no credentials kept, no agent left."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from shoal.clusters import ClusterController, LocalProvisioner, Reaper
from shoal.store import NotFound
from tests.clusters.conftest import Rig, drive
from tests.clusters.crash import CrashOnce, SimulatedCrash, StoreAgentSpawner

NOOP_POINTS = [
    "recorded:admit",
    "before:ensure",
    "noop.ensure:mid",
    "after:ensure",
    "recorded:ensure",
    "before:credentials",
    "after:credentials",
    "recorded:ready",
    "recorded:teardown:UserRequested",
    "before:delete",
    "noop.delete:mid",
    "after:delete",
    "recorded:delete",
    "recorded:finish",
]
LOCAL_POINTS = [
    "local.ensure:mid",
    "after:ensure",
    "before:install_agent",
    "after:install_agent",
    "recorded:install_agent",
    "before:remove_agent",
    "after:remove_agent",
    "recorded:remove_agent",
    "local.delete:mid",
    "after:delete",
]


async def _lifecycle(
    rig: Rig,
    make: Callable[[CrashOnce | None], ClusterController],
    point: str,
    *,
    spares_remain: bool = False,
    **request: Any,
) -> None:
    hook = CrashOnce(point)
    ctl = make(hook)
    crashed = 0

    async def step(done: Callable[[], object]) -> None:
        nonlocal ctl, crashed
        while True:
            try:
                await drive(ctl, done)  # type: ignore[arg-type]
                return
            except SimulatedCrash:
                crashed += 1
                ctl = make(None)  # a new process: nothing survives but the store and the world

    uid = await rig.request("pr-7", class_name="small", **request)

    async def ready() -> bool:
        return await rig.phase("pr-7") == "Ready"

    async def gone() -> bool:
        return await rig.phase("pr-7") == "Deprovisioned"

    await step(ready)
    await rig.clusters.signal(uid, teardown=True)
    await step(gone)
    assert hook.fired and crashed == 1, f"crash point {point} never reached (saw {hook.seen})"
    assert await rig.clusters.read_credentials(uid) is None
    if not spares_remain:  # a pool keeps (and is checked for) its own spares
        assert await Reaper(ctl).owned() == []


@pytest.mark.parametrize("point", NOOP_POINTS)
async def test_noop_provisioner_crash(sqlite_rig: Rig, point: str) -> None:
    rig = sqlite_rig
    await rig.noop_class()
    await _lifecycle(rig, lambda hook: rig.controller(crash=hook), point)
    assert list(rig.world.ensures.values()) == [1]  # created exactly once
    assert rig.world.resources == {}


@pytest.mark.parametrize("point", LOCAL_POINTS)
async def test_local_provisioner_crash(sqlite_rig: Rig, point: str, tmp_path: Path) -> None:
    rig = sqlite_rig
    org = await rig.store.ensure_organization("default")
    spawner = StoreAgentSpawner(rig.store, org.id)
    root = tmp_path / "sandboxes"
    await rig.clusters.apply_class(rig.env.id, "small", {"provisioner": "local", "installAgent": True})

    def make(hook: CrashOnce | None) -> ClusterController:
        crash = hook or (lambda _p: None)
        rig.extra["local"] = LocalProvisioner(root, spawner, crash=crash)
        return rig.controller(crash=crash)

    await _lifecycle(rig, make, point)
    assert spawner.running == {} and spawner.starts >= 1
    assert [p.name for p in root.iterdir()] == []
    with pytest.raises(NotFound):
        await rig.store.get_agent(rig.env.id, "cluster-pr-7")


@pytest.mark.parametrize("point", ["before:claim", "recorded:bind", "before:credentials", "recorded:ready"])
async def test_pool_claim_crash(sqlite_rig: Rig, point: str) -> None:
    rig = sqlite_rig
    await rig.noop_class()
    await rig.clusters.apply_pool(rig.env.id, "warm", {"classRef": "small", "size": 1, "maxSize": 3})
    ctl = rig.controller()

    async def spare() -> bool:
        return (await rig.clusters.pool_counts(rig.env.id, "warm"))["ready"] == 1

    await drive(ctl, spare)
    await _lifecycle(rig, lambda hook: rig.controller(crash=hook), point, spares_remain=True, poolRef="warm")
    claimed = [
        m for m in await rig.clusters.pool_members(rig.env.id, "warm", include_finished=True) if m.claimed_by
    ]
    assert len(claimed) == 1 and claimed[0].phase == "Deprovisioned"  # one member, torn down with its claim
    await rig.clusters.delete_pool(rig.env.id, "warm")
    for member in await rig.clusters.pool_members(rig.env.id, "warm"):
        await rig.clusters.signal(member.id, teardown=True)

    async def nothing_left() -> bool:
        return not await rig.clusters.pool_members(rig.env.id, "warm")

    await drive(rig.controller(), nothing_left)
    assert rig.world.resources == {}


@pytest.mark.parametrize(
    "point",
    ["recorded:bind", "before:relabel_agent", "after:relabel_agent", "recorded:adopt_agent",
     "before:remove_agent", "recorded:remove_agent"],
)
async def test_warm_claim_of_an_agent_class_crash(sqlite_rig: Rig, point: str, tmp_path: Path) -> None:
    """A claim that adopts its spare's running agent, killed at each step: one agent, relabelled once
    for the claim, removed with it; the spares left behind keep their own agents, under spare labels."""
    rig = sqlite_rig
    org = await rig.store.ensure_organization("default")
    spawner = StoreAgentSpawner(rig.store, org.id)
    rig.extra["local"] = LocalProvisioner(tmp_path / "sandboxes", spawner)
    await rig.clusters.apply_class(rig.env.id, "small", {"provisioner": "local", "installAgent": True})
    await rig.clusters.apply_pool(rig.env.id, "warm", {"classRef": "small", "size": 1, "maxSize": 3})

    async def spare() -> bool:
        return (await rig.clusters.pool_counts(rig.env.id, "warm"))["ready"] == 1

    await drive(rig.controller(), spare)
    await _lifecycle(rig, lambda hook: rig.controller(crash=hook), point, spares_remain=True, poolRef="warm")
    claim = await rig.clusters.get_cluster(rig.env.id, "pr-7")
    assert claim.status["agent"]["adopted"] is True and claim.status["agent"]["removedAt"]
    agents = await rig.store.list_agents(rig.env.id)
    assert not [a for a in agents if a.labels.get("cluster") == "pr-7" or a.name == claim.status["agent"]["name"]]
    live = {str(m.external_name) for m in await rig.clusters.pool_members(rig.env.id, "warm")}
    assert {p.name for p in spawner.running} == live  # one agent per remaining spare, nothing else
    assert all(a.labels.get("shoal.dev/spare") == "warm" for a in agents)

"""Warm pools: spares are kept at size within maxSize, claims bind the oldest spare by compare-and-swap
(two concurrent claims never get the same member), claimed members never return, stale spares are
recycled, and a claim's teardown tears its member down."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from shoal.clusters._spec import is_true
from shoal.store import now
from tests.clusters.conftest import Rig, drive


async def _spares_ready(rig: Rig, pool: str, n: int) -> bool:
    counts = await rig.clusters.pool_counts(rig.env.id, pool)
    return counts["ready"] == n and counts["provisioning"] == 0


async def test_concurrent_claims_get_distinct_members(rig: Rig) -> None:
    await rig.noop_class()
    await rig.clusters.apply_pool(rig.env.id, "warm", {"classRef": "small", "size": 4, "maxSize": 8})
    ctl = rig.controller()
    await drive(ctl, lambda: _spares_ready(rig, "warm", 4))
    members = await rig.clusters.available_members(rig.env.id, "warm")
    oldest = members[0].name

    claims = [await rig.request(f"claim-{i}", poolRef="warm") for i in range(6)]
    a, b = rig.controller(holder="a"), rig.controller(holder="b")
    for _ in range(30):  # two controllers race to bind every claim at once, until the spares are gone
        await asyncio.gather(*(c.reconcile(uid) for uid in claims for c in (a, b)))
        # a claim whose status write lost the race adopts its member on the next pass (claimed_by)
        claimed = [m for m in await rig.clusters.pool_members(rig.env.id, "warm") if m.claimed_by]
        rows = [await rig.clusters.get_cluster_by_id(u) for u in claims]
        recorded = [r for r in rows if r is not None and r.status.get("boundMember")]
        if len(claimed) == 4 and len(recorded) == 4:
            break
    bound = {}
    for uid in claims:
        row = await rig.clusters.get_cluster_by_id(uid)
        assert row is not None
        if row.status.get("boundMember"):
            bound[row.name] = row.status["boundMember"]
    assert len(bound) == 4 and len(set(bound.values())) == 4  # four spares, four distinct claims
    assert oldest in bound.values()
    for member in await rig.clusters.pool_members(rig.env.id, "warm"):
        claimants = await rig.clusters.claimed_by(member.claimed_by) if member.claimed_by else []
        assert len(claimants) <= 1
    waiting = [n for n in (f"claim-{i}" for i in range(6)) if n not in bound]
    for name in waiting:
        row = await rig.clusters.get_cluster(rig.env.id, name)
        assert (row.status.get("conditions") or [{}])[0].get("reason") == "PoolExhausted"

    # the pool refills (within maxSize) and the waiting claims are served; claims never exceed maxSize
    async def all_ready() -> bool:
        return all([await rig.phase(f"claim-{i}") == "Ready" for i in range(6)])

    await drive(ctl, all_ready)
    live = await rig.clusters.pool_members(rig.env.id, "warm")
    assert len(live) <= 8
    claimed = [m for m in live if m.pool_state == "claimed"]
    assert len(claimed) == 6 and len({m.claimed_by for m in claimed}) == 6


async def test_claim_teardown_destroys_its_member_and_spares_are_recycled(rig: Rig) -> None:
    await rig.noop_class()
    await rig.clusters.apply_pool(
        rig.env.id, "warm", {"classRef": "small", "size": 2, "maxSize": 4, "maxSpareAge": "1h"}
    )
    offset = timedelta(0)
    ctl = rig.controller()
    ctl.clock = lambda: now() + offset
    await drive(ctl, lambda: _spares_ready(rig, "warm", 2))
    uid = await rig.request("pr-9", poolRef="warm", lifetime="30m")
    await drive(ctl, lambda: _phase(rig, "pr-9", "Ready"))
    claim = await rig.clusters.get_cluster_by_id(uid)
    assert claim is not None and is_true(claim.status, "CredentialsReady")
    member = await rig.clusters.get_cluster(rig.env.id, claim.status["boundMember"])
    assert member.pool_state == "claimed" and member.claimed_by == uid
    assert await rig.clusters.read_credentials(uid) is not None  # minted for the claimant

    await rig.clusters.signal(uid, teardown=True)
    await drive(ctl, lambda: _phase(rig, "pr-9", "Deprovisioned"))
    member = await rig.clusters.get_cluster(rig.env.id, member.name)
    assert member.phase == "Deprovisioned" and member.external_name not in rig.world.resources

    # spares older than maxSpareAge expire and are replaced by fresh ones
    before = {m.name for m in await rig.clusters.available_members(rig.env.id, "warm")}
    offset = timedelta(hours=2)

    async def replaced() -> bool:
        now_spares = {m.name for m in await rig.clusters.available_members(rig.env.id, "warm")}
        return len(now_spares) == 2 and not (now_spares & before)

    await drive(ctl, replaced)
    for name in before:
        row = await rig.clusters.get_cluster(rig.env.id, name)
        assert row.phase == "Deprovisioned"
        assert _reason(row.status) == "Expired"


def _reason(status: dict[str, object]) -> object:
    for c in status.get("conditions") or []:  # type: ignore[attr-defined]
        if c["type"] == "TeardownRequested":
            return c["reason"]
    return None


async def _phase(rig: Rig, name: str, phase: str) -> bool:
    return await rig.phase(name) == phase


async def test_a_pool_of_failing_members_stops_replenishing(rig: Rig) -> None:
    await rig.noop_class(parameters={"fail": True})
    await rig.clusters.apply_pool(rig.env.id, "broken", {"classRef": "small", "size": 2, "maxSize": 4})
    await rig.clusters.apply_pool(rig.env.id, "orphan", {"classRef": "missing", "size": 2})
    ctl = rig.controller()

    async def stopped() -> bool:
        pool = await rig.clusters.get_pool(rig.env.id, "broken")
        return bool(pool and "not replenishing" in (pool.status or {}).get("message", ""))

    await drive(ctl, stopped)
    made = await rig.clusters.pool_members(rig.env.id, "broken", include_finished=True)
    assert 3 <= len(made) <= 6 and all(m.phase in ("Failed", "Deprovisioning") for m in made)
    orphan = await rig.clusters.get_pool(rig.env.id, "orphan")
    assert orphan is not None and "not found" in orphan.status["message"]
    assert await rig.clusters.pool_members(rig.env.id, "orphan", include_finished=True) == []

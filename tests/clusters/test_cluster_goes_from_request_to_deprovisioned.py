"""A request is provisioned, handed over and torn down, with conditions recording each step."""

from __future__ import annotations

from shoal.clusters import State
from shoal.clusters._spec import is_true
from tests.clusters.conftest import Rig, drive


async def test_request_becomes_ready_then_deprovisioned(rig: Rig) -> None:
    await rig.noop_class()
    uid = await rig.request("pr-1", lifetime="2h")
    ctl = rig.controller()
    await drive(ctl, lambda: _phase_is(rig, "pr-1", "Ready"))
    row = await rig.clusters.get_cluster(rig.env.id, "pr-1")
    ext = row.external_name
    assert ext and ext in rig.world.resources
    assert rig.world.resources[ext].cluster_uid == uid
    for ctype in ("Accepted", "Provisioned", "CredentialsReady", "Ready"):
        assert is_true(row.status, ctype), ctype
    assert row.status["expiresAt"]
    assert "kind: Config" not in str(row.status)
    creds = await rig.clusters.read_credentials(uid)
    assert creds is not None and "kubeconfig" in rig.sealer.unseal(creds.sealed)

    await rig.clusters.signal(uid, teardown=True)
    await drive(ctl, lambda: _phase_is(rig, "pr-1", "Deprovisioned"))
    row = await rig.clusters.get_cluster(rig.env.id, "pr-1")
    assert ext not in rig.world.resources
    assert is_true(row.status, "TeardownRequested") and is_true(row.status, "Deprovisioned")
    assert await rig.clusters.read_credentials(uid) is None
    assert rig.world.ensures == {ext: 1}
    assert (await ctl.provisioners["noop"].observe(ext, {})).state == State.ABSENT


async def _phase_is(rig: Rig, name: str, phase: str) -> bool:
    return await rig.phase(name) == phase


async def test_handover_is_refreshed_before_it_expires(rig: Rig) -> None:
    from datetime import timedelta

    from shoal.store import now

    await rig.noop_class(credentials={"tokenTTL": "20m", "refreshBefore": "5m"})
    uid = await rig.request("long", lifetime="2h")
    offset = timedelta(0)
    ctl = rig.controller()
    ctl.clock = lambda: now() + offset
    await drive(ctl, lambda: _phase_is(rig, "long", "Ready"))
    first = await rig.clusters.read_credentials(uid)
    assert first is not None
    offset = timedelta(minutes=16)

    async def refreshed() -> bool:
        return (
            rig.world.calls.count(("credentials", (await rig.clusters.get_cluster_by_id(uid)).external_name))
            == 2
        )  # type: ignore[union-attr]

    await drive(ctl, refreshed)
    second = await rig.clusters.read_credentials(uid)
    assert second is not None and second.sealed != first.sealed
    row = await rig.clusters.get_cluster(rig.env.id, "long")
    assert row.phase == "Ready" and row.status["credentialsExpireAt"] > first.expires_at.isoformat()[:16]  # type: ignore[union-attr]

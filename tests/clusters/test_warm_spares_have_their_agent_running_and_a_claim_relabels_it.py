"""Warm pools of a class that installs an agent: a spare is Ready only with its agent online, under
neutral labels (`shoal.dev/spare=<pool>`: no run reaches it unless it names that label); a claim starts
no agent — it gives the spare's running agent `cluster=<claim>` plus the claim's labels, and gives them
back when the agent reconnects with its old ones; tearing the claim down removes that agent (its token
revoked) and the member, and the pool's next spare brings its own."""

from __future__ import annotations

from pathlib import Path

from shoal.clusters import SPARE_LABEL, LocalProvisioner, registered_labels
from shoal.server._executions import Target, target_matches
from tests.clusters.conftest import Rig, drive
from tests.clusters.crash import StoreAgentSpawner


async def test_claim_relabels_the_spares_agent(sqlite_rig: Rig, tmp_path: Path) -> None:
    rig = sqlite_rig
    org = await rig.store.ensure_organization("default")
    spawner = StoreAgentSpawner(rig.store, org.id)
    rig.extra["local"] = LocalProvisioner(tmp_path / "sandboxes", spawner)
    await rig.clusters.apply_class(
        rig.env.id, "small", {"provisioner": "local", "installAgent": True, "agentLabels": {"kind": "local"}}
    )
    await rig.clusters.apply_pool(rig.env.id, "warm", {"classRef": "small", "size": 1, "maxSize": 3})
    ctl = rig.controller(observe_interval_s=0.05)

    async def spare_ready() -> bool:
        counts = await rig.clusters.pool_counts(rig.env.id, "warm")
        return counts["ready"] == 1 and counts["provisioning"] == 0

    await drive(ctl, spare_ready)
    (member,) = await rig.clusters.available_members(rig.env.id, "warm")
    spare_agent = member.status["agent"]["name"]
    agent = await rig.store.get_agent(rig.env.id, spare_agent)
    assert agent.status == "online" and agent.labels == {"kind": "local", SPARE_LABEL: "warm"}
    assert not target_matches(Target.parse(None), agent.labels)  # untargeted runs pass it by
    assert not target_matches(Target.parse({"match": {"kind": ["local"]}}), agent.labels)
    assert spawner.starts == 1
    (installed,) = spawner.running.values()

    uid = await rig.request("pr-7", poolRef="warm", labels={"pr": "7"})
    await drive(ctl, lambda: _phase(rig, "pr-7", "Ready"))
    claim = await rig.clusters.get_cluster(rig.env.id, "pr-7")
    assert claim.status["boundMember"] == member.name
    assert claim.status["agent"]["name"] == spare_agent and claim.status["agent"]["adopted"] is True
    assert [c["status"] for c in claim.status["conditions"] if c["type"] == "AgentReady"] == ["True"]
    sandbox = tmp_path / "sandboxes" / str(member.external_name)
    assert spawner.running[sandbox] is installed  # the same agent process: nothing was started for the claim
    labels = (await rig.store.get_agent(rig.env.id, spare_agent)).labels
    assert labels == {"kind": "local", "pr": "7", "cluster": "pr-7"}
    assert target_matches(Target.parse({"match": {"cluster": ["pr-7"]}}), labels)

    # the agent reconnects (a server restart) with the labels it was started with: the server registers
    # the claim's; one that got in with its spare labels anyway is repaired by the claim's next pass
    hello = dict(installed.labels)
    assert await registered_labels(rig.store, rig.env.id, spare_agent, hello) == labels
    assert await registered_labels(rig.store, rig.env.id, "other", hello) == hello
    await rig.store.connect_agent(rig.env.id, spare_agent, dict(installed.labels), ["local"], "test", "srv", 1)

    async def repaired() -> bool:
        return (await rig.store.get_agent(rig.env.id, spare_agent)).labels.get("cluster") == "pr-7"

    await drive(ctl, repaired)
    assert SPARE_LABEL not in (await rig.store.get_agent(rig.env.id, spare_agent)).labels

    await rig.clusters.signal(uid, teardown=True)
    await drive(ctl, lambda: _phase(rig, "pr-7", "Deprovisioned"))
    assert spare_agent not in {a.name for a in await rig.store.list_agents(rig.env.id)}
    assert sandbox not in spawner.running and not sandbox.exists()
    assert await rig.store.authenticate(installed.token) is None  # the spare's token is revoked
    assert (await rig.clusters.get_cluster_by_id(member.id)).phase == "Deprovisioned"  # type: ignore[union-attr]
    await drive(ctl, spare_ready)  # replenished, with an agent of its own
    (fresh,) = await rig.clusters.available_members(rig.env.id, "warm")
    assert fresh.status["agent"]["name"] != spare_agent and spawner.starts == 2


async def _phase(rig: Rig, name: str, phase: str) -> bool:
    return await rig.phase(name) == phase

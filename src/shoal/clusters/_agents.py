"""The control plane's side of an installed agent: its labels (what routing matches) change when a pool's
spare, whose agent already runs, is claimed — and stay the claim's when that agent reconnects."""

from __future__ import annotations

from sqlalchemy import update

from shoal.store import Agent, NotFound, Store
from shoal.store._clusters import ClusterStore


async def set_agent_labels(store: Store, agent_id: str, labels: dict[str, str]) -> None:
    """Replace a registered agent's labels (the agent keeps running; the next routing round sees them)."""
    async with store.session() as s:
        await s.execute(update(Agent).where(Agent.id == agent_id).values(labels=labels))


async def registered_labels(store: Store, env_id: str, name: str, labels: dict[str, str]) -> dict[str, str]:
    """The labels an agent that connects is registered with: its own, unless it is the agent of a pool's
    spare that a claim has adopted since it started — then the claim's (it says ``shoal.dev/spare``
    because that is what it was started with; without this a reconnect would hide it until the claim's
    next pass relabels it)."""
    from shoal.clusters._controller import SPARE_LABEL, agent_name

    if SPARE_LABEL not in labels or not name.startswith("cluster-"):
        return labels
    clusters = ClusterStore(store)
    try:
        member = await clusters.get_cluster(env_id, name.removeprefix("cluster-"))
    except NotFound:
        return labels
    if agent_name(member) != name or member.pool_state != "claimed" or not member.claimed_by:
        return labels
    claim = await clusters.get_cluster_by_id(member.claimed_by)
    agent = ((claim.status or {}).get("agent") or {}) if claim is not None else {}
    if agent.get("name") != name or agent.get("removedAt") or not agent.get("labels"):
        return labels
    kept = {k: v for k, v in labels.items() if k != SPARE_LABEL}
    return {**kept, **{str(k): str(v) for k, v in agent["labels"].items()}}

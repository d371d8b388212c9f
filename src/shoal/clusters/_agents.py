"""The control plane's side of an installed agent that the controller changes: its labels (what routing
matches) when a pool's spare, whose agent already runs, is claimed."""

from __future__ import annotations

from sqlalchemy import update

from shoal.store import Agent, Store


async def set_agent_labels(store: Store, agent_id: str, labels: dict[str, str]) -> None:
    """Replace a registered agent's labels (the agent keeps running; the next routing round sees them)."""
    async with store.session() as s:
        await s.execute(update(Agent).where(Agent.id == agent_id).values(labels=labels))

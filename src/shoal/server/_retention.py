"""Retention: keep the newest N executions of a workflow, or those younger than D days, and remove the
rest together with their logs and artifacts — in small batches, so ingest never waits on it.

Settings come from the environment (``shoal env update NAME --retain-days D --retain-count N``) and can
be overridden per workflow with the annotations ``shoal.io/retain-days`` and ``shoal.io/retain-count``
on the TestWorkflow (``"0"`` or ``"unlimited"`` disables that limit for the workflow). Aggregated
figures are read from the fact tables, which retention does not touch, so they stay exact.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from shoal.store import BlobStore, Environment, Store

log = logging.getLogger("shoal.server.retention")

RETAIN_DAYS_ANNOTATION = "shoal.io/retain-days"
RETAIN_COUNT_ANNOTATION = "shoal.io/retain-count"


def _override(annotations: dict[str, Any], key: str, default: int | None) -> int | None:
    raw = annotations.get(key)
    if raw is None:
        return default
    text = str(raw).strip().lower()
    if text in ("0", "unlimited", "none", ""):
        return None
    try:
        value = int(text)
    except ValueError:
        log.warning("ignoring annotation %s=%r: expected a whole number", key, raw)
        return default
    return value if value > 0 else None


class Retention:
    def __init__(self, store: Store, blobs: BlobStore, batch: int = 200) -> None:
        self.store = store
        self.blobs = blobs
        self.batch = batch

    async def limits(self, env: Environment) -> dict[str, tuple[int | None, int | None]]:
        """Per workflow with executions: (retain_days, retain_count) after annotation overrides."""
        docs = {r.name: r.document for r in await self.store.list_resources(env.id, "TestWorkflow")}
        out: dict[str, tuple[int | None, int | None]] = {}
        for workflow in await self.store.workflows_with_executions(env.id):
            annotations = ((docs.get(workflow) or {}).get("metadata") or {}).get("annotations") or {}
            days = _override(annotations, RETAIN_DAYS_ANNOTATION, env.retain_days)
            count = _override(annotations, RETAIN_COUNT_ANNOTATION, env.retain_count)
            if days is not None or count is not None:
                out[workflow] = (days, count)
        return out

    async def prune_once(self) -> int:
        """One pass over every environment; returns how many executions were removed."""
        removed = 0
        for env in await self.store.all_environments():
            for workflow, (days, count) in (await self.limits(env)).items():
                while True:
                    ids = await self.store.prunable_executions(env.id, workflow, days, count, self.batch)
                    if not ids:
                        break
                    # Blobs first: a crash in between leaves rows whose blobs are gone, which the next
                    # pass removes; never blobs without rows to find them by.
                    for execution_id in ids:
                        await self.blobs.delete_prefix(f"executions/{execution_id}/")
                    await self.store.delete_executions(ids)
                    removed += len(ids)
                    await asyncio.sleep(0)
        if removed:
            log.info("retention removed %d executions", removed)
        return removed

"""Aggregated results of a workflow across the agents (clusters) of an environment."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, HTTPException

from shoal.server._auth import READ, EnvDep, PrincipalDep, StateDep
from shoal.store import now

router = APIRouter(tags=["metrics"])

_WINDOW = re.compile(r"^(\d+)([hdw])$")


def parse_window(text: str) -> timedelta:
    m = _WINDOW.match(text.strip())
    if not m:
        raise HTTPException(422, f"window {text!r}: expected a number and a unit, such as 24h, 7d or 2w")
    n, unit = int(m.group(1)), m.group(2)
    return {"h": timedelta(hours=n), "d": timedelta(days=n), "w": timedelta(weeks=n)}[unit]


@router.get("/v1/test-workflows/{name}/metrics")
async def workflow_metrics(
    name: str,
    state: StateDep,
    principal: PrincipalDep,
    env: EnvDep,
    by: str | None = None,
    window: str = "7d",
) -> dict[str, Any]:
    """Latest status, pass rate, flip rate and durations per agent label (``by``), trend, groups, failing steps."""
    principal.require(READ)
    since = now() - parse_window(window)
    data = await state.store.metrics(env.id, name, since, by or None)
    data["window"] = window
    return data

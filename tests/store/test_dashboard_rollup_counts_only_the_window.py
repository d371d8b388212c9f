"""The dashboard's per-workflow rollup (read along the (environment, time) index) counts exactly the facts
of its environment and window: not older ones, not another environment's; per group key the newest
run, the last runs oldest first, and the median duration. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert

from shoal.store import Store, new_execution_id
from shoal.store._dashboard_queries import facts_count, step_failures, workflow_rollup
from shoal.store._models import ExecutionFact, StepFact

NOW = datetime.now(UTC).replace(microsecond=0)


async def _env(store: Store, name: str) -> str:
    org = await store.ensure_organization("default")
    return (await store.create_environment(org.id, name, exist_ok=True)).id


def _fact(
    env_id: str, wf: str, agent: str, cluster: str, status: str, at: datetime, ms: int
) -> dict[str, object]:
    ex_id = new_execution_id()
    return {
        "execution_id": ex_id,
        "env_id": env_id,
        "workflow_name": wf,
        "number": 1,
        "group_id": ex_id,
        "status": status,
        "agent_name": agent,
        "agent_labels": {"cluster": cluster},
        "scheduled_at": at,
        "finished_at": at,
        "duration_ms": ms,
    }


async def test_rollup_counts_the_window_of_one_environment(store: Store) -> None:
    env_id = await _env(store, "default")
    other_id = await _env(store, "other")
    day = timedelta(days=1)
    facts = [
        _fact(env_id, "smoke", "a1", "pr-1", "failed", NOW - 40 * day, 1),  # before the window
        _fact(env_id, "smoke", "a1", "pr-1", "passed", NOW - 3 * day, 300),
        _fact(env_id, "smoke", "a2", "pr-1", "failed", NOW - 2 * day, 100),
        _fact(env_id, "smoke", "a3", "pr-2", "passed", NOW - 1 * day, 200),
        _fact(env_id, "smoke", "a1", "pr-1", "passed", NOW - timedelta(hours=1), 400),
        _fact(env_id, "e2e", "a3", "pr-2", "failed", NOW - timedelta(hours=2), 50),
        _fact(other_id, "smoke", "a9", "pr-1", "failed", NOW - timedelta(hours=1), 9),  # other environment
    ]
    steps = [
        {
            k: f[k]
            for k in ("execution_id", "env_id", "workflow_name", "agent_name", "agent_labels", "scheduled_at")
        }
        | {"ref": "r1", "name": "unit", "status": "failed"}
        for f in facts
        if f["status"] == "failed"
    ]
    async with store.session() as s:
        await s.execute(insert(ExecutionFact), facts)
        await s.execute(insert(StepFact), steps)
    since = NOW - 7 * day
    assert await facts_count(store, env_id, since) == 5

    rollup = await workflow_rollup(store, env_id, since, "cluster", recent=3)
    assert rollup.counts == {"smoke": (4, 3), "e2e": (1, 0)}
    ids = {f["execution_id"]: f for f in facts}
    latest = {(k, st, ids[ex]["agent_name"]) for k, st, ex, _at in rollup.latest["smoke"]}
    assert latest == {("pr-1", "passed", "a1"), ("pr-2", "passed", "a3")}
    assert [ms for _id, _st, ms in rollup.recent["smoke"]] == [100, 200, 400]  # the last 3, oldest first
    assert rollup.medians == {"smoke": 250.0, "e2e": 50.0}

    by_agent = await workflow_rollup(store, env_id, since, "agent", label=("cluster", "pr-1"))
    assert by_agent.counts == {"smoke": (3, 2)}
    assert [(k, st) for k, st, _ex, _at in by_agent.latest["smoke"]] == [("a1", "passed"), ("a2", "failed")]

    failures = await step_failures(store, env_id, since)
    assert [(f.workflow, f.name, f.failures) for f in sorted(failures, key=lambda f: f.workflow)] == [
        ("e2e", "unit", 1),
        ("smoke", "unit", 1),
    ]


async def test_same_instant_runs_resolve_by_id_and_many_workflows_all_get_their_last_runs(
    store: Store,
) -> None:
    env_id = await _env(store, "default")
    at = NOW - timedelta(hours=3)
    first = _fact(env_id, "smoke", "a1", "pr-1", "failed", at, 10)
    second = _fact(env_id, "smoke", "a2", "pr-1", "passed", at, 20)
    # Past SQLite's cap on compound selects per statement, so the last runs are read in several.
    many = [
        _fact(env_id, f"wf-{i:03d}", "a1", "pr-1", "passed", at + timedelta(seconds=i + k), 5 * k)
        for i in range(130)
        for k in range(3)
    ]
    async with store.session() as s:
        await s.execute(insert(ExecutionFact), [first, second, *many])
    rollup = await workflow_rollup(store, env_id, NOW - timedelta(days=1), "cluster", recent=2)
    winner = max(first, second, key=lambda f: str(f["execution_id"]))
    assert [(k, ex) for k, _st, ex, _at in rollup.latest["smoke"]] == [("pr-1", winner["execution_id"])]
    assert len(rollup.recent) == 131
    assert all([ms for _id, _st, ms in rollup.recent[f"wf-{i:03d}"]] == [5, 10] for i in range(130))

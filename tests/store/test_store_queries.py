"""Every store query, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from shoal.store import Conflict, ExecutionFilter, LabelSelector, NotFound, Store, StoreError


async def _env(store: Store, name: str = "default") -> tuple[str, str]:
    org = await store.ensure_organization("default")
    env = await store.create_environment(org.id, name, exist_ok=True)
    return org.id, env.id


async def test_environments_are_unique_per_organisation(store: Store) -> None:
    org_id, env_id = await _env(store)
    with pytest.raises(Conflict):
        await store.create_environment(org_id, "default")
    again = await store.create_environment(org_id, "default", exist_ok=True)
    assert again.id == env_id
    await store.create_environment(org_id, "pr-7")
    assert [e.name for e in await store.list_environments(org_id)] == ["default", "pr-7"]
    updated = await store.update_environment(env_id, retain_count=5)
    assert updated.retain_count == 5 and updated.retain_days is None


async def test_tokens_are_stored_hashed_and_authenticate(store: Store) -> None:
    org_id, env_id = await _env(store)
    token, plaintext = await store.create_token(org_id, env_id, "agent", "a1")
    assert plaintext.startswith("shoal_") and plaintext not in token.hash
    found = await store.authenticate(plaintext)
    assert found is not None and found.role == "agent" and found.env_id == env_id
    assert await store.authenticate(plaintext + "x") is None
    await store.revoke_token(token.id)
    assert await store.authenticate(plaintext) is None
    with pytest.raises(StoreError, match="unknown role"):
        await store.create_token(org_id, env_id, "root")
    with pytest.raises(StoreError, match="needs an environment"):
        await store.create_token(org_id, None, "agent")


async def test_agent_reconnect_bumps_connection_and_stale_disconnect_is_ignored(store: Store) -> None:
    _, env_id = await _env(store)
    a1 = await store.connect_agent(env_id, "a", {"cluster": "a"}, ["local"], "0.1", "s1", 4)
    a2 = await store.connect_agent(env_id, "a", {"cluster": "b"}, ["local"], "0.1", "s2", 4)
    assert a1.id == a2.id and a2.connection == a1.connection + 1 and a2.labels == {"cluster": "b"}
    assert not await store.disconnect_agent(a1.id, connection=a1.connection)  # old socket closing late
    assert (await store.get_agent(env_id, "a")).status == "online"
    assert await store.disconnect_agent(a2.id, connection=a2.connection)
    assert (await store.get_agent(env_id, "a")).status == "offline"


async def test_resources_have_revisions_and_tombstones(store: Store) -> None:
    _, env_id = await _env(store)
    doc = {"kind": "TestWorkflow", "metadata": {"name": "smoke"}, "spec": {"steps": [{"shell": "true"}]}}
    res, changed = await store.apply_resource(env_id, "TestWorkflow", "smoke", doc, {"team": "qa"})
    assert changed and res.revision == 1
    same, changed = await store.apply_resource(env_id, "TestWorkflow", "smoke", doc, {"team": "qa"})
    assert not changed and same.revision == 1
    doc2 = {**doc, "spec": {"steps": [{"shell": "false"}]}}
    res2, changed = await store.apply_resource(env_id, "TestWorkflow", "smoke", doc2, {"team": "qa"})
    assert changed and res2.revision == 2 and res2.generation == 2
    await store.apply_resource(env_id, "TestWorkflow", "other", doc, {"team": "dev"})
    sel = LabelSelector.parse("team in (qa)")
    assert [r.name for r in await store.list_resources(env_id, "TestWorkflow", sel)] == ["smoke"]
    await store.delete_resource(env_id, "TestWorkflow", "smoke")
    with pytest.raises(NotFound):
        await store.get_resource(env_id, "TestWorkflow", "smoke")
    changes, current = await store.resources_since(env_id, 2)
    assert current == 4
    assert [(r.name, r.deleted) for r in changes] == [("other", False), ("smoke", True)]


async def test_execution_numbers_are_unique_under_concurrency(store: Store) -> None:
    _, env_id = await _env(store)
    made = await asyncio.gather(*(store.create_execution(env_id, "smoke") for _ in range(20)))
    assert sorted(e.number for e in made) == list(range(1, 21))
    assert {e.name for e in made} == {f"smoke-{n}" for n in range(1, 21)}
    assert all(len(e.id) == 24 for e in made)


async def test_assignment_is_compare_and_set(store: Store) -> None:
    _, env_id = await _env(store)
    ex = await store.create_execution(env_id, "smoke")
    a = await store.connect_agent(env_id, "a", {}, ["local"], "", "s1", 4)
    b = await store.connect_agent(env_id, "b", {}, ["local"], "", "s1", 4)
    results = await asyncio.gather(store.assign_execution(ex.id, a), store.assign_execution(ex.id, b))
    assert sorted(results) == [False, True]
    got = await store.get_execution(ex.id)
    assert got.status == "assigned" and got.agent_name in {"a", "b"}


async def test_list_executions_filters_and_paginates(store: Store) -> None:
    _, env_id = await _env(store)
    for i in range(5):
        ex = await store.create_execution(env_id, "smoke", tags={"i": str(i)})
        await store.update_execution(ex.id, status="passed" if i % 2 == 0 else "failed")
    await store.create_execution(env_id, "other")
    rows, total = await store.list_executions(env_id, ExecutionFilter(workflow="smoke"), page=0, page_size=2)
    assert total == 5 and len(rows) == 2
    rows, total = await store.list_executions(env_id, ExecutionFilter(statuses=["failed"]))
    assert total == 2 and {r.status for r in rows} == {"failed"}
    rows, total = await store.list_executions(env_id, ExecutionFilter(tags={"i": "3"}))
    assert total == 1 and rows[0].tags == {"i": "3"}
    assert (await store.count_by_status(env_id, "smoke")) == {"passed": 3, "failed": 2}


async def test_event_ingest_is_idempotent_and_tracks_contiguous_seq(store: Store) -> None:
    _, env_id = await _env(store)
    ex = await store.create_execution(env_id, "smoke")

    def ev(seq: int) -> dict[str, object]:
        return {"seq": seq, "ts": seq, "type": "log", "ref": "r1", "line": f"line {seq}"}

    assert await store.ingest_events(ex.id, [ev(1), ev(2)]) == 2
    assert await store.ingest_events(ex.id, [ev(1), ev(2)]) == 2  # replay
    assert await store.ingest_events(ex.id, [ev(4)]) == 2  # gap: 3 missing
    assert await store.ingest_events(ex.id, [ev(3)]) == 4
    lines = [e["line"] for e in await store.read_events(ex.id)]
    assert lines == ["line 1", "line 2", "line 3", "line 4"]
    assert [e["seq"] for e in await store.read_events(ex.id, after_seq=2)] == [3, 4]
    await store.drop_events(ex.id)
    assert await store.ingest_events(ex.id, [ev(4)]) == 4  # late duplicate after compaction: ignored
    assert await store.read_events(ex.id) == []
    with pytest.raises(NotFound):
        await store.ingest_events("0" * 24, [ev(1)])


async def test_concurrent_ingest_of_the_same_batch_stores_each_event_once(store: Store) -> None:
    _, env_id = await _env(store)
    ex = await store.create_execution(env_id, "smoke")
    batch = [{"seq": i, "ts": i, "type": "log", "line": str(i)} for i in range(1, 201)]
    results = await asyncio.gather(*(store.ingest_events(ex.id, batch) for _ in range(4)))
    assert max(results) == 200
    assert [e["seq"] for e in await store.read_events(ex.id)] == list(range(1, 201))


async def test_deleting_an_environment_removes_its_data_only(store: Store) -> None:
    org_id, env_id = await _env(store)
    other = await store.create_environment(org_id, "pr-7")
    keep = await store.create_execution(env_id, "smoke")
    gone = await store.create_execution(other.id, "smoke")
    await store.ingest_events(gone.id, [{"seq": 1, "ts": 1, "type": "log", "line": "x"}])
    await store.add_artifact(gone.id, "a.txt", 3, "executions/x/artifacts/a.txt")
    ids = await store.delete_environment(other.id)
    assert ids == [gone.id]
    with pytest.raises(NotFound):
        await store.get_execution(gone.id)
    assert (await store.get_execution(keep.id)).id == keep.id


async def test_artifacts_are_listed_by_name(store: Store) -> None:
    _, env_id = await _env(store)
    ex = await store.create_execution(env_id, "smoke")
    await store.add_artifact(ex.id, "b/report.xml", 10, "k2")
    await store.add_artifact(ex.id, "a.txt", 3, "k1")
    await store.add_artifact(ex.id, "a.txt", 4, "k1")  # re-upload replaces
    assert [(a.name, a.size) for a in await store.list_artifacts(ex.id)] == [
        ("a.txt", 4),
        ("b/report.xml", 10),
    ]

"""Watches stream every transition in resourceVersion order, honour selectors, resume, and expire (410)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from lightkube import ApiError, AsyncClient
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import ConfigMap, Pod

from tests.kubesim import KubeSim
from tests.kubesim._testkit import client_for, container, job, raw_client


async def test_watch_from_creation_sees_pending_running_succeeded(client: AsyncClient) -> None:
    created = await client.create(job("w", [container("main", "echo hi; sleep 0.2")]), namespace="default")
    assert created.metadata is not None and created.metadata.resourceVersion is not None
    phases: list[str] = []
    versions: list[int] = []
    async for op, pod in client.watch(Pod, namespace="default", labels={"job-name": "w"},
                                      resource_version=created.metadata.resourceVersion):
        assert pod.metadata is not None and pod.status is not None
        versions.append(int(pod.metadata.resourceVersion or 0))
        if op == "ADDED" or pod.status.phase != phases[-1]:
            phases.append(pod.status.phase or "")
        if pod.status.phase == "Succeeded":
            running = (pod.status.containerStatuses or [])[0].state
            assert running is not None and running.terminated is not None and running.terminated.exitCode == 0
            break
    assert phases == ["Pending", "Running", "Succeeded"]
    assert versions == sorted(versions) and len(set(versions)) == len(versions)
    assert all(v > int(created.metadata.resourceVersion) for v in versions)


async def test_label_changes_turn_into_added_and_deleted_for_a_filtered_watch(client: AsyncClient) -> None:
    cm = await client.create(ConfigMap(metadata=ObjectMeta(name="c", labels={"team": "a"})), namespace="default")
    assert cm.metadata is not None
    await client.patch(ConfigMap, "c", {"metadata": {"labels": {"team": "b"}}}, namespace="default")
    await client.patch(ConfigMap, "c", {"metadata": {"labels": {"team": "a"}}}, namespace="default")
    await client.delete(ConfigMap, "c", namespace="default")
    seen = []
    async for op, obj in client.watch(ConfigMap, namespace="default", labels={"team": "a"},
                                      resource_version=str(int(cm.metadata.resourceVersion or 0) - 1)):
        seen.append((op, obj.metadata.labels["team"]))  # type: ignore[union-attr,index]
        if len(seen) == 4:
            break
    # the object left the selection (DELETED, carrying its new labels) and came back (ADDED)
    assert seen == [("ADDED", "a"), ("DELETED", "b"), ("ADDED", "a"), ("DELETED", "a")]


async def test_a_resource_version_older_than_the_history_is_gone(tmp_path: Path) -> None:
    with KubeSim(watch_history=3) as sim:
        client = client_for(sim, tmp_path / "kc")
        first = await client.create(ConfigMap(metadata=ObjectMeta(name="x0")), namespace="default")
        for i in range(1, 6):
            await client.create(ConfigMap(metadata=ObjectMeta(name=f"x{i}")), namespace="default")
        assert first.metadata is not None
        with pytest.raises(ApiError) as err:
            async for _ in client.watch(ConfigMap, namespace="default", resource_version=first.metadata.resourceVersion):
                pass
        assert err.value.status.code == 410 and err.value.status.reason == "Expired"
        # a recent version still resumes, with exactly the later events
        recent = int(sim.store.resource_version) - 1
        async for op, obj in client.watch(ConfigMap, namespace="default", resource_version=str(recent)):
            assert op == "ADDED" and obj.metadata is not None and obj.metadata.name == "x5"
            break
        await client.close()


async def test_bookmarks_and_server_timeout(kubesim_factory: Callable[..., KubeSim]) -> None:
    sim = kubesim_factory(bookmark_interval=0.1)
    async with raw_client(sim) as raw:  # lightkube does not ask for bookmarks
        res = await raw.get(
            "/api/v1/namespaces/default/configmaps",
            params={"watch": "true", "allowWatchBookmarks": "true", "timeoutSeconds": "1",
                    "resourceVersion": str(sim.store.resource_version)}, timeout=10)
    lines = [line for line in res.text.splitlines() if line]
    assert lines and all('"type":"BOOKMARK"' in line for line in lines)
    assert 3 <= len(lines) <= 11
    assert sim.calls[("watch", "configmaps")] == 1


async def test_send_initial_events_ends_with_a_marked_bookmark(kubesim: KubeSim, client: AsyncClient) -> None:
    await client.create(ConfigMap(metadata=ObjectMeta(name="seen")), namespace="default")
    async with raw_client(kubesim) as raw:
        events = []
        async with raw.stream("GET", "/api/v1/namespaces/default/configmaps", params={
                "watch": "true", "sendInitialEvents": "true", "allowWatchBookmarks": "true",
                "resourceVersionMatch": "NotOlderThan"}) as res:
            async for line in res.aiter_lines():
                events.append(json.loads(line))
                if len(events) == 3:
                    break
        assert [e["type"] for e in events] == ["ADDED", "ADDED", "BOOKMARK"]
        assert events[2]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
        bad = await raw.get("/api/v1/namespaces/default/configmaps",
                            params={"watch": "true", "sendInitialEvents": "true"})
        assert bad.status_code == 422


async def test_watch_by_field_selector_follows_one_object(client: AsyncClient) -> None:
    await client.create(ConfigMap(metadata=ObjectMeta(name="one")), namespace="default")
    await client.create(ConfigMap(metadata=ObjectMeta(name="two")), namespace="default")
    names = []
    async for _, obj in client.watch(ConfigMap, namespace="default", fields={"metadata.name": "two"}):
        names.append(obj.metadata.name)  # type: ignore[union-attr]
        await client.patch(ConfigMap, "one", {"data": {"k": "v"}}, namespace="default")
        await client.patch(ConfigMap, "two", {"data": {"k": "v"}}, namespace="default")
        if len(names) == 2:
            break
    assert names == ["two", "two"]


async def test_job_completion_is_visible_through_a_watch(client: AsyncClient) -> None:
    await client.create(job("quick", [container("main", "true")]), namespace="default")
    done = await client.wait(Job, "quick", namespace="default", for_conditions=["Complete"])
    assert done.status is not None and done.status.completionTime is not None


async def test_configured_latency_slows_scheduling_and_starts(kubesim_factory: Callable[..., KubeSim],
                                                              tmp_path: Path) -> None:
    sim = kubesim_factory(schedule_delay=0.3, container_start_delay=0.3)
    client = client_for(sim, tmp_path / "kc")
    created = await client.create(job("slow-start", [container("main", "true")]), namespace="default")
    seen: list[tuple[str, float]] = []
    loop_time = asyncio.get_running_loop().time
    start = loop_time()
    async for _, p in client.watch(Pod, namespace="default", resource_version=created.metadata.resourceVersion):  # type: ignore[union-attr]
        state = "scheduled" if p.spec and p.spec.nodeName else "pending"
        if p.status and p.status.phase in ("Running", "Succeeded"):
            state = p.status.phase
        if not seen or seen[-1][0] != state:
            seen.append((state, loop_time() - start))
        if state == "Succeeded":
            break
    await client.close()
    times = dict(seen)
    assert times["scheduled"] >= 0.25 and times["Succeeded"] >= 0.55

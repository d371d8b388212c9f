"""The Clusters and pools page: the store's clusters and pools (phase, conditions, owner, expiry, counts)
with a role-checked teardown through the REST route's code; an honest empty state; other sources."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from shoal.server._auth import Principal
from shoal.server.dashboard import ClusterSource, ClusterView, ConditionView, PoolView
from shoal.store import Environment, now
from shoal.store._clusters import ClusterStore
from tests.dashboard.conftest import App, csrf_of


class FakeSource:
    """Another implementation of the protocol (an external controller, say)."""

    def __init__(self) -> None:
        self.teardowns: list[tuple[str, str, str]] = []

    async def clusters(self, env: Environment) -> list[ClusterView]:
        return [
            ClusterView(
                "ec-7f3a9c21",
                "Ready",
                owner="PipelineRun/pr-1234",
                pool="small",
                expires_at=now() + timedelta(minutes=42),
                conditions=[ConditionView("Ready", "True", "Provisioned"), ConditionView("Accepted", "True")],
            ),
            ClusterView("ec-0000dead", "Deprovisioning", teardown_requested=True),
        ]

    async def pools(self, env: Environment) -> list[PoolView]:
        return [PoolView("small", "small-vcluster", size=3, max_size=10, ready=2, provisioning=1, claimed=4)]

    async def request_teardown(self, env: Environment, name: str, *, principal: Principal) -> None:
        self.teardowns.append((env.name, name, principal.role))


async def test_an_environment_without_clusters_says_so(app: App) -> None:
    web = await app.signed_in(await app.token("admin"))
    page = await web.get("/dashboard/envs/default/clusters")
    assert page.status_code == 200 and "No cluster controller data" in page.text
    r = await web.post("/dashboard/envs/default/clusters/ec-1/teardown", data={"csrf": csrf_of(page.text)})
    assert r.status_code == 404
    await web.aclose()


async def _phase(clusters: ClusterStore, env_id: str, name: str, wanted: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while (await clusters.get_cluster(env_id, name)).phase != wanted:
        assert time.monotonic() < deadline, f"cluster {name} never reached {wanted}"
        await asyncio.sleep(0.05)


async def test_clusters_of_the_controller_and_their_teardown_by_role(app: App) -> None:
    env = await app.state.store.get_environment(app.state.organization.id, "default")
    clusters = ClusterStore(app.state.store)
    await clusters.apply_class(env.id, "small", {"provisioner": "noop"})
    await clusters.create_cluster(
        env.id,
        "pr-1234",
        "small",
        {"classRef": "small", "lifetime": "2h"},
        owner={"kind": "PipelineRun", "name": "build-1234"},
    )
    assert app.state.clusters is not None
    app.state.clusters.wake()
    await _phase(clusters, env.id, "pr-1234", "Ready")

    viewer = await app.signed_in(await app.token("viewer"))
    page = (await viewer.get("/dashboard/envs/default/clusters")).text
    assert 'data-cluster="pr-1234"' in page and "PipelineRun/build-1234" in page
    assert "Ready=True" in page and 'class="countdown"' in page
    assert ">Tear down<" not in page
    r = await viewer.post("/dashboard/envs/default/clusters/pr-1234/teardown", data={"csrf": csrf_of(page)})
    assert r.status_code == 403

    runner = await app.signed_in(await app.token("runner"))
    page = (await runner.get("/dashboard/envs/default/clusters")).text
    assert page.count(">Tear down<") == 1
    r = await runner.post("/dashboard/envs/default/clusters/pr-1234/teardown", data={"csrf": csrf_of(page)})
    assert r.status_code == 303
    assert (await clusters.get_cluster(env.id, "pr-1234")).teardown
    await _phase(clusters, env.id, "pr-1234", "Deprovisioned")
    page = (await runner.get("/dashboard/envs/default/clusters")).text
    assert "Deprovisioned" in page and ">Tear down<" not in page
    await viewer.aclose()
    await runner.aclose()


async def test_another_source_on_app_state_is_used(app: App) -> None:
    source = FakeSource()
    assert isinstance(source, ClusterSource)
    app.app.state.cluster_source = source
    runner = await app.signed_in(await app.token("runner"))
    text = (await runner.get("/dashboard/envs/default/clusters")).text
    assert "ec-7f3a9c21" in text and "PipelineRun/pr-1234" in text and "Deprovisioning" in text
    assert '<td class="num">2</td><td class="num">1</td><td class="num">4</td>' in text
    assert text.count(">Tear down<") == 1  # not for the one already tearing down
    r = await runner.post(
        "/dashboard/envs/default/clusters/ec-7f3a9c21/teardown", data={"csrf": csrf_of(text)}
    )
    assert r.status_code == 303 and source.teardowns == [("default", "ec-7f3a9c21", "runner")]
    await runner.aclose()

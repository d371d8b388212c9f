"""The Clusters and pools page: an honest empty state without a controller; with one (a source on
``app.state.cluster_source``), phases, conditions, expiry and pools, and a role-checked teardown."""

from __future__ import annotations

from datetime import timedelta

from shoal.server.dashboard import ClusterSource, ClusterView, ConditionView, PoolView
from shoal.store import now
from tests.dashboard.conftest import App, csrf_of


class FakeSource:
    def __init__(self) -> None:
        self.teardowns: list[tuple[str, str, str]] = []

    async def clusters(self, environment: str) -> list[ClusterView]:
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

    async def pools(self, environment: str) -> list[PoolView]:
        return [PoolView("small", "small-vcluster", size=3, max_size=10, ready=2, provisioning=1, claimed=4)]

    async def request_teardown(self, environment: str, name: str, *, requested_by: str) -> None:
        self.teardowns.append((environment, name, requested_by))


async def test_without_a_controller_the_page_says_so(app: App) -> None:
    web = await app.signed_in(await app.token("admin"))
    page = await web.get("/dashboard/envs/default/clusters")
    assert page.status_code == 200 and "No cluster controller data" in page.text
    csrf = csrf_of(page.text)
    r = await web.post("/dashboard/envs/default/clusters/ec-1/teardown", data={"csrf": csrf})
    assert r.status_code == 409
    await web.aclose()


async def test_clusters_pools_and_teardown_by_role(app: App) -> None:
    source = FakeSource()
    assert isinstance(source, ClusterSource)
    app.app.state.cluster_source = source
    viewer = await app.signed_in(await app.token("viewer"))
    page = await viewer.get("/dashboard/envs/default/clusters")
    text = page.text
    assert "ec-7f3a9c21" in text and "PipelineRun/pr-1234" in text and "Ready=True" in text
    assert 'class="countdown"' in text and "Deprovisioning" in text
    assert '<td class="num">2</td><td class="num">1</td><td class="num">4</td>' in text
    assert ">Tear down<" not in text
    r = await viewer.post(
        "/dashboard/envs/default/clusters/ec-7f3a9c21/teardown", data={"csrf": csrf_of(text)}
    )
    assert r.status_code == 403 and source.teardowns == []

    runner = await app.signed_in(await app.token("runner"))
    page = await runner.get("/dashboard/envs/default/clusters")
    assert page.text.count(">Tear down<") == 1  # not for the one already tearing down
    r = await runner.post(
        "/dashboard/envs/default/clusters/ec-7f3a9c21/teardown", data={"csrf": csrf_of(page.text)}
    )
    assert r.status_code == 303
    assert [(e, n) for e, n, _who in source.teardowns] == [("default", "ec-7f3a9c21")]
    await viewer.aclose()
    await runner.aclose()

"""Discovery documents list exactly what the simulator serves, so clients can find their resources."""

from __future__ import annotations

from tests.kubesim import KubeSim
from tests.kubesim._testkit import raw_client


async def test_discovery_lists_groups_and_resources(kubesim: KubeSim) -> None:
    async with raw_client(kubesim) as raw:
        version = (await raw.get("/version")).json()
        assert version["major"] == "1" and version["gitVersion"].startswith("v1.")
        assert (await raw.get("/api")).json()["versions"] == ["v1"]
        core = {r["name"]: r for r in (await raw.get("/api/v1")).json()["resources"]}
        assert {"pods", "pods/log", "pods/status", "configmaps", "secrets", "serviceaccounts/token", "namespaces",
                "events", "resourcequotas", "limitranges", "persistentvolumeclaims", "services"} <= set(core)
        assert core["pods"]["namespaced"] is True and core["namespaces"]["namespaced"] is False
        assert "watch" in core["pods"]["verbs"]
        groups = {g["name"] for g in (await raw.get("/apis")).json()["groups"]}
        assert groups == {"apps", "batch", "networking.k8s.io", "rbac.authorization.k8s.io"}
        apps = (await raw.get("/apis/apps/v1")).json()
        assert {r["name"] for r in apps["resources"]} == {"deployments", "deployments/status", "replicasets",
                                                          "replicasets/status"}
        batch = (await raw.get("/apis/batch/v1")).json()
        assert {r["name"] for r in batch["resources"]} == {"jobs", "jobs/status"}
        assert (await raw.get("/apis/batch/v2")).status_code == 404
        assert (await raw.get("/apis/autoscaling/v1")).status_code == 404
        assert (await raw.get("/healthz")).text == "ok"
    # discovery requests are API calls too, counted under their path
    assert kubesim.calls[("get", "/api/v1")] == 1 and kubesim.calls[("get", "/version")] == 1

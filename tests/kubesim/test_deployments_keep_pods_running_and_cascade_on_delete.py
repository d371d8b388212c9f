"""apps/v1 Deployments: a ReplicaSet per pod template (`pod-template-hash`), pods owned by it and replaced
when they go, Recreate rollouts that remove the old pods before starting new ones, scaling, honest
status, and deletion that cascades (Background) to the ReplicaSets, the pods and their processes.
Also: the host's `shoal` (this venv's console script) is on the PATH containers get."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from lightkube import ApiError, AsyncClient
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Pod

from tests.kubesim import KubeSim
from tests.kubesim._testkit import pod

SLEEPER = {"name": "main", "image": "busybox:1.36",
           "command": ["sh", "-c", "trap 'exit 0' TERM; echo up; sleep 300 & wait"]}


def deployment(name: str, replicas: int = 2, *, strategy: str = "Recreate", env: str = "a",
               labels: dict[str, str] | None = None, restart: str = "Always") -> Deployment:
    selector = {"app": name}
    container = {**SLEEPER, "env": [{"name": "VERSION", "value": env}]}
    return Deployment.from_dict({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "strategy": {"type": strategy}, "selector": {"matchLabels": selector},
                 "template": {"metadata": {"labels": labels if labels is not None else selector},
                              "spec": {"restartPolicy": restart, "terminationGracePeriodSeconds": 2,
                                       "containers": [container]}}}})


def _owned_by(obj: dict[str, Any], uid: str) -> bool:
    return any(r.get("uid") == uid and r.get("controller") for r in obj["metadata"].get("ownerReferences") or [])


def _running_pods(sim: KubeSim, rs_uid: str) -> list[dict[str, Any]]:
    return [p for p in sim.list("pods", "default") if _owned_by(p, rs_uid)
            and (p.get("status") or {}).get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")]


async def test_deployment_rolls_out_scales_and_cascades(client: AsyncClient, kubesim: KubeSim) -> None:
    await client.create(deployment("web"), namespace="default")

    def available(n: int) -> bool:
        dep = kubesim.get("deployments", "default", "web") or {}
        status = dep.get("status") or {}
        conds = {c["type"]: c["status"] for c in status.get("conditions") or []}
        return status.get("availableReplicas") == n and status.get("replicas") == n \
            and conds.get("Available") == "True" and status.get("observedGeneration") == dep["metadata"]["generation"]

    assert kubesim.wait_until(lambda _s: available(2), 20)
    dep = kubesim.get("deployments", "default", "web")
    assert dep is not None
    (rs,) = [r for r in kubesim.list("replicasets", "default") if _owned_by(r, dep["metadata"]["uid"])]
    pod_hash = rs["metadata"]["labels"]["pod-template-hash"]
    assert rs["metadata"]["name"] == f"web-{pod_hash}"
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", "pod-template-hash": pod_hash}
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    first = _running_pods(kubesim, rs["metadata"]["uid"])
    assert len(first) == 2 and all(p["metadata"]["name"].startswith(f"web-{pod_hash}-") for p in first)

    # a pod that goes is replaced
    gone = first[0]["metadata"]["name"]
    await client.delete(Pod, gone, namespace="default")
    assert kubesim.wait_until(lambda _s: len(_running_pods(kubesim, rs["metadata"]["uid"])) == 2
                              and gone not in {p["metadata"]["name"] for p in kubesim.list("pods", "default")}, 20)

    # a new template: Recreate removes every old pod before the new ReplicaSet gets any
    seen_together: list[bool] = []

    def watch_overlap(_s: object) -> bool:
        pods = [p for p in kubesim.list("pods", "default") if (p.get("status") or {}).get("phase") == "Running"]
        hashes = {p["metadata"]["labels"]["pod-template-hash"] for p in pods}
        seen_together.append(len(hashes) > 1)
        return available(2) and hashes and pod_hash not in hashes  # type: ignore[return-value]

    await client.patch(Deployment, "web", {"spec": {"template": {"spec": {"containers": [
        {"name": "main", "env": [{"name": "VERSION", "value": "b"}]}]}}}}, namespace="default")
    assert kubesim.wait_until(watch_overlap, 30)
    assert not any(seen_together)
    sets = {r["metadata"]["name"]: r for r in kubesim.list("replicasets", "default")}
    assert sets[rs["metadata"]["name"]]["spec"]["replicas"] == 0  # kept as history, scaled to 0
    (new,) = [r for n, r in sets.items() if n != rs["metadata"]["name"]]
    assert new["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"

    await client.patch(Deployment, "web", {"spec": {"replicas": 1}}, namespace="default")
    assert kubesim.wait_until(lambda _s: available(1) and len(_running_pods(kubesim, new["metadata"]["uid"])) == 1, 20)
    pids = kubesim.processes()
    assert pids

    await client.delete(Deployment, "web", namespace="default")
    assert kubesim.wait_until(lambda _s: not kubesim.list("replicasets", "default")
                              and not kubesim.list("pods", "default")
                              and kubesim.get("deployments", "default", "web") is None, 20)
    assert not kubesim.processes()


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"labels": {"app": "other"}}, "spec.template.metadata.labels"),
    ({"restart": "Never"}, "spec.template.spec.restartPolicy"),
    ({"strategy": "Sometimes"}, "spec.strategy.type"),
])
async def test_invalid_deployments_are_refused(client: AsyncClient, kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ApiError) as err:
        await client.create(deployment("bad", **kwargs), namespace="default")
    assert err.value.status.code == 422
    assert field in str(err.value.status.message)


async def test_the_selector_of_a_deployment_is_immutable(client: AsyncClient, kubesim: KubeSim) -> None:
    await client.create(deployment("fixed", replicas=0), namespace="default")
    with pytest.raises(ApiError) as err:
        await client.patch(Deployment, "fixed", {"spec": {"selector": {"matchLabels": {"app": "x"}},
                                                          "template": {"metadata": {"labels": {"app": "x"}}}}},
                           namespace="default")
    assert err.value.status.code == 422 and "spec.selector" in str(err.value.status.message)


async def test_containers_find_the_venvs_shoal_on_their_path(client: AsyncClient, kubesim: KubeSim) -> None:
    script = 'command -v shoal; shoal --help >/dev/null && python3 -c "import shoal, sys; print(sys.prefix)"'
    await client.create(pod("which", [{"name": "main", "image": "ghcr.io/shoal-dev/shoal:0.1.0",
                                       "command": ["sh", "-c", script]}]), namespace="default")

    def done(_s: object) -> bool:
        phase = ((kubesim.get("pods", "default", "which") or {}).get("status") or {}).get("phase")
        return phase in ("Succeeded", "Failed")

    assert kubesim.wait_until(done, 30)
    pod_status = (kubesim.get("pods", "default", "which") or {})["status"]
    lines = [line.strip() async for line in client.log("which", namespace="default")]
    assert pod_status["phase"] == "Succeeded", lines
    assert lines == [f"{sys.prefix}/bin/shoal", sys.prefix]

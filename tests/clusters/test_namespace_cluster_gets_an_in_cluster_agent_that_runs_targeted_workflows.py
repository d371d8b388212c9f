"""Agent on arrival, on Kubernetes: a namespace-provisioner class with `installAgent: true`, a real server
and the Kubernetes stand-in. `provision --label pr=7` → Ready → the shoal-agent chart's objects are in
the namespace and the agent (`shoal agent` run by the stand-in's kubelet from the Deployment, in-cluster
service-account credentials, RBAC enforced) is online labelled `cluster=<name>`, `pr=7` → a run
targeted at the cluster becomes a Kubernetes Job in that namespace, created with the agent's own
service account, and passes → deprovision → the agent's pod goes first, then the namespace; the
execution's result stays."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from shoal.clusters._agent_objects import DEFAULT_IMAGE
from tests.clusters.cli import shoal, shoal_json
from tests.execution.kubernetes.kube_helpers import needs_bwrap
from tests.harness import server_in_thread, wait_until
from tests.kubesim import KubeSim
from tests.kubesim.fixtures import SHOAL_IMAGE

WORKFLOW = """
apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata:
  name: in-the-cluster
spec:
  steps:
  - name: greet
    shell: echo "hello from $(cat /var/run/secrets/kubernetes.io/serviceaccount/namespace)"
"""


def _class(kubeconfig: Path) -> str:
    return yaml.safe_dump({
        "apiVersion": "shoal.dev/v1",
        "kind": "EphemeralClusterClass",
        "metadata": {"name": "pr-namespace"},
        "spec": {
            "provisioner": "namespace",
            "parameters": {"kubeconfig": str(kubeconfig), "quota": {"pods": "10"}},
            "installAgent": True,
            "agentLabels": {"kind": "kubernetes"},
            "provisionTimeout": "2m",
        },
    })


def _pods(sim: KubeSim, ns: str) -> list[dict[str, Any]]:
    return [p for p in sim.list("pods", ns) if not p["metadata"].get("deletionTimestamp")]


@needs_bwrap
@pytest.mark.slow
def test_namespace_cluster_agent_lifecycle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kubesim_factory: Any
) -> None:
    monkeypatch.setenv("SHOAL_CLUSTERS_POLL_S", "0.05")
    # The shoal image's ENTRYPOINT (tini -- shoal); the stand-in runs the venv's `shoal` for it.
    sim: KubeSim = kubesim_factory(images={DEFAULT_IMAGE: SHOAL_IMAGE})
    kubeconfig = sim.kubeconfig(tmp_path / "host-kubeconfig")
    with server_in_thread(tmp_path / "home") as srv:
        url, token = srv.url, srv.admin_token
        with srv.client() as c:
            c._json("POST", "/v1/clusters/apply", content=_class(kubeconfig).encode(),
                    headers={"Content-Type": "application/yaml"})
            c.apply(WORKFLOW)

        cluster = shoal_json(url, token, "cluster", "provision", "--class", "pr-namespace", "--label", "pr=7",
                             "--wait", "--timeout", "60s")
        name, ns = cluster["name"], cluster["status"]["externalName"]
        assert cluster["phase"] == "Ready"
        assert {c["type"]: c["status"] for c in cluster["status"]["conditions"]}["AgentReady"] == "True"

        # the chart's objects, in the cluster's namespace, with its ownership labels
        deployment = sim.get("deployments", ns, "shoal-agent")
        assert deployment is not None
        assert deployment["metadata"]["labels"]["shoal.dev/cluster-uid"] == cluster["metadata"]["uid"]
        assert sim.get("roles", ns, "shoal-agent") is not None and sim.get("secrets", ns, "shoal-agent") is not None
        (agent_pod,) = _pods(sim, ns)
        assert agent_pod["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"
        assert agent_pod["status"]["phase"] == "Running"

        agents = [a for a in shoal_json(url, token, "get", "agents") if a["labels"].get("cluster") == name]
        assert len(agents) == 1
        assert agents[0]["status"] == "online"
        assert agents[0]["labels"]["pr"] == "7" and agents[0]["labels"]["kind"] == "kubernetes"

        with srv.client() as c:
            ex = c.run("in-the-cluster", match={"cluster": [name]})[0]
            done = wait_until(
                lambda: (e := c.execution(ex["id"]))["result"]["status"] in ("passed", "failed", "aborted") and e,
                60,
                "the targeted run to finish",
            )
            assert done["result"]["status"] == "passed", c.logs(ex["id"])
            assert f"hello from {ns}" in c.logs(ex["id"])
        jobs = [call for call in sim.call_log if call.verb == "create" and call.resource == "jobs"]
        assert jobs and all(call.namespace == ns for call in jobs)
        assert all(call.user == f"system:serviceaccount:{ns}:shoal-agent" for call in jobs)

        final = shoal_json(url, token, "cluster", "deprovision", name, "--wait", "--timeout", "60s")
        assert final["phase"] == "Deprovisioned"
        assert not [a for a in shoal_json(url, token, "get", "agents") if a["labels"].get("cluster") == name]
        # the agent's Deployment was deleted (before the namespace) and its process is gone
        deletes = [call for call in sim.call_log if call.verb == "delete" and call.namespace in (ns, "")]
        order = [call.resource for call in deletes if call.resource in ("deployments", "namespaces") and call.name in (ns, "shoal-agent")]
        assert order[:1] == ["deployments"] and "namespaces" in order
        assert sim.wait_until(lambda _s: sim.get("namespaces", None, ns) is None, 20)  # type: ignore[arg-type]
        assert not sim.processes()
        with srv.client() as c:
            assert c.execution(ex["id"])["result"]["status"] == "passed"  # results outlive the cluster
        shoal(url, token, "cluster", "kubeconfig", name, code=1)
        assert shoal_json(url, token, "cluster", "reap", "--grace", "0")["reaped"] == []

"""A script that answers `install-agent` / `remove-agent` with exit 30 (unsupported) leaves the agent to
the controller: the shoal-agent chart's objects are applied into the cluster (namespace `agentNamespace`)
through the kubeconfig of the script's `credentials` verb — again on a retry, without duplicates — and
removed (with the namespace the controller made) before the cluster goes. Once the cluster itself is
gone, removing the agent has nothing left to do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shoal.clusters import AgentInstall
from shoal.clusters._script import ScriptProvisioner
from tests.kubesim import KubeSim
from tests.kubesim.fixtures import SHOAL_IMAGE

SCRIPT = """#!/bin/sh
cat >/dev/null
case "$1" in
credentials)
    if [ -n "${GONE:-}" ]; then echo "no such cluster" >&2; exit 1; fi
    python3 -c 'import json, sys; print(json.dumps({"kubeconfig": open(sys.argv[1]).read()}))' "$KC" ;;
observe) if [ -n "${GONE:-}" ]; then echo '{"state": "ABSENT"}'; else echo '{"state": "READY"}'; fi ;;
install-agent | remove-agent) exit 30 ;;
*) exit 0 ;;
esac
"""
IMAGE = "registry.example.com/shoal:test"


def _objects(sim: KubeSim, ns: str) -> dict[str, list[str]]:
    kinds = ("deployments", "secrets", "serviceaccounts", "roles", "rolebindings")
    return {k: sorted(o["metadata"]["name"] for o in sim.list(k, ns) if "shoal-agent" in o["metadata"]["name"])
            for k in kinds}


async def test_the_controller_installs_and_removes_the_agent_for_the_script(
    kubesim_factory: Any, tmp_path: Path
) -> None:
    sim: KubeSim = kubesim_factory(images={IMAGE: SHOAL_IMAGE})
    script = tmp_path / "cluster.sh"
    script.write_text(SCRIPT)
    script.chmod(0o755)
    params: dict[str, Any] = {"script": str(script), "env": {"KC": str(sim.kubeconfig(tmp_path / "kc"))},
                              "agentImage": IMAGE, "agentNamespace": "agents"}
    prov = ScriptProvisioner()
    assert prov.validate(params) == []
    agent = AgentInstall("cluster-pr-9", "http://127.0.0.1:9", "first-token", {"cluster": "pr-9"})
    await prov.install_agent("ec-1", params, agent)
    # a retry after a crash mints a new token: the same objects, the Deployment rolls to it
    await prov.install_agent("ec-1", params, AgentInstall(agent.name, agent.server, "second-token", agent.labels))
    namespace = sim.get("namespaces", None, "agents")  # type: ignore[arg-type]
    assert namespace is not None
    assert namespace["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "shoal-controller"
    assert _objects(sim, "agents") == {
        "deployments": ["shoal-agent"], "secrets": ["shoal-agent"],
        "serviceaccounts": ["shoal-agent", "shoal-agent-executions"], "roles": ["shoal-agent"],
        "rolebindings": ["shoal-agent"],
    }
    deployment = sim.get("deployments", "agents", "shoal-agent")
    assert deployment is not None
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == IMAGE and container["args"][:3] == ["agent", "--name", "cluster-pr-9"]

    def one_current_pod(_s: object) -> bool:
        pods = [p for p in sim.list("pods", "agents") if not p["metadata"].get("deletionTimestamp")]
        dep = sim.get("deployments", "agents", "shoal-agent") or {}
        return len(pods) == 1 and (dep.get("status") or {}).get("updatedReplicas") == 1 \
            and (pods[0].get("status") or {}).get("phase") == "Running"

    assert sim.wait_until(one_current_pod, 20)
    assert len(sim.list("replicasets", "agents")) == 2  # the first token's ReplicaSet, scaled to 0

    await prov.remove_agent("ec-1", params, "cluster-pr-9")
    assert not [p for p in sim.list("pods", "agents") if not p["metadata"].get("deletionTimestamp")]
    assert sim.wait_until(lambda _s: sim.get("namespaces", None, "agents") is None, 20)  # type: ignore[arg-type]
    assert not sim.processes()

    await prov.remove_agent("ec-1", {**params, "env": {"GONE": "1"}}, "cluster-pr-9")  # cluster gone: done

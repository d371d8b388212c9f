"""The contract from a fresh clone, with the built-in `local` class and a real agent process:
provision → the agent joins with the cluster's labels → a targeted run passes → deprovision → the agent
is gone, its results remain, and nothing is left outside."""

from __future__ import annotations

from pathlib import Path

import pytest

from shoal.clusters import agent_pids
from tests.clusters.cli import shoal, shoal_json
from tests.harness import server_in_thread, wait_until

WORKFLOW = """
apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata:
  name: hello-cluster
spec:
  steps:
  - name: greet
    shell: echo "hello from the ephemeral cluster"
"""


@pytest.mark.slow
def test_local_cluster_lifecycle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOAL_CLUSTERS_POLL_S", "0.05")
    with server_in_thread(tmp_path / "home") as srv:
        url, token = srv.url, srv.admin_token
        classes = shoal_json(url, token, "cluster", "classes")
        local = next(c for c in classes if c["metadata"]["name"] == "local")
        assert local["spec"]["provisioner"] == "local" and local["spec"]["installAgent"] is True
        assert local["spec"]["defaultLifetime"] == "1h"

        kc = tmp_path / "kc"
        cluster = shoal_json(
            url,
            token,
            "cluster",
            "provision",
            "--class",
            "local",
            "--label",
            "pr=123",
            "--wait",
            "--kubeconfig-out",
            str(kc),
        )
        name = cluster["name"]
        assert cluster["phase"] == "Ready" and cluster["status"]["phase"] == "Ready"
        assert kc.stat().st_mode & 0o777 == 0o600 and "current-context" in kc.read_text()
        agents = shoal_json(url, token, "get", "agents")
        mine = [a for a in agents if a["labels"].get("cluster") == name]
        assert len(mine) == 1 and mine[0]["status"] == "online" and mine[0]["labels"]["pr"] == "123"
        sandbox = tmp_path / "home" / "clusters" / cluster["status"]["externalName"]
        assert agent_pids(sandbox / "agent")

        with srv.client() as c:
            c.apply(WORKFLOW)
            ex = c.run("hello-cluster", match={"cluster": [name]})[0]
            done = wait_until(
                lambda: (e := c.execution(ex["id"]))["result"]["status"] in ("passed", "failed") and e,
                60,
                "the targeted run to finish",
            )
            assert done["result"]["status"] == "passed"
            assert "hello from the ephemeral cluster" in c.logs(ex["id"])

        final = shoal_json(url, token, "cluster", "deprovision", name, "--wait")
        assert final["phase"] == "Deprovisioned"
        assert not [a for a in shoal_json(url, token, "get", "agents") if a["labels"].get("cluster") == name]
        assert not agent_pids(sandbox / "agent") and not sandbox.exists()
        with srv.client() as c:
            assert c.execution(ex["id"])["result"]["status"] == "passed"  # results outlive the cluster
        shoal(url, token, "cluster", "kubeconfig", name, code=1)  # revoked
        reap = shoal_json(url, token, "cluster", "reap", "--grace", "0")
        assert reap["reaped"] == []

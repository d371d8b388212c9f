"""The cluster API through a real server: apply the three kinds, provision from a pool with the CLI,
hand the kubeconfig only to tokens that may run, hide other environments' clusters, and refuse
invalid documents with located problems."""

from __future__ import annotations

from pathlib import Path

import pytest

from shoal.client import ClientError
from tests.clusters.cli import shoal, shoal_json
from tests.harness import server_in_thread

DOCS = """
apiVersion: shoal.dev/v1
kind: EphemeralClusterClass
metadata: {name: quick}
spec: {provisioner: noop, defaultLifetime: 30m, allowedRoles: [admin, runner]}
---
apiVersion: shoal.dev/v1
kind: EphemeralClusterPool
metadata: {name: warm}
spec: {classRef: quick, size: 1, maxSize: 3}
"""


def test_cluster_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOAL_CLUSTERS_POLL_S", "0.05")
    with server_in_thread(tmp_path / "home") as srv, srv.client() as admin:
        url, token = srv.url, srv.admin_token
        docs = tmp_path / "docs.yaml"
        docs.write_text(DOCS)
        applied = shoal_json(url, token, "pool", "apply", "-f", str(docs))
        assert [(a["kind"], a["name"]) for a in applied] == [
            ("EphemeralClusterClass", "quick"),
            ("EphemeralClusterPool", "warm"),
        ]
        cluster = shoal_json(
            url, token, "cluster", "provision", "--pool", "warm", "--label", "pr=7", "--wait"
        )
        assert cluster["phase"] == "Ready" and cluster["spec"]["classRef"] == "quick"
        assert cluster["status"]["boundMember"].startswith("warm-")
        pools = shoal_json(url, token, "pool", "get")
        assert pools[0]["status"]["claimed"] == 1
        name = cluster["name"]

        runner = admin.create_token("runner", "default", "ci")
        viewer = admin.create_token("viewer", "default", "eyes")
        editor = admin.create_token("editor", "default", "ed")
        assert "kind: Config" in shoal(url, runner, "cluster", "kubeconfig", name)
        shoal(url, viewer, "cluster", "kubeconfig", name, code=1)
        assert shoal_json(url, viewer, "cluster", "get", name)["phase"] == "Ready"
        with srv.client(editor) as c, pytest.raises(ClientError) as denied:  # class allows admin, runner
            c._json("POST", "/v1/clusters", json={"classRef": "quick"})
        assert denied.value.status == 403

        admin.create_environment("other")
        other = admin.create_token("runner", "other", "elsewhere")
        with srv.client(other, "other") as c:
            assert c._json("GET", "/v1/clusters") == []
            with pytest.raises(ClientError) as hidden:
                c._json("GET", f"/v1/clusters/{name}")
            assert hidden.value.status == 404

        bad = tmp_path / "bad.yaml"
        bad.write_text(
            "apiVersion: shoal.dev/v1\nkind: EphemeralClusterClass\nmetadata: {name: x}\nspec: {}\n"
        )
        shoal(url, token, "cluster", "apply", "-f", str(bad), code=1)
        with pytest.raises(ClientError) as invalid:
            admin._json("POST", "/v1/clusters", json={"classRef": "quick", "lifetime": "soon"})
        assert invalid.value.status == 422

        described = shoal(url, token, "cluster", "describe", name)
        assert "CredentialsReady" in described and "kind: Config" not in described
        done = shoal_json(url, runner, "cluster", "deprovision", name, "--wait")
        assert done["phase"] == "Deprovisioned"
        shoal(url, runner, "cluster", "kubeconfig", name, code=1)
        shoal(url, token, "cluster", "delete", name, "--wait")
        assert name not in [c["name"] for c in shoal_json(url, token, "cluster", "get")]

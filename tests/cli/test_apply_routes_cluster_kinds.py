"""`shoal apply -f` takes workflows and cluster classes from one file: each kind goes where it belongs."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from shoal.cli import build_app
from tests.harness import server_in_thread

MIXED = """\
apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata: {name: smoke}
spec:
  steps: [{shell: "true"}]
---
apiVersion: shoal.dev/v1
kind: EphemeralClusterClass
metadata: {name: noop-class}
spec:
  provisioner: noop
  defaultLifetime: 1h
"""


def test_mixed_file_applies_workflows_and_cluster_classes(tmp_path: Path) -> None:
    (tmp_path / "mixed.yaml").write_text(MIXED)
    with server_in_thread(tmp_path / "home") as srv:
        result = CliRunner().invoke(
            build_app(),
            [
                "apply",
                "-f",
                str(tmp_path / "mixed.yaml"),
                "--server",
                srv.url,
                "--token",
                srv.admin_token,
                "-o",
                "json",
            ],
        )
        assert result.exit_code == 0, result.output
        with srv.client() as c:
            assert [w["metadata"]["name"] for w in c.workflows()] == ["smoke"]
            classes = c._json("GET", "/v1/cluster-classes")
        assert "noop-class" in [k["metadata"]["name"] if "metadata" in k else k.get("name") for k in classes]

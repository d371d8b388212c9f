"""`shoal render FILE [--name W] [--config k=v] [-o yaml|json]` prints the objects an execution would
create — valid for Kubernetes 1.30+ in strict mode, in the namespace the config picks, secrets
redacted unless asked — and exits 2 on invalid input, 1 when the workflow cannot be rendered."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from tests.execution.kubernetes.kube_helpers import validate_strictly
from tests.execution.kubernetes.test_pod_layout_follows_the_plan import THREE_IMAGES


def shoal(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shoal", *args], capture_output=True, text=True, timeout=60,
                          check=False)


def test_yaml_and_json_output_in_the_configured_namespace(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(THREE_IMAGES.replace(
        "    namespace: {type: string, default: default}",
        "    namespace: {type: string, default: default}\n    token: {type: string, sensitive: true, default: s3cr3t-value}",
    ).replace("shell: echo build", "shell: 'echo {{ config.token }}'"))
    proc = shoal("render", str(path), "--name", "three-images", "--config", "namespace=pr-1234", "-o", "yaml")
    assert proc.returncode == 0, proc.stderr
    objects = list(yaml.safe_load_all(proc.stdout))
    assert [o["kind"] for o in objects] == ["ConfigMap", "Secret", "Job"]
    assert {o["metadata"]["namespace"] for o in objects} == {"pr-1234"}
    validate_strictly(objects)
    assert "s3cr3t-value" not in proc.stdout and "czNjcjN0LXZhbHVl" not in proc.stdout
    shown = shoal("render", str(path), "-o", "json", "--show-secrets")
    assert shown.returncode == 0, shown.stderr
    listing = json.loads(shown.stdout)
    assert listing["kind"] == "List" and len(listing["items"]) == 3
    (secret,) = [o for o in listing["items"] if o["kind"] == "Secret"]
    assert "czNjcjN0LXZhbHVl" in json.dumps(secret)  # base64 of the real value


def test_invalid_input_and_unrenderable_workflows_exit_clearly(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: TestWorkflow\napiVersion: testworkflows.testkube.io/v1\nmetadata: {name: x}\n"
                   "spec:\n  steps:\n  - shel: echo typo\n")
    proc = shoal("render", str(bad))
    assert proc.returncode == 2 and "shel" in proc.stderr
    needs_registry = tmp_path / "entrypoint.yaml"
    needs_registry.write_text("kind: TestWorkflow\napiVersion: testworkflows.testkube.io/v1\n"
                              "metadata: {name: x}\nspec:\n  steps:\n  - run: {image: '127.0.0.1:9/none/here:1'}\n")
    proc = shoal("render", str(needs_registry))
    assert proc.returncode == 1
    assert "127.0.0.1:9/none/here:1" in proc.stderr and "command" in proc.stderr
    assert "the `run` of step #1 (unnamed)" in proc.stderr  # where to find it, not an internal ref


def test_a_namespace_kubernetes_would_refuse_and_an_unknown_name_say_where(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(THREE_IMAGES)
    proc = shoal("render", str(path), "--name", "three-images", "--config", "namespace=PR_1234!")
    assert proc.returncode == 1 and proc.stdout == ""
    assert f"{path}: spec.job.namespace: 'PR_1234!' is not a namespace name" in proc.stderr
    proc = shoal("render", str(path), "--name", "nosuch")
    assert proc.returncode == 2
    assert f"{path}: no workflow named 'nosuch' (found: three-images)" in proc.stderr
    assert "Traceback" not in proc.stderr

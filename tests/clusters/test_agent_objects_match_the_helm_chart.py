"""The controller's Python render of the shoal-agent chart is the chart: for the same values, `helm
template` (the real binary) prints the same kinds, names, namespaces, RBAC rules, Deployment (args, env,
labels, security contexts, volumes) and Secret — apart from `managed-by` and the ownership labels the
controller adds. Every rendered object passes kubernetes-validate in strict mode."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from shoal.clusters._agent_objects import (
    APP_VERSION,
    CHART_VERSION,
    DEFAULT_IMAGE,
    MANAGED_BY,
    AgentChartValues,
    render_agent_objects,
)
from tests.execution.kubernetes.kube_helpers import validate_strictly

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "shoal-agent"
OWNER = {"shoal.dev/controller": "shoal-abc", "shoal.dev/cluster-uid": "0123456789abcdef"}


def helm_template(helm: Path, values: AgentChartValues, tmp: Path) -> list[dict[str, Any]]:
    path = tmp / "values.yaml"
    path.write_text(yaml.safe_dump(values.helm_values()))
    proc = subprocess.run(
        [str(helm), "template", values.release, str(CHART), "--namespace", values.namespace, "-f", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    for doc in docs:
        doc["metadata"].setdefault("namespace", values.namespace)
    return docs


def as_helm_would(obj: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    labels = out["metadata"]["labels"]
    assert labels.pop("app.kubernetes.io/managed-by") == MANAGED_BY
    for key, value in OWNER.items():
        assert labels.pop(key) == value
    labels["app.kubernetes.io/managed-by"] = "Helm"
    return out


def by_key(docs: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["namespace"], d["metadata"]["name"]): d for d in docs}


@pytest.mark.parametrize("execution_namespaces", [(), ("ec-abc", "tests-b")])
def test_python_render_equals_helm_template(helm: Path, tmp_path: Path, execution_namespaces: tuple[str, ...]) -> None:
    values = AgentChartValues(
        namespace="ec-abc",
        server_url="http://shoal.shoal.svc:8080",
        token="shoal_agent_token_value",
        name="cluster-pr-7",
        labels={"cluster": "pr-7", "pr": "7", "kind": "kubernetes", "team.example.com/owner": "qa"},
        execution_namespaces=execution_namespaces,
        extra_env={"SHOAL_LOG": "debug"},
        owner_labels=OWNER,
    )
    ours = render_agent_objects(values)
    validate_strictly(ours)
    theirs = by_key(helm_template(helm, values, tmp_path))
    mine = by_key([as_helm_would(o) for o in ours])
    assert sorted(mine) == sorted(theirs)
    for key, doc in theirs.items():
        assert mine[key] == doc, key
    (deployment,) = [d for d in ours if d["kind"] == "Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == DEFAULT_IMAGE and "--label" in container["args"]
    assert "shoal_agent_token_value" not in repr(values) and "shoal_agent_token_value" not in str(container)


def test_the_chart_version_is_the_one_the_renderer_copies() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert (chart["version"], chart["appVersion"]) == (CHART_VERSION, APP_VERSION)

"""The Helm charts render (with the real `helm template`) into manifests that pass kubernetes-validate
in strict mode for Kubernetes 1.30 and the newest schemas; values do what they say; the agent's RBAC
covers exactly what the Kubernetes runtime does, in the execution namespaces only."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.execution.kubernetes.kube_helpers import validate_strictly

ROOT = Path(__file__).resolve().parents[2]
SERVER = ROOT / "deploy" / "helm" / "shoal-server"
AGENT = ROOT / "deploy" / "helm" / "shoal-agent"


def render(helm: Path, chart: Path, *sets: str, namespace: str = "shoal") -> list[dict[str, Any]]:
    args = [str(helm), "template", "rel", str(chart), "--namespace", namespace]
    for item in sets:
        args += ["--set", item]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def fails(helm: Path, chart: Path, *sets: str) -> str:
    args = [str(helm), "template", "rel", str(chart)]
    for item in sets:
        args += ["--set", item]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode != 0
    return proc.stderr


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def env_of(deployment: dict[str, Any]) -> dict[str, Any]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_server_chart_defaults_and_full_values_validate(helm: Path) -> None:
    defaults = render(helm, SERVER)
    validate_strictly(defaults)
    assert {d["kind"] for d in defaults} == {"ServiceAccount", "Secret", "PersistentVolumeClaim", "Deployment",
                                             "Service"}
    full = render(
        helm, SERVER,
        "replicaCount=3", "database.url=postgresql+asyncpg://shoal:pw@pg:5432/shoal",
        "s3.bucket=shoal-logs", "s3.endpoint=http://minio:9000", "s3.accessKeyId=AK", "s3.secretAccessKey=SK",
        "ingress.enabled=true", "ingress.className=nginx", "ingress.hosts[0].host=shoal.example.com",
        "ingress.hosts[0].paths[0].path=/", "ingress.hosts[0].paths[0].pathType=Prefix",
        "ingress.tls[0].hosts[0]=shoal.example.com", "ingress.tls[0].secretName=shoal-tls",
        "publicUrl=https://shoal.example.com", "persistence.enabled=false", "secretKey=fixed-key",
    )
    validate_strictly(full)
    (deployment,) = by_kind(full, "Deployment")
    assert deployment["spec"]["replicas"] == 3
    env = env_of(deployment)
    assert env["SHOAL_DATABASE_URL"] == {"secretKeyRef": {"name": "rel-shoal-server", "key": "database-url"}}
    assert env["SHOAL_S3_BUCKET"] == "shoal-logs" and env["SHOAL_S3_ENDPOINT"] == "http://minio:9000"
    assert "AWS_ACCESS_KEY_ID" in env and env["SHOAL_PUBLIC_URL"] == "https://shoal.example.com"
    (ingress,) = by_kind(full, "Ingress")
    assert ingress["spec"]["rules"][0]["host"] == "shoal.example.com"
    assert not by_kind(full, "PersistentVolumeClaim")


def test_server_chart_refuses_replicas_without_postgres(helm: Path) -> None:
    assert "PostgreSQL" in fails(helm, SERVER, "replicaCount=2")


def test_agent_chart_validates_and_wires_the_kubernetes_runtime(helm: Path) -> None:
    docs = render(
        helm, AGENT, "server.url=https://shoal.example.com", "agent.token=tok", "agent.name=pr-1234",
        "agent.labels.cluster=pr-1234", "agent.labels.kind=kubernetes",
        "executionNamespaces={tests-a,tests-b}", "createNamespaces=true",
    )
    validate_strictly(docs)
    (deployment,) = by_kind(docs, "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[:3] == ["agent", "--name", "pr-1234"]
    assert "cluster=pr-1234" in args and "kind=kubernetes" in args
    env = env_of(deployment)
    assert env["SHOAL_SERVER"] == "https://shoal.example.com" and env["SHOAL_RUNTIME"] == "kubernetes"
    assert env["SHOAL_KUBE_NAMESPACES"] == "tests-a,tests-b" and env["SHOAL_KUBE_NAMESPACE"] == "tests-a"
    assert env["SHOAL_AGENT_TOKEN"] == {"secretKeyRef": {"name": "rel-shoal-agent", "key": "token"}}
    roles = by_kind(docs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["tests-a", "tests-b"]
    assert sorted(n["metadata"]["name"] for n in by_kind(docs, "Namespace")) == ["tests-a", "tests-b"]
    assert not by_kind(docs, "ClusterRole") and not by_kind(docs, "ClusterRoleBinding")
    rules = {(g, r): set(rule["verbs"]) for rule in roles[0]["rules"] for g in rule["apiGroups"]
             for r in rule["resources"]}
    assert rules == {
        ("batch", "jobs"): {"create", "get", "list", "watch", "delete"},
        ("", "pods"): {"get", "list", "watch", "delete"},
        ("", "pods/log"): {"get"},
        ("", "configmaps"): {"create", "get", "list", "delete"},
        ("", "secrets"): {"create", "get", "delete"},
        ("", "persistentvolumeclaims"): {"create", "get", "delete"},
    }
    for binding in by_kind(docs, "RoleBinding"):
        ns = binding["metadata"]["namespace"]
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "rel-shoal-agent", "namespace": "shoal"},
            {"kind": "ServiceAccount", "name": "rel-shoal-agent-executions", "namespace": ns},
        ]
    executions = [sa for sa in by_kind(docs, "ServiceAccount") if sa["metadata"]["name"].endswith("-executions")]
    assert sorted(sa["metadata"]["namespace"] for sa in executions) == ["tests-a", "tests-b"]
    assert env["SHOAL_KUBE_SERVICE_ACCOUNT"] == "rel-shoal-agent-executions"


def test_agent_chart_defaults_to_its_namespace_and_an_existing_secret(helm: Path) -> None:
    docs = render(helm, AGENT, "server.url=http://shoal:8080", "agent.existingSecret=agent-token",
                  namespace="pr-99")
    validate_strictly(docs)
    assert not by_kind(docs, "Secret") and not by_kind(docs, "Namespace")
    (role,) = by_kind(docs, "Role")
    assert role["metadata"]["namespace"] == "pr-99"
    env = env_of(by_kind(docs, "Deployment")[0])
    assert env["SHOAL_KUBE_NAMESPACE"] == "pr-99"
    assert env["SHOAL_AGENT_TOKEN"] == {"secretKeyRef": {"name": "agent-token", "key": "token"}}


@pytest.mark.parametrize(("sets", "message"), [(("agent.token=t",), "server.url"), (("server.url=http://x",), "agent.token")])
def test_agent_chart_says_what_is_missing(helm: Path, sets: tuple[str, ...], message: str) -> None:
    assert message in fails(helm, AGENT, *sets)


def test_charts_lint_clean(helm: Path) -> None:
    proc = subprocess.run(
        [str(helm), "lint", str(SERVER), str(AGENT), "--set", "server.url=http://x", "--set", "agent.token=t"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_image_provides_what_the_runtime_expects() -> None:
    """The Dockerfile puts a static busybox where the setup container looks and installs shoal (the
    toolkit command runs `python3 -m shoal.execution._toolkit`)."""
    from shoal.execution._kubernetes import KubernetesOptions

    text = (ROOT / "Dockerfile").read_text()
    options = KubernetesOptions()
    assert options.setup_busybox == "/usr/bin/busybox" and "busybox-static" in text
    assert options.toolkit.startswith("python3 -m shoal.execution._toolkit")
    assert "pip install" in text and 'ENTRYPOINT ["/usr/bin/tini", "--", "shoal"]' in text

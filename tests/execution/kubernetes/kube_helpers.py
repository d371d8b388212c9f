"""Shared helpers: compile a workflow into an ExecutionJob, render it, validate manifests strictly."""

from __future__ import annotations

import functools
import hashlib
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from lightkube import AsyncClient, KubeConfig, codecs

from shoal.execution import ExecutionJob, ExecutionOutcome
from shoal.execution._kubernetes import KubernetesOptions, KubernetesRuntime
from shoal.kube import LABEL_EXECUTION
from shoal.workflow import Bundle, ExecutionContext, compile_workflow, load_bundle
from shoal.workflow._status import ExecutionEvent
from tests.kubesim import Store
from tests.kubesim._sandbox import bwrap_usable

ROOT = Path(__file__).resolve().parents[3]
CORPUS = ROOT.parent / "shared" / "conformance" / "testkube"
VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
TOOLKIT = f"{sys.executable} -m shoal.execution._toolkit"


def stand_in_options(**extra: Any) -> KubernetesOptions:
    """Options for the stand-in: the "shoal image" containers run host tools (busybox, this Python)."""
    return KubernetesOptions(toolkit=TOOLKIT, kill_grace=1, **extra)


def job_from_text(text: str, tmp: Path, config: Mapping[str, str] | None = None, *, name: str | None = None,
                  templates: tuple[Path, ...] = ()) -> ExecutionJob:
    path = tmp / f"workflow-{hashlib.sha256(text.encode()).hexdigest()[:12]}.yaml"  # loads are cached by path
    path.write_text(text)
    return job_from_file(path, config, name=name, templates=templates)


def job_from_file(path: Path, config: Mapping[str, str] | None = None, *, name: str | None = None,
                  templates: tuple[Path, ...] = ()) -> ExecutionJob:
    bundle = _bundle((path, *templates))
    workflow = _bundle((path,)).workflow(name)
    compiled = compile_workflow(workflow, bundle.templates, config=dict(config or {}), context=ExecutionContext())
    plan = compiled.plan
    return ExecutionJob(execution_id=str(plan.context["id"]), plan=plan, secrets=dict(compiled.secrets),
                        config=dict(config or {}), name=f"{plan.workflow}-1")


@functools.cache
def _bundle(paths: tuple[Path, ...]) -> Bundle:
    return load_bundle(list(paths))


needs_bwrap = pytest.mark.skipif(
    not bwrap_usable(),
    reason="the stand-in runs containers under bubblewrap to give them /.shoal, /data...; bwrap is not usable here",
)


async def run_to_end(runtime: KubernetesRuntime, job: ExecutionJob) -> tuple[list[ExecutionEvent], ExecutionOutcome]:
    handle = await runtime.start(job)
    events = [event async for event in runtime.observe(handle)]
    return events, await runtime.wait(handle)


def step_logs(events: list[ExecutionEvent]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for event in events:
        if event.type == "log" and event.ref is not None:
            out.setdefault(event.ref, []).append(event.line or "")
    return out


def leftovers(store: Store, execution_id: str, namespace: str = "default") -> list[str]:
    """Objects of the execution still in the stand-in's store (by the execution label)."""
    return [
        f"{rt.kind}/{obj['metadata']['name']}"
        for rt, obj in store.all_in_namespace(namespace)
        if (obj["metadata"].get("labels") or {}).get(LABEL_EXECUTION) == execution_id and rt.kind != "Event"
    ]


# Schema files are parsed once per process (the validator reads the 2 MB definitions file per call).
kubernetes_validate.utils.schema_contents = functools.cache(kubernetes_validate.utils.schema_contents)


@functools.cache
def _validate_cached(text: str, version: str) -> None:
    kubernetes_validate.validate(json.loads(text), version, strict=True)


def validate_strictly(objects: list[dict[str, Any]]) -> None:
    """Every object against the 1.30 schemas and the newest ones kubernetes-validate ships, strict mode."""
    for obj in objects:
        text = json.dumps(obj, sort_keys=True)
        for version in VERSIONS:
            _validate_cached(text, version)


ACCOUNT = "shoal-agent-executions"


def _chart_role_rules() -> list[dict[str, Any]]:
    """The rules of the Role the shoal-agent chart binds to the executions' service account (rendered
    by the Python twin of the chart, which a test keeps equal to `helm template`)."""
    from shoal.clusters._agent_objects import AgentChartValues, render_agent_objects

    objects = render_agent_objects(AgentChartValues(namespace="default", server_url="http://x", token="t", name="a"))
    [role] = [o for o in objects if o["kind"] == "Role"]
    return list(role["rules"])


async def executions_service_account(kubeconfig: Path, namespace: str = "default") -> None:
    """The service account execution pods run as, bound to the chart's Role: the toolkit inside them
    starts parallel workers and services as Jobs of their own."""
    client = AsyncClient(config=KubeConfig.from_file(kubeconfig))
    rbac = "rbac.authorization.k8s.io"
    try:
        for obj in (
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": ACCOUNT}},
            {"apiVersion": f"{rbac}/v1", "kind": "Role", "metadata": {"name": ACCOUNT}, "rules": _chart_role_rules()},
            {"apiVersion": f"{rbac}/v1", "kind": "RoleBinding", "metadata": {"name": ACCOUNT},
             "roleRef": {"apiGroup": rbac, "kind": "Role", "name": ACCOUNT},
             "subjects": [{"kind": "ServiceAccount", "name": ACCOUNT, "namespace": namespace}]},
        ):
            await client.create(codecs.from_dict(obj), namespace=namespace)  # type: ignore[call-overload]
    finally:
        await client.close()

"""The pod is the Plan's container layout: a setup init container from the shoal image, then every Plan
container in order as an init container, the last one as the single main container; merged steps
share a container; job/pod overrides and the execution namespace come from the spec."""

from __future__ import annotations

from pathlib import Path

from shoal.execution._kubernetes import (
    SETUP_CONTAINER,
    KubernetesOptions,
    KubernetesRuntime,
    render_execution,
    unpack_init_bundle,
)
from shoal.kube import LABEL_AGENT, LABEL_EXECUTION, LABEL_RESOURCE, LABEL_WORKFLOW
from tests.execution.kubernetes.kube_helpers import job_from_text, validate_strictly

THREE_IMAGES = """
kind: TestWorkflow
apiVersion: testworkflows.testkube.io/v1
metadata: {name: three-images}
spec:
  job:
    namespace: "{{ config.namespace }}"
    labels: {team: qa}
    annotations: {note: kept}
    activeDeadlineSeconds: 900
  config:
    namespace: {type: string, default: default}
  pod:
    serviceAccountName: tests
    nodeSelector: {pool: ci}
    tolerations: [{key: ci, operator: Exists}]
    labels: {tier: tests}
    imagePullSecrets: [{name: regcred}]
    activeDeadlineSeconds: 800
  steps:
  - name: prepare
    shell: echo prepare
    pure: true
  - name: build
    shell: echo build
  - name: lint
    run: {image: "node:20", command: [node, --version]}
    pure: true
  - name: test
    run: {image: "node:20", command: [node, -e, "1"]}
  - name: report
    run: {image: "python:3.12", shell: echo report}
"""


def test_three_images_two_pure_give_the_plans_containers_in_order(tmp_path: Path) -> None:
    job = job_from_text(THREE_IMAGES, tmp_path, {"namespace": "pr-1234"})
    rendered = render_execution(job, KubernetesOptions(image="registry.example/shoal:1.0", agent="agent-7"))
    plan = rendered.plan
    # merged where allowed: busybox pure+impure, node pure+impure, python alone
    assert [c.image for c in plan.containers] == ["busybox:1.36", "node:20", "python:3.12"]
    assert [len([a for a in c.actions if a.op == "exec"]) for c in plan.containers] == [2, 2, 1]
    pod = rendered.job["spec"]["template"]["spec"]
    inits, mains = pod["initContainers"], pod["containers"]
    assert inits[0]["name"] == SETUP_CONTAINER and inits[0]["image"] == "registry.example/shoal:1.0"
    assert [c["image"] for c in inits[1:]] == ["busybox:1.36", "node:20"]
    assert [c["image"] for c in mains] == ["python:3.12"]
    for index, container in enumerate([*inits[1:], *mains]):
        assert container["command"] == ["/.shoal/busybox", "sh", f"/.shoal/c{index}.sh"]
        paths = {m["mountPath"] for m in container["volumeMounts"]}
        assert {"/.shoal", "/data", "/tmp", "/testkube"} <= paths
    bundle = unpack_init_bundle(rendered.config_map)
    assert {f"c{i}.sh" for i in range(3)} | {"lib.sh", "plan.sh", "plan.json", "mask"} <= set(bundle)
    validate_strictly(rendered.objects)


def test_job_and_pod_overrides_and_the_namespace_come_from_the_spec(tmp_path: Path) -> None:
    job = job_from_text(THREE_IMAGES, tmp_path, {"namespace": "pr-1234"})
    rendered = render_execution(job, KubernetesOptions(agent="agent-7"))
    assert rendered.namespace == "pr-1234"
    assert all(o["metadata"]["namespace"] == "pr-1234" for o in rendered.objects)
    meta, spec = rendered.job["metadata"], rendered.job["spec"]
    assert meta["name"] == job.execution_id
    assert meta["labels"]["team"] == "qa" and meta["annotations"]["note"] == "kept"
    assert meta["labels"][LABEL_EXECUTION] == job.execution_id
    assert meta["labels"][LABEL_RESOURCE] == job.execution_id
    assert meta["labels"][LABEL_WORKFLOW] == "three-images"
    assert meta["labels"][LABEL_AGENT] == "agent-7"
    assert spec["activeDeadlineSeconds"] == 900 and spec["backoffLimit"] == 0
    template = spec["template"]
    assert template["metadata"]["labels"]["tier"] == "tests"
    assert template["metadata"]["labels"][LABEL_EXECUTION] == job.execution_id
    pod = template["spec"]
    assert pod["serviceAccountName"] == "tests"
    assert pod["nodeSelector"] == {"pool": "ci"}
    assert pod["tolerations"] == [{"key": "ci", "operator": "Exists"}]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["activeDeadlineSeconds"] == 800
    assert pod["restartPolicy"] == "Never" and pod["securityContext"]["fsGroup"] == 1001
    default = render_execution(job_from_text(THREE_IMAGES, tmp_path), KubernetesOptions(namespace="agents"))
    assert default.namespace == "default"  # the config default, not the agent's namespace


def test_toolkit_operations_move_out_of_user_images(tmp_path: Path) -> None:
    job = job_from_text(
        """
kind: TestWorkflow
apiVersion: testworkflows.testkube.io/v1
metadata: {name: artifacts}
spec:
  container: {image: "alpine:3.19"}
  steps:
  - shell: mkdir -p /data/out && echo x > /data/out/a.txt
    artifacts: {paths: ["/data/out/*"]}
  - shell: echo after
""",
        tmp_path,
    )
    before = job.plan.containers
    rendered = render_execution(job, KubernetesOptions(image="shoal:test"))
    after = rendered.plan.containers
    kinds = [[rendered.plan.stages[a.ref].kind for a in c.actions if a.op == "exec"] for c in after]
    assert len(after) > len(before)
    for ops in kinds:
        if "artifacts" in ops:
            assert ops == ["artifacts"]
    images = [c["image"] for c in rendered.job["spec"]["template"]["spec"]["initContainers"][1:]]
    images += [rendered.job["spec"]["template"]["spec"]["containers"][0]["image"]]
    assert images == ["shoal:test" if "artifacts" in ops else "alpine:3.19" for ops in kinds]
    validate_strictly(rendered.objects)


def test_the_agent_charts_environment_configures_the_runtime(tmp_path: Path) -> None:
    env = {
        "SHOAL_KUBE_NAMESPACE": "runs", "SHOAL_KUBE_NAMESPACES": "runs, pr-1,pr-2",
        "SHOAL_KUBE_IMAGE": "registry.example/shoal:2.0", "SHOAL_KUBE_IMAGE_PULL_POLICY": "Always",
        "SHOAL_KUBE_ARTIFACTS_CLAIM": "shoal-artifacts", "SHOAL_HOME": str(tmp_path),
    }
    runtime = KubernetesRuntime.from_env(env, agent_name="cluster-a")
    assert runtime.namespaces == ["runs", "pr-1", "pr-2"]
    options = runtime.options
    assert (options.namespace, options.agent, options.image) == ("runs", "cluster-a", "registry.example/shoal:2.0")
    job = job_from_text(THREE_IMAGES, tmp_path, {"namespace": "pr-1"})
    rendered = render_execution(job, options)
    pod = rendered.job["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "shoal-run"]
    assert volume["persistentVolumeClaim"] == {"claimName": "shoal-artifacts"}
    for container in [*pod["initContainers"], *pod["containers"]]:
        (mount,) = [m for m in container["volumeMounts"] if m["name"] == "shoal-run"]
        assert mount["subPath"] == rendered.resource_id  # each execution its own directory of the claim
    assert pod["initContainers"][0]["imagePullPolicy"] == "Always"
    validate_strictly(rendered.objects)


def test_rendering_leaves_the_callers_plan_alone(tmp_path: Path) -> None:
    job = job_from_text(
        "kind: TestWorkflow\napiVersion: testworkflows.testkube.io/v1\nmetadata: {name: same}\nspec:\n"
        "  container: {image: 'alpine:3.19'}\n  steps:\n  - shell: echo a\n    artifacts: {paths: ['/data/*']}\n",
        tmp_path,
    )
    before = job.plan.to_dict()
    rendered = render_execution(job, KubernetesOptions())
    assert job.plan.to_dict() == before
    assert len(rendered.plan.containers) > len(job.plan.containers)

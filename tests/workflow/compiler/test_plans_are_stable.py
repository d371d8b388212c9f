"""Compiled Plans stay byte for byte what they were when this snapshot was taken.

Every workflow of the Testkube corpus (and worker 0 / instance 0 of each of its parallel and services
stages), plus a generated workflow with nested groups, templates and expressions in every step, is
compiled and its ``json.dumps(plan.to_dict(), sort_keys=True)`` hashed. A change to the compiler that
is meant to be behaviour-preserving (a speed-up) must keep every hash. When a Plan changes on purpose,
regenerate the snapshot with ``python -m tests.workflow.compiler.test_plans_are_stable`` and say why
in the commit message.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from shoal.workflow import (
    Bundle,
    Plan,
    WorkflowError,
    compile_service_instance,
    compile_worker,
    compile_workflow,
    load_bundle,
    load_documents,
)
from tests.workflow.compiler.compiler_helpers import CONTEXT

CORPUS = Path(__file__).resolve().parents[4] / "shared" / "conformance" / "testkube"

GENERATED = """
apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflowTemplate
metadata: {name: gen--base}
spec:
  config:
    cpu: {type: string, default: 100m}
  container:
    image: alpine:3.20
    resources: {requests: {cpu: "{{ config.cpu }}"}}
    env: [{name: BASE, value: "base-{{ config.cpu }}"}]
  setup: [{name: "Template setup", shell: "echo setup {{ config.cpu }}"}]
  after: [{name: "Template after", condition: always, shell: "echo after"}]
---
apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflowTemplate
metadata: {name: gen--step}
spec:
  config:
    label: {type: string, default: x}
    n: {type: integer, default: 3}
  container:
    env: [{name: LABEL, value: "{{ config.label }}-{{ config.n * 2 }}"}]
  steps: [{name: "From template {{ config.label }}", shell: "echo {{ config.n }}"}]
---
apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata:
  name: generated
  labels: {team: perf}
spec:
  use: [{name: gen/base, config: {cpu: 250m}}]
  config:
    message: {type: string, default: hello}
    enabled: {type: boolean, default: "true"}
    timeout: {type: string, default: 10m}
    dir: {type: string, default: work}
    workers: {type: integer, default: 2}
  job: {labels: {run: "{{ execution.id }}"}}
  container:
    workingDir: "/data/{{ config.dir }}"
    env: [{name: MESSAGE, value: "{{ config.message }}"}]
  content:
    files: [{path: /data/readme.txt, content: "{{ workflow.name }} {{ config.message }}"}]
  services:
    db:
      image: postgres:16
      env: [{name: POSTGRES_PASSWORD, value: "{{ config.message }}"}]
      readinessProbe: {tcpSocket: {port: 5432}}
      count: config.workers
  steps:
  - name: "Group {{ config.dir }}"
    steps:
    - name: "Step one of {{ workflow.name }}"
      shell: 'echo 1 {{ config.message }} {{ execution.id }} "{{ env.HOME }}"'
      use: [{name: gen/step, config: {label: first}}]
    - name: Step two
      condition: passed && config.enabled
      timeout: "{{ config.timeout }}"
      retry: {count: 2, until: self.passed}
      run: {image: busybox, args: ["echo", "{{ config.message }}", "{{ services.db.0.ip }}"]}
    - name: Optional step
      optional: true
      negative: true
      shell: exit 1
    - name: Failure handler
      condition: failed
      template: {name: gen/step, config: {label: "{{ config.dir }}", n: 5}}
  - name: Fan out
    parallel:
      count: config.workers
      matrix: {browser: [chrome, firefox]}
      description: "worker {{ index }} of {{ count }}"
      shell: "echo {{ matrix.browser }} {{ config.message }}"
  - name: Collect
    condition: always
    artifacts: {paths: ["/data/{{ config.dir }}/**/*.xml"]}
"""


@cache
def corpus() -> Bundle:
    return load_bundle([CORPUS / "workflows", CORPUS / "templates"])


def _digest(plan: Plan) -> str:
    text = json.dumps(plan.to_dict(), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _failure(exc: WorkflowError) -> str:
    # The message names the file by its absolute path: hash it relative to the corpus, so the
    # snapshot holds wherever the checkout lives.
    text = str(exc).replace(str(CORPUS), "<corpus>")
    return "error:" + hashlib.sha256(text.encode()).hexdigest()[:20]


def _children(plan: Plan) -> dict[str, str]:
    """Digests of worker 0 of each parallel stage and instance 0 of each service."""
    out: dict[str, str] = {}
    for stage in plan.stages.values():
        kinds: list[tuple[str, Any]] = []
        if stage.kind == "parallel":
            kinds.append((f"worker:{stage.ref}", lambda s=stage: compile_worker(plan, s.ref, 0)))
        if stage.kind == "services-start":
            for name in sorted(stage.spec.get("services") or {}):
                kinds.append(
                    (
                        f"service:{stage.ref}:{name}",
                        lambda s=stage, n=name: compile_service_instance(plan, s.ref, n, 0),
                    )
                )
        for key, build in kinds:
            try:
                out[key] = _digest(build())
            except WorkflowError as exc:
                out[key] = _failure(exc)
    return out


def _documents() -> dict[str, Any]:
    """Every document to compile: name -> (workflow, templates)."""
    bundle = corpus()
    docs: dict[str, Any] = {str(d.name): (d, bundle.templates) for d in bundle.workflows}
    generated = load_documents(GENERATED, "generated.yaml")
    templates = {str(d.name): d for d in generated if d.kind == "TestWorkflowTemplate"}
    for doc in generated:
        if doc.kind == "TestWorkflow":
            docs[f"generated:{doc.name}"] = (doc, templates)
    return docs


def digests_of(name: str) -> dict[str, str]:
    doc, templates = _documents()[name]
    try:
        plan = compile_workflow(doc, templates, {}, CONTEXT).plan
    except WorkflowError as exc:
        return {"plan": _failure(exc)}
    return {"plan": _digest(plan), **_children(plan)}


def current_snapshot() -> dict[str, dict[str, str]]:
    return {name: digests_of(name) for name in sorted(_documents())}


SNAPSHOT: dict[str, dict[str, str]] = {
    "combined-workflows-suite": {"plan": "9ae50a208017fae51cde"},
    "curl-with-nginx-service": {
        "plan": "87b9f2a10e1ff8a4cb22",
        "service:r6w6n4m:nginx": "d9b0513ff8bfea3f9e81",
    },
    "cypress-browsers-matrix": {"plan": "e331dd32c9de2c5f6098", "worker:rpz0gqa": "d568eb0d8c84a28f80d6"},
    "cypress-junit-report": {"plan": "ca1c7f4e2656a364ef30"},
    "cypress-video-recording": {"plan": "046069ae6ef27a49283d"},
    "expected-fail-conditional-step-failed": {"plan": "63e7207a88923bfcbaab"},
    "expected-fail-cypress-artifacts-condition-always-with-artifacts": {"plan": "5757e889816630c4bb91"},
    "expected-fail-cypress-incorrect-image-name": {"plan": "701b1b5d2de7fa4d3bd3"},
    "expected-fail-cypress-incorrect-repo-path": {"plan": "f8d748f7d7c29c9315ff"},
    "expected-fail-cypress-incorrect-repo-path-cone-mode": {"plan": "f53b1b84476017b61b86"},
    "expected-fail-cypress-incorrect-workingdir": {"plan": "e1605d7a7a1b0c634662"},
    "expected-fail-high-parallel-first-step-failed-sync-paused": {
        "plan": "4c401afa70ade6980da5",
        "worker:rc0g8px": "c4994d267105ae3e3bb9",
    },
    "expected-fail-high-parallel-step-failed": {
        "plan": "c736c81f713f37698ef4",
        "worker:rlfty9g": "3c914d59424940a5e95b",
    },
    "expected-fail-high-parallel-step-failed-sync-paused": {
        "plan": "d1076fbf81de93157a08",
        "worker:r6cpftu": "aa0ba6311446ca0152ce",
    },
    "expected-fail-k6-test-report-condition-always-no-artifacts": {"plan": "a7bafc201534166d6e50"},
    "expected-fail-missing-git-secret": {"plan": "fe4227b955fa1d32784f"},
    "expected-fail-missing-template": {"plan": "error:dbe76f1a061ef88e73d7"},
    "expected-fail-negative-step": {"plan": "9866d2af763ad23cd709"},
    "expected-fail-parallel-oomkilled": {
        "plan": "12ed0b47dc4ec00ae7cb",
        "worker:r2nwhvp": "a8b07aa737658937af98",
    },
    "expected-fail-parallel-step-fail-fast": {
        "plan": "2472b13d40272f294eb8",
        "worker:r67mdjv": "f5a1254c63974696ecd8",
    },
    "expected-fail-parallel-step-failed": {
        "plan": "7528d4aabd39d46aec7e",
        "worker:rkammod": "2ee91f0402290e66af5c",
    },
    "expected-fail-parallel-step-timed-out": {
        "plan": "7d9de1ed6529439cebfb",
        "worker:r30rzte": "e22c1d54958d9c276b2b",
    },
    "expected-fail-private-registry-auth": {"plan": "5d0f2692f81605b2867c"},
    "expected-fail-private-repo-auth": {"plan": "5483bea15e4e28345dee"},
    "expected-fail-service-exit-code": {
        "plan": "ab6afa0ea6db7a577496",
        "service:r10o5ne:slave": "e86231d448ee6e11e7a8",
    },
    "expected-fail-service-oomkilled": {
        "plan": "59b5c65adba2e0b1192e",
        "service:r86allp:service": "7b4d94faebd23e3387c9",
    },
    "expected-fail-service-oomkilled-after-readiness": {
        "plan": "f7fffcbdc9ac2937ea51",
        "service:r3vxigk:service": "f984fb4109371f00ffb6",
    },
    "expected-fail-service-readiness-probe": {
        "plan": "43d9775c3ddc136e6b46",
        "service:rsmi0kn:broken-service": "fe7d1004041ce5890dcb",
    },
    "expected-fail-step-oomkilled": {"plan": "5691a9041b712f30a6a5"},
    "expected-fail-step-retry": {"plan": "f02d67fedcb01618f830"},
    "expected-fail-template-missing-config-options": {"plan": "error:7119ab01a7e78b312418"},
    "expected-fail-template-not-defined-config-options": {"plan": "error:abe31256f47bc3a4cec6"},
    "expected-fail-timeout-activedeadlineseconds": {"plan": "410868f8017b4ebf4efa"},
    "expected-fail-timeout-step": {"plan": "51003d09d076d3d95074"},
    "expected-fail-volume-not-mounted": {"plan": "error:26127c6ef8b19700b8b5"},
    "expected-random-random-oomkilled": {"plan": "f315c3733b1058079f56"},
    "generated:generated": {
        "plan": "54dac17d7412a98eabf3",
        "service:ru14emk:db": "2fff4157b2987cfa6a2c",
        "worker:r3y49uz": "27cbf2799b32294c55db",
    },
    "junit5-junit": {"plan": "769bccf605d3c9b507f0"},
    "junit5-mixed-results-failures-junit-report": {"plan": "b21bf157eb1d1adf4035"},
    "k6-distributed": {"plan": "44b9feec9a2f568d8cfa", "worker:rvmy9xp": "8bfc8163918a1f92470c"},
    "large-artifacts-100mb": {"plan": "d66a5170866b09ced6b9"},
    "large-artifacts-1gb": {"plan": "b4161a328185b90d0e1d"},
    "large-logs-11mb-1s": {"plan": "5d4af003ca83ce879687"},
    "large-logs-11mb-no-delay": {"plan": "e4e9fe9043aa3bb9e269"},
    "large-logs-1mb-1s": {"plan": "c6b073ba24d317f7378f"},
    "large-logs-1mb-no-delay": {"plan": "3514952619b10126fa3b"},
    "large-logs-22mb-2s": {"plan": "5c63e80d6cb6edabce75"},
    "nunit-junit-report": {"plan": "8521c2633ab6a62d165d"},
    "playwright-workflow-smoke-junit": {"plan": "c83d6accf56a367ba9ad"},
    "postman-junit-report": {"plan": "5b1c9ba534b762a09c6a"},
    "pytest-junit": {"plan": "c47275486170ea764fea"},
    "pytest-mixed-results-failures-junit-report": {"plan": "dc0d29d7a747673e28a9"},
    "special-cases-30s": {"plan": "57a77a82b2c59bf363c9"},
    "special-cases-artifact-double-asterisk": {"plan": "49d97a2fd5f34c50b8d2"},
    "special-cases-conditional-step-failed-but-optional": {"plan": "72613a7264a0837fc8f2"},
    "special-cases-conditional-step-passed": {"plan": "b98725f65c4899b15c6b"},
    "special-cases-conditional-step-skipped": {"plan": "690c461680173f971f51"},
    "special-cases-config-override": {"plan": "b85163721562660574d1"},
    "special-cases-config-override-target": {
        "plan": "fee08ed4ce4457e422a5",
        "service:r1z5vpp:service": "error:b236ef30c0876f14ecaf",
        "worker:r0811bv": "error:b236ef30c0876f14ecaf",
    },
    "special-cases-cron-trigger-with-timezone": {"plan": "39b9cfeeb4330be01a94"},
    "special-cases-custom-shared-volume-steps": {"plan": "bde73b486eca4366eba4"},
    "special-cases-dev-credentials": {
        "plan": "153241590f096f5289eb",
        "service:rh1752t:echo-service": "ad0dd4f65de484b02076",
    },
    "special-cases-dev-credentials-private-git-repository": {"plan": "02b97b19c7111c216c87"},
    "special-cases-env-expression-env-not-set": {"plan": "78180ba898e4b6d5c2a6"},
    "special-cases-execute-100-parallel": {"plan": "bc8afe7a0921a926f447"},
    "special-cases-execute-workflows-selector-matchlabels": {"plan": "418f164338854f27fef7"},
    "special-cases-execution-tags": {"plan": "3b49fa05b961cc73a604"},
    "special-cases-global-env": {
        "plan": "938c6cc961144fe808ac",
        "service:r0j5up6:service": "247628676771aa545840",
    },
    "special-cases-long-lasting-30m": {"plan": "2cd9859fe6cdf6aa622e"},
    "special-cases-long-lasting-90m": {"plan": "5552fbd89a681e199df3"},
    "special-cases-long-lasting-sleep-90m": {"plan": "9cc807da046144c4db57"},
    "special-cases-missing-configmap-key": {"plan": "56bfaa00287866b13d9d"},
    "special-cases-missing-env-secret": {"plan": "65f3d45a6cb1e788b33d"},
    "special-cases-multiple-git-repositories-custommountpath": {"plan": "dc545ea094c153a64688"},
    "special-cases-negative-step": {"plan": "8aeaa846956b72765138"},
    "special-cases-no-initial-output": {"plan": "af4ae0527bb633d45e09"},
    "special-cases-optional-step-failed": {"plan": "3c68a1db5cce6fc4436a"},
    "special-cases-optional-step-passed": {"plan": "194cc27de1fefd24085f"},
    "special-cases-optional-step-timed-out": {"plan": "8ba9ae0051be169ae723"},
    "special-cases-parallel-steps": {
        "plan": "73cff4077878e4533a3b",
        "worker:rhzb7go": "d43ad377bbb488d04ad4",
    },
    "special-cases-parallel-steps-fail-fast-disabled": {
        "plan": "aaa8004a7275c3faa44a",
        "worker:r0024ae": "861f81e6fff99da0e21f",
    },
    "special-cases-parallel-steps-matrix": {
        "plan": "f4136ef7c4dfdf9b8497",
        "worker:rwlsrz9": "31daafb1064265234f7b",
    },
    "special-cases-runner-target--dev-runner-2-ind": {"plan": "ddbfa7391b772cdf85ae"},
    "special-cases-securitycontext-runasuser-runasgroup": {
        "plan": "40318dc013b14e5f4c2f",
        "service:r1n1h13:slave": "d31bb515c9b131523f76",
        "worker:rt6o78y": "feb12ee3d284eb475ceb",
    },
    "special-cases-service-name-with-dash": {
        "plan": "9cd83b3dc6ea70b5ef1e",
        "service:rehj2rn:service-name-with-dash": "e0af61ed0a4d75121634",
    },
    "special-cases-silent-workflow": {"plan": "7181fb385985f5dc8b01"},
    "special-cases-step-env-override": {
        "plan": "e0ee5cd39ac4f7eafe63",
        "service:rsybbkj:echo-service": "9b240f26ebf29e621d8e",
        "worker:reexabf": "736620516099cf9292d3",
    },
    "special-cases-step-retry": {"plan": "8310f5c89ddd899161be"},
    "special-cases-step-sharing": {"plan": "c7b69a056ab5358c1d89"},
    "special-cases-step-timeout-ok": {"plan": "dc34c3c54f9c9ed8b5bd"},
    "special-cases-unique-labels": {"plan": "44fb85c348a0c1a673cf"},
    "special-cases-workingdir-override": {"plan": "ae960ce61e1e47b47423"},
    "trigger-remote-workflow-with-template": {"plan": "991cec179fee96d3ddcd"},
    "write-read-100mb": {"plan": "7354d4763d67ef594978"},
}


def test_the_snapshot_covers_every_document() -> None:
    assert sorted(SNAPSHOT) == sorted(_documents())


@pytest.mark.parametrize("name", sorted(SNAPSHOT))
def test_plan_is_unchanged(name: str) -> None:
    assert digests_of(name) == SNAPSHOT[name]


if __name__ == "__main__":
    print(json.dumps(current_snapshot(), indent=4, sort_keys=True))

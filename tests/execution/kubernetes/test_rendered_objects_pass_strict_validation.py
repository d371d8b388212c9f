"""Every object the runtime would create for the Testkube corpus (and shoal's own features) passes
kubernetes-validate in strict mode against Kubernetes 1.30 and the newest schemas it ships."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from shoal.execution._kubernetes import KubernetesOptions, images_needing_metadata, render_objects
from shoal.kube import ImageConfig
from shoal.workflow import ResolutionError
from tests.execution.kubernetes.kube_helpers import CORPUS, job_from_file, job_from_text, validate_strictly

EXPECTED = yaml.safe_load((CORPUS / "expected.yaml").read_text()) if CORPUS.exists() else {"workflows": []}
ENTRIES = EXPECTED["workflows"]


@pytest.mark.slow
@pytest.mark.skipif(not ENTRIES, reason="the conformance corpus is not available")
def test_every_corpus_workflow_renders_valid_objects() -> None:
    rendered = 0
    for entry in ENTRIES:
        try:
            job = job_from_file(CORPUS / entry["file"], name=entry["name"],
                                templates=(CORPUS / "templates", CORPUS / "workflows"))
        except ResolutionError:
            continue  # the expected-fail-* cases that never reach a cluster
        # Steps that run an image's own entrypoint get it from the registry; here: a stand-in config.
        images = {image: ImageConfig(digest="sha256:" + "0" * 64, entrypoint=["/entrypoint"], cmd=["run"])
                  for image in images_needing_metadata(job.plan)}
        objects = render_objects(job, KubernetesOptions(namespace="tests"), images)
        assert [o["kind"] for o in objects][-1] == "Job"
        validate_strictly(objects)
        rendered += 1
    assert rendered >= len(ENTRIES) - 10


def test_files_secrets_volumes_and_pod_overrides_render_valid_objects(tmp_path: Path) -> None:
    job = job_from_text(
        """
kind: TestWorkflow
apiVersion: testworkflows.testkube.io/v1
metadata: {name: everything}
spec:
  config:
    password: {type: string, sensitive: true, default: hunter22}
  content:
    files:
    - {path: /data/config.json, content: '{"a": 1}', mode: 384}
    - {path: /etc/app/settings.ini, content: "[x]"}
    - path: /data/from-secret
      contentFrom: {secretKeyRef: {name: creds, key: token}}
  pvcs:
    cache: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
  pod:
    serviceAccountName: runner
    imagePullSecrets: [{name: regcred}]
    nodeSelector: {pool: tests}
    tolerations: [{key: dedicated, operator: Equal, value: tests, effect: NoSchedule}]
    volumes:
    - {name: shared, emptyDir: {}}
    - {name: cache, persistentVolumeClaim: {claimName: "{{ pvcs.cache.name }}"}}
    securityContext: {runAsNonRoot: true}
  job:
    activeDeadlineSeconds: 600
    labels: {team: qa}
    annotations: {owner: qa-team}
  container:
    resources: {requests: {cpu: 100m, memory: 64Mi}, limits: {memory: 128Mi}}
    env:
    - {name: FROM_CM, valueFrom: {configMapKeyRef: {name: settings, key: mode}}}
    envFrom:
    - configMapRef: {name: extra}
  steps:
  - shell: 'echo {{ config.password }}'
    container:
      volumeMounts: [{name: shared, mountPath: /shared}, {name: cache, mountPath: /cache}]
  - run:
      image: alpine:3.19
      command: [sh, -c, "true"]
      securityContext: {runAsUser: 1000, runAsGroup: 1000}
""",
        tmp_path,
    )
    objects = render_objects(job, KubernetesOptions(namespace="tests", agent="agent-1", artifacts_host_path="/var/lib/shoal"))
    validate_strictly(objects)
    kinds = [o["kind"] for o in objects]
    assert kinds == ["ConfigMap", "Secret", "PersistentVolumeClaim", "Job"]

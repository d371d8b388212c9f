"""The agent chart's Role is all the Kubernetes runtime needs: with a token of the chart's service
account (RBAC enforced by the stand-in) an execution with secrets and files runs, is aborted and
re-attached; outside its namespace the same token is refused."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from shoal.execution._kubernetes import KubernetesRuntime
from shoal.kube import KubeClient, KubeError
from tests.deploy.test_charts_render_valid_manifests import AGENT, by_kind, render
from tests.execution.kubernetes.kube_helpers import job_from_text, needs_bwrap, run_to_end, stand_in_options
from tests.kubesim import KubeSim

WORKFLOW = """
kind: TestWorkflow
apiVersion: testworkflows.testkube.io/v1
metadata: {name: rbac}
spec:
  config:
    password: {type: string, sensitive: true, default: hunter22}
  content:
    files: [{path: /data/in.txt, content: hello}]
  pvcs:
    scratch: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
  pod:
    volumes: [{name: scratch, persistentVolumeClaim: {claimName: "{{ pvcs.scratch.name }}"}}]
  steps:
  - shell: 'cat /data/in.txt; echo " {{ config.password }}" > /scratch/x'
    container: {volumeMounts: [{name: scratch, mountPath: /scratch}]}
"""


async def _agent_kubeconfig(sim: KubeSim, helm: Path, tmp: Path) -> Path:
    docs = render(helm, AGENT, "server.url=http://x", "agent.token=t", namespace="default")
    admin = KubeClient.from_kubeconfig(sim.kubeconfig(tmp / "admin"))
    for kind in ("ServiceAccount", "Role", "RoleBinding"):
        for doc in by_kind(docs, kind):
            async with httpx.AsyncClient(base_url=sim.url, headers={"Authorization": f"Bearer {sim.token}"}) as http:
                group = "api/v1" if kind == "ServiceAccount" else "apis/rbac.authorization.k8s.io/v1"
                plural = {"ServiceAccount": "serviceaccounts", "Role": "roles", "RoleBinding": "rolebindings"}[kind]
                resp = await http.post(f"/{group}/namespaces/default/{plural}", json=doc)
                assert resp.status_code == 201, resp.text
    await admin.close()
    sa = by_kind(docs, "ServiceAccount")[0]["metadata"]["name"]
    async with httpx.AsyncClient(base_url=sim.url, headers={"Authorization": f"Bearer {sim.token}"}) as http:
        resp = await http.post(f"/api/v1/namespaces/default/serviceaccounts/{sa}/token", json={
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}})
        assert resp.status_code == 201, resp.text
        token = resp.json()["status"]["token"]
    return sim.kubeconfig(tmp / "agent", token=token)


@needs_bwrap
async def test_the_charts_role_runs_aborts_and_reattaches(kubesim: KubeSim, helm: Path, tmp_path: Path) -> None:
    kubeconfig = await _agent_kubeconfig(kubesim, helm, tmp_path)
    runtime = KubernetesRuntime(kubeconfig, home=tmp_path / "home", options=stand_in_options())
    try:
        events, outcome = await asyncio.wait_for(run_to_end(runtime, job_from_text(WORKFLOW, tmp_path)), 30)
        assert outcome.status == "passed", outcome.execution["result"]
        assert any(e.line == "hello" for e in events if e.type == "log")
        slow = job_from_text(WORKFLOW.replace("cat /data/in.txt;", "echo started; sleep 30;"), tmp_path)
        handle = await runtime.start(slow)
        async for event in runtime.observe(handle):
            if event.type == "log" and event.line == "started":
                break
        await runtime.close()  # an agent restart: attach lists by label with the same token
        runtime = KubernetesRuntime(kubeconfig, home=tmp_path / "home", options=stand_in_options())
        again = await runtime.attach(slow.execution_id)
        assert again is not None
        await asyncio.wait_for(runtime.stop(again, grace=1), 20)
        assert (await runtime.wait(again)).status == "aborted"
    finally:
        await runtime.close()
    client = KubeClient.from_kubeconfig(kubeconfig)
    try:
        try:
            await client.list("ConfigMap", namespace="kube-system")
        except KubeError as exc:
            assert exc.code == 403
        else:
            raise AssertionError("the agent's token could list ConfigMaps outside its namespace")
    finally:
        await client.close()


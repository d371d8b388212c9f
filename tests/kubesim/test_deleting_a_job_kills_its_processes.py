"""Deleting a Job (with propagation) or a pod stops the container process trees: TERM, grace, KILL."""

from __future__ import annotations

import time
from pathlib import Path

from lightkube import AsyncClient
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Pod
from lightkube.types import CascadeType

from tests.kubesim import KubeSim
from tests.kubesim._testkit import alive, container, job, pod, raw_client, running_tree, wait_for_path

# pid 1 of a container ignores TERM unless it traps it, as in a real container
TRAPPING = "trap 'echo got-term > /out/term; exit 0' TERM; sleep 1000 & echo started > /out/started; wait"
STUBBORN = "sleep 1000 & echo started > /out/started; wait"


def _out(kubesim: KubeSim, name: str) -> tuple[Path, dict[str, object]]:
    d = kubesim.root / "host" / name
    d.mkdir(parents=True)
    return d, {"name": "out", "hostPath": {"path": str(d), "type": "Directory"}}


def _tree_of(kubesim: KubeSim) -> set[int]:
    return running_tree(kubesim)


async def test_background_deletion_of_a_job_kills_the_pod_tree(client: AsyncClient, kubesim: KubeSim) -> None:
    out, volume = _out(kubesim, "bg")
    main = container("main", TRAPPING, volumeMounts=[{"name": "out", "mountPath": "/out"}])
    await client.create(job("long", [main], volumes=[volume]), namespace="default")
    await wait_for_path(out / "started")
    tree = _tree_of(kubesim)
    assert len(tree) >= 2  # the shell and its sleeping child (plus bubblewrap)
    await client.delete(Job, "long", namespace="default", cascade=CascadeType.BACKGROUND)
    assert kubesim.wait_until(lambda _: not kubesim.list("pods", "default"), timeout=10)
    assert (out / "term").read_text() == "got-term\n"  # TERM reached the main process, which exited cleanly
    assert not alive(tree)
    assert kubesim.get("jobs", "default", "long") is None


async def test_default_job_deletion_orphans_its_pod(client: AsyncClient, kubesim: KubeSim) -> None:
    out, volume = _out(kubesim, "orphan")
    main = container("main", STUBBORN, volumeMounts=[{"name": "out", "mountPath": "/out"}])
    await client.create(job("kept", [main], volumes=[volume]), namespace="default")
    await wait_for_path(out / "started")
    async with raw_client(kubesim) as raw:  # batch/v1 default: Orphan, with the real server's warning
        res = await raw.request("DELETE", "/apis/batch/v1/namespaces/default/jobs/kept")
    assert res.status_code == 200 and "child pods are preserved by default" in res.headers["warning"]
    assert kubesim.wait_until(lambda _: kubesim.get("jobs", "default", "kept") is None, timeout=10)
    [orphan] = kubesim.list("pods", "default")
    assert "ownerReferences" not in orphan["metadata"]
    assert orphan["status"]["phase"] == "Running" and _tree_of(kubesim)
    # a stubborn pid 1 is killed once the grace period is over
    tree = _tree_of(kubesim)
    started = time.monotonic()
    await client.delete(Pod, orphan["metadata"]["name"], namespace="default", grace_period=1)
    assert kubesim.wait_until(lambda _: not kubesim.list("pods", "default"), timeout=10)
    assert time.monotonic() - started >= 0.9
    assert not alive(tree)


async def test_graceful_pod_deletion_is_visible_before_the_pod_goes(client: AsyncClient, kubesim: KubeSim) -> None:
    out, volume = _out(kubesim, "graceful")
    await client.create(pod("p", [container("main", TRAPPING, volumeMounts=[{"name": "out", "mountPath": "/out"}])],
                            volumes=[volume]), namespace="default")
    await wait_for_path(out / "started")
    before = await client.get(Pod, "p", namespace="default")
    events = []
    watch = client.watch(Pod, namespace="default", resource_version=before.metadata.resourceVersion)  # type: ignore[union-attr]
    await client.delete(Pod, "p", namespace="default")
    async for op, obj in watch:
        term = (obj.status.containerStatuses or [])[0].state.terminated  # type: ignore[union-attr]
        events.append((op, obj.metadata.deletionTimestamp is not None,  # type: ignore[union-attr]
                       term.exitCode if term else None))
        if op == "DELETED":
            break
    # (a status update of the running pod may come first: the kubelet reports readiness on its own time)
    deleting = [e for e in events if e[1]]
    assert deleting[0] == ("MODIFIED", True, None)  # deletionTimestamp set while the container still runs
    assert all(term is None for _, marked, term in events if not marked)
    assert ("MODIFIED", True, 0) in events  # the trap exited 0 after TERM
    assert events[-1][0] == "DELETED"


async def test_foreground_deletion_keeps_the_job_until_its_pods_are_gone(client: AsyncClient,
                                                                       kubesim: KubeSim) -> None:
    out, volume = _out(kubesim, "fg")
    main = container("main", TRAPPING, volumeMounts=[{"name": "out", "mountPath": "/out"}])
    await client.create(job("fg", [main], volumes=[volume]), namespace="default")
    await wait_for_path(out / "started")
    await client.delete(Job, "fg", namespace="default", cascade=CascadeType.FOREGROUND)
    held = kubesim.get("jobs", "default", "fg")
    # the job is still there (being deleted) or already gone if the pods went very fast
    if held is not None:
        assert held["metadata"]["deletionTimestamp"]
        assert "foregroundDeletion" in held["metadata"]["finalizers"]
    assert kubesim.wait_until(lambda _: kubesim.get("jobs", "default", "fg") is None, timeout=10)
    assert not kubesim.list("pods", "default")

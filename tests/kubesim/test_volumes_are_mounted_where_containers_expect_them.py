"""Volume mounts: readOnly, subPath, secret/configMap items and modes, paths the host does not have."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from lightkube import AsyncClient
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import ConfigMap, Secret

from tests.kubesim import KubeSim
from tests.kubesim._sandbox import bwrap_usable
from tests.kubesim._testkit import client_for, container, pod

needs_bwrap = pytest.mark.skipif(not bwrap_usable(), reason="bubblewrap is not usable here")


def _phase(kubesim: KubeSim, name: str) -> str | None:
    return (kubesim.get("pods", "default", name) or {}).get("status", {}).get("phase")


async def _run(client: AsyncClient, kubesim: KubeSim, name: str, script: str, mounts: list[dict[str, object]],
               volumes: list[dict[str, object]]) -> tuple[str, list[str]]:
    await client.create(pod(name, [container("main", script, volumeMounts=mounts)], volumes=volumes),
                        namespace="default")
    assert kubesim.wait_until(lambda _: _phase(kubesim, name) in ("Succeeded", "Failed"), 10)
    return str(_phase(kubesim, name)), [line async for line in client.log(name, namespace="default")]


@needs_bwrap
async def test_mounts_under_bubblewrap(client: AsyncClient, kubesim: KubeSim) -> None:
    assert kubesim.options.bwrap
    await client.create(ConfigMap(metadata=ObjectMeta(name="files"), data={"a.txt": "A\n", "b.txt": "B\n"}),
                        namespace="default")
    await client.create(Secret(metadata=ObjectMeta(name="keys"), stringData={"id": "secret-id\n"}), namespace="default")
    absent = "/opt/kubesim-test-does-not-exist/deeper"
    assert not os.path.exists(absent)
    script = "; ".join([
        "cat /cfg/renamed.txt", "ls /cfg",
        "stat -c %a /keys/id", "cat /keys/id",
        "echo w > /work/sub/file && echo wrote-sub",
        "(echo x > /ro/file) 2>/dev/null || echo read-only-refused",
        f"echo deep > {absent}/file && cat {absent}/file",
        "hostname",
    ])
    mounts = [{"name": "cfg", "mountPath": "/cfg"}, {"name": "keys", "mountPath": "/keys"},
              {"name": "scratch", "mountPath": "/work/sub", "subPath": "nested/dir"},
              {"name": "scratch", "mountPath": "/ro", "readOnly": True},
              {"name": "deep", "mountPath": absent}]
    volumes = [{"name": "cfg", "configMap": {"name": "files", "items": [{"key": "a.txt", "path": "renamed.txt"}]}},
               {"name": "keys", "secret": {"secretName": "keys", "defaultMode": 0o400}},
               {"name": "scratch", "emptyDir": {}}, {"name": "deep", "emptyDir": {}}]
    phase, lines = await _run(client, kubesim, "mounts", script, mounts, volumes)
    assert lines == ["A\n", "renamed.txt\n", "400\n", "secret-id\n", "wrote-sub\n", "read-only-refused\n",
                     "deep\n", "mounts\n"], lines
    assert phase == "Succeeded"
    assert not os.path.exists(absent)  # the mount point was made inside the sandbox, not on the host


async def test_without_bubblewrap_mounts_are_published_in_kubesim_mounts(tmp_path: Path) -> None:
    with KubeSim(bwrap=False) as sim:
        client = client_for(sim, tmp_path / "kc")
        script = 'python3 -c "import json,os; m=json.loads(os.environ[\'KUBESIM_MOUNTS\']); print(sorted(m))"; pwd'
        c = container("main", script, volumeMounts=[{"name": "data", "mountPath": "/data"}], workingDir="/data/wd")
        await client.create(pod("plain", [c], volumes=[{"name": "data", "emptyDir": {}}]), namespace="default")
        assert sim.wait_until(lambda _: _phase(sim, "plain") == "Succeeded", 10)
        lines = [line async for line in client.log("plain", namespace="default")]
        assert lines[0].strip().startswith("['/data'")
        assert lines[1].strip().endswith("/volumes/data/wd")  # workingDir mapped into the volume on the host
        await client.close()


async def test_a_missing_executable_is_a_start_error(client: AsyncClient, kubesim: KubeSim) -> None:
    bad = {"name": "main", "image": "busybox", "command": ["no-such-binary-kubesim"]}
    await client.create(pod("noexec", [bad]), namespace="default")
    assert kubesim.wait_until(lambda _: _phase(kubesim, "noexec") == "Failed", 10)
    state = (kubesim.get("pods", "default", "noexec") or {})["status"]["containerStatuses"][0]["state"]
    assert state["terminated"]["reason"] == "StartError" and state["terminated"]["exitCode"] == 128
    assert "executable file not found in $PATH" in state["terminated"]["message"]


async def test_termination_message_is_reported(client: AsyncClient, kubesim: KubeSim) -> None:
    script = "echo 'all good' > /dev/termination-log" if kubesim.options.bwrap else \
        'echo "all good" > "$KUBESIM_TERMINATION_LOG"'
    await client.create(pod("msg", [container("main", script)]), namespace="default")
    assert kubesim.wait_until(lambda _: _phase(kubesim, "msg") == "Succeeded", 10)
    state = (kubesim.get("pods", "default", "msg") or {})["status"]["containerStatuses"][0]["state"]
    assert state["terminated"]["message"] == "all good\n"


@needs_bwrap
async def test_commands_resolve_through_symlinks_inside_volumes(client: AsyncClient, kubesim: KubeSim) -> None:
    # how an init program ships its tools: copied into a shared volume, linked by absolute container paths
    setup = container("setup", "cp \"$(command -v sh)\" /.shoal/tool && mkdir /.shoal/bin && "
                               "ln -s /.shoal/tool /.shoal/bin/tool",
                      volumeMounts=[{"name": "shared", "mountPath": "/.shoal"}])
    by_path = {"name": "by-path", "image": "distroless:1", "command": ["/.shoal/bin/tool", "-c", "echo by-path"],
               "volumeMounts": [{"name": "shared", "mountPath": "/.shoal"}]}
    by_lookup = {"name": "by-lookup", "image": "distroless:1", "command": ["tool", "-c", "echo by-lookup"],
                 "env": [{"name": "PATH", "value": "/.shoal/bin"}],
                 "volumeMounts": [{"name": "shared", "mountPath": "/.shoal"}]}
    await client.create(pod("linked", [by_path, by_lookup], initContainers=[setup],
                            volumes=[{"name": "shared", "emptyDir": {}}]), namespace="default")
    assert kubesim.wait_until(lambda _: _phase(kubesim, "linked") in ("Succeeded", "Failed"), 10)
    assert _phase(kubesim, "linked") == "Succeeded"
    for name in ("by-path", "by-lookup"):
        assert [line async for line in client.log("linked", namespace="default", container=name)] == [f"{name}\n"]

"""Manifest builders and a client factory shared by kubesim's tests."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any, cast

import httpx
from lightkube import AsyncClient, KubeConfig
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Pod

from tests.kubesim import KubeSim


def container(name: str, script: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": "busybox:1.36", "command": ["sh", "-c", script], **extra}


def job(name: str, containers: list[dict[str, Any]], *, init: list[dict[str, Any]] | None = None,
        volumes: list[dict[str, Any]] | None = None, backoff_limit: int = 0, labels: dict[str, str] | None = None,
        **spec: Any) -> Job:
    pod_spec: dict[str, Any] = {"restartPolicy": "Never", "containers": containers}
    if init:
        pod_spec["initContainers"] = init
    if volumes:
        pod_spec["volumes"] = volumes
    return cast(Job, Job.from_dict({"apiVersion": "batch/v1", "kind": "Job",
                          "metadata": {"name": name, "labels": labels or {}},
                          "spec": {"backoffLimit": backoff_limit, **spec,
                                   "template": {"metadata": {"labels": labels or {}}, "spec": pod_spec}}}))


def pod(name: str, containers: list[dict[str, Any]], *, labels: dict[str, str] | None = None,
        **spec: Any) -> Pod:
    return cast(Pod, Pod.from_dict({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}},
                          "spec": {"restartPolicy": "Never", "containers": containers, **spec}}))


def client_for(sim: KubeSim, path: Path, token: str | None = None, namespace: str = "default") -> AsyncClient:
    """A lightkube client for `sim`, with the admin token or the given one."""
    return AsyncClient(config=KubeConfig.from_file(sim.kubeconfig(path, token=token, namespace=namespace)))


def raw_client(sim: KubeSim, token: str | None = None) -> httpx.AsyncClient:
    """A plain HTTP client for requests lightkube does not make (bookmarks, bad bodies, no token)."""
    headers = {} if token == "" else {"Authorization": f"Bearer {token or sim.token}"}
    return httpx.AsyncClient(base_url=sim.url, headers=headers, timeout=10)


def process_group(pgid: int) -> set[int]:
    """Host PIDs whose process group is `pgid` (a container's whole process tree)."""
    members = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if fields[0] != "Z" and int(fields[2]) == pgid:
                members.add(int(entry))
    return members


def alive(pids: set[int]) -> set[int]:
    out = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            out.add(pid)
    return out


async def wait_for_path(path: Path, timeout: float = 10) -> None:
    """Poll (with a deadline) for a file a container writes: the host filesystem sends no events here."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {timeout}s")
        await asyncio.sleep(0.01)


def running_tree(sim: KubeSim, timeout: float = 10) -> set[int]:
    """Host PIDs of every running container's process tree, once the kubelet has them.

    A container can write files before the kubelet has recorded its process: wait for that first.
    """
    assert sim.wait_until(lambda _: bool(sim.processes()), timeout)
    pids: set[int] = set()
    for leader in sim.processes():
        pids |= process_group(leader)
    return pids

"""pods/log: follow streams lines as they are written and ends with the container; errors as on a real server."""

from __future__ import annotations

import time

import pytest
from lightkube import ApiError, AsyncClient
from lightkube.resources.core_v1 import Pod

from tests.kubesim import KubeSim
from tests.kubesim._testkit import container, pod, raw_client


async def _wait_running(kubesim: KubeSim, name: str, container_name: str) -> None:
    def started(store: object) -> bool:
        p = kubesim.get("pods", "default", name)
        statuses = (p or {}).get("status", {}).get("containerStatuses") or []
        return any(s["name"] == container_name and "waiting" not in s["state"] for s in statuses)

    assert await kubesim.wait_for(started, timeout=10)


async def test_follow_streams_lines_while_the_container_runs(client: AsyncClient, kubesim: KubeSim) -> None:
    # the container waits for a file the test creates after the first line arrived: proof of streaming
    gate = kubesim.root / "gate"
    script = f"echo one; while [ ! -e {gate} ]; do sleep 0.02; done; echo two; echo -n partial"
    await client.create(pod("talker", [container("main", script)]), namespace="default")
    await _wait_running(kubesim, "talker", "main")
    received: list[tuple[str, float]] = []
    async for line in client.log("talker", namespace="default", follow=True):
        received.append((line, time.monotonic()))
        if line == "one\n":
            gate.touch()
    assert [line for line, _ in received] == ["one\n", "two\n", "partial\n"]
    final = await client.get(Pod, "talker", namespace="default")
    assert final.status is not None and final.status.phase == "Succeeded"


async def test_logs_of_a_container_not_started_are_a_400(client: AsyncClient, kubesim: KubeSim) -> None:
    await client.create(pod("stuck", [container("main", "true", image="registry.example/app:does-not-exist")]),
                        namespace="default")
    await _wait_running_or_waiting(kubesim, "stuck")
    with pytest.raises(ApiError) as err:
        async for _ in client.log("stuck", namespace="default"):
            pass
    assert err.value.status.code == 400
    assert (err.value.status.message or "").startswith('container "main" in pod "stuck" is waiting to start:')


async def _wait_running_or_waiting(kubesim: KubeSim, name: str) -> None:
    def has_status(store: object) -> bool:
        p = kubesim.get("pods", "default", name)
        return bool((p or {}).get("status", {}).get("containerStatuses"))

    assert await kubesim.wait_for(has_status, timeout=10)


async def test_container_name_is_required_when_the_pod_has_several(client: AsyncClient, kubesim: KubeSim) -> None:
    await client.create(pod("pair", [container("a", "echo a"), container("b", "echo b")],
                            initContainers=[container("setup", "echo setup")]), namespace="default")
    await _wait_phase(kubesim, "pair", "Succeeded")
    with pytest.raises(ApiError) as err:
        async for _ in client.log("pair", namespace="default"):
            pass
    assert err.value.status.message == ("a container name must be specified for pod pair, choose one of: [a b] or "
                                        "one of the init containers: [setup]")
    with pytest.raises(ApiError) as err:
        async for _ in client.log("pair", namespace="default", container="c"):
            pass
    assert err.value.status.message == "container c is not valid for pod pair"


async def test_timestamps_and_tail_lines(client: AsyncClient, kubesim: KubeSim) -> None:
    await client.create(pod("counter", [container("main", "for i in 1 2 3 4; do echo line$i; done")]),
                        namespace="default")
    await _wait_phase(kubesim, "counter", "Succeeded")
    tail = [line async for line in client.log("counter", namespace="default", tail_lines=2)]
    assert tail == ["line3\n", "line4\n"]
    stamped = [line async for line in client.log("counter", namespace="default", timestamps=True)]
    assert len(stamped) == 4 and all(line.split(" ", 1)[0].endswith("Z") for line in stamped)
    async with raw_client(kubesim) as raw:
        res = await raw.get("/api/v1/namespaces/default/pods/counter/log", params={"previous": "true"})
        assert res.status_code == 400
    assert kubesim.calls[("get", "pods/log")] == 3


async def _wait_phase(kubesim: KubeSim, name: str, phase: str) -> None:
    def reached(store: object) -> bool:
        p = kubesim.get("pods", "default", name)
        return (p or {}).get("status", {}).get("phase") == phase

    assert await kubesim.wait_for(reached, timeout=10)


async def test_stderr_is_captured_with_stdout(client: AsyncClient, kubesim: KubeSim) -> None:
    await client.create(pod("both", [container("main", "echo out; echo err >&2; exit 4")]), namespace="default")
    await _wait_phase(kubesim, "both", "Failed")
    lines = [line async for line in client.log("both", namespace="default")]
    assert sorted(lines) == ["err\n", "out\n"]
    got = await client.get(Pod, "both", namespace="default")
    term = (got.status.containerStatuses or [])[0].state.terminated  # type: ignore[union-attr]
    assert term is not None and (term.exitCode, term.reason) == (4, "Error")

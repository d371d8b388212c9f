"""Two server processes' worth of control plane on one PostgreSQL and one S3 store behave as one:
an agent on server 1, a client on server 2 — run, follow the logs live, read the result."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from tests.agent.fakes import ScriptedRuntime
from tests.agent.fleet import Fleet, call, eventually, finished
from tests.harness import RunningServer, server_in_thread
from tests.pg import SKIP_REASON, fresh_database, postgres_available

WF = """\
apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata: {name: smoke}
spec:
  steps:
  - {name: first, shell: "echo one"}
  - {name: second, shell: "echo two"}
"""


@pytest.fixture(scope="module")
def moto_s3() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
async def two_servers(
    tmp_path: Path, moto_s3: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[RunningServer, RunningServer]]:
    if not postgres_available():
        pytest.skip(SKIP_REASON)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("SHOAL_S3_BUCKET", "shoal-" + os.urandom(4).hex())
    monkeypatch.setenv("SHOAL_S3_ENDPOINT", moto_s3)
    monkeypatch.setenv("SHOAL_SECRET_KEY", Fernet.generate_key().decode())
    async with fresh_database() as url:
        with ExitStack() as stack:
            common = {"database_url": url, "heartbeat_interval_s": 0.5, "sweep_interval_s": 0.2}
            one = stack.enter_context(server_in_thread(tmp_path / "one", **common))
            two = stack.enter_context(server_in_thread(tmp_path / "two", **common))
            yield one, two


async def test_agent_on_one_server_client_on_the_other(
    two_servers: tuple[RunningServer, RunningServer], tmp_path: Path
) -> None:
    one, two = two_servers
    admin_two = two.client()
    await call(admin_two.apply, WF)
    token = await call(admin_two.create_token, "agent", "default")
    fleet = Fleet(one, token, tmp_path / "agents")
    gate = asyncio.Event()
    runtime = fleet.start("far-agent", {"cluster": "x"}, ScriptedRuntime(lines=50, gate=gate))
    try:
        await eventually(
            lambda: [a["status"] for a in admin_two.agents()] == ["online"], what="agent seen by 2"
        )
        ex = (await call(admin_two.run, "smoke", match={"cluster": ["x"]}))[0]
        await eventually(lambda: runtime.started, what="assignment through server 1")

        followed: list[dict[str, object]] = []

        def follow() -> None:
            for event in admin_two.follow(ex["id"]):
                followed.append(event)

        follower = asyncio.create_task(asyncio.to_thread(follow))
        await eventually(
            lambda: any(e.get("type") == "step" for e in followed), what="live events on server 2"
        )
        assert not follower.done()  # still following: the execution is held at its first step
        gate.set()
        await asyncio.wait_for(follower, 30)
        assert followed[-1] == {"type": "end", "status": "passed"}
        lines = [e["line"] for e in followed if e.get("type") == "log"]
        assert lines == [f"{s} line {i}" for s in ("first", "second") for i in range(1, 51)]
        done = await eventually(lambda: finished(admin_two, [ex["id"]]), what="result on server 2")
        assert done[0]["runner"] == "far-agent" and done[0]["result"]["status"] == "passed"
        with one.client() as c1:
            assert (await call(c1.logs, ex["id"])).splitlines() == lines
    finally:
        await fleet.stop_all()
        admin_two.close()

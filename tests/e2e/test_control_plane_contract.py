"""The control-plane contract checked from outside: real `shoal server` and `shoal agent` processes,
the `shoal` CLI, the local runtime, kill -9 of the server and of an agent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shoal.client import Client
from tests.harness import ServerProcess, start_agent_process, start_server_process, wait_until

pytestmark = pytest.mark.slow

SMOKE = """\
apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata: {name: smoke}
spec:
  steps:
  - name: say hello
    shell: echo "hello from $(hostname)"
  - name: count
    shell: for i in 1 2 3; do echo "n=$i"; done
"""

NUMBERED = """\
apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata: {name: numbered}
spec:
  steps:
  - name: print 10000 numbered lines
    shell: |
      i=1
      while [ $i -le 10000 ]; do
        echo "line $i"
        if [ $((i % 500)) -eq 0 ]; then sleep 0.1; fi
        i=$((i + 1))
      done
"""

SLOW = """\
apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata: {name: slow}
spec:
  steps:
  - name: first
    shell: echo started; sleep 2; echo first done
  - name: second
    shell: echo second
"""

TERMINAL = ("passed", "failed", "aborted", "canceled")


def shoal(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "shoal", *args], env=env, capture_output=True, text=True, timeout=120
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"shoal {' '.join(args)} exited {proc.returncode}: {proc.stderr}{proc.stdout}")
    return proc


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    home = tmp_path / "home"
    home.mkdir()
    srv = start_server_process(home, extra_env={"SHOAL_HEARTBEAT_S": "1"})
    try:
        yield srv
    finally:
        srv.terminate()


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        yield procs
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


def cli_env(srv: ServerProcess, home: Path) -> dict[str, str]:
    return {**os.environ, "SHOAL_HOME": str(home)}


def test_first_start_creates_defaults_and_a_private_admin_token(server: ServerProcess) -> None:
    token = server.admin_token
    assert (server.home / "admin-token").stat().st_mode & 0o777 == 0o600
    with Client(server.url, token) as c:
        assert [e["name"] for e in c.environments()] == ["default"]
    log = (server.home / f"server-{server.port}.log").read_text()
    assert log.count(token) == 1
    server.terminate()
    again = start_server_process(server.home, port=server.port)
    try:
        assert again.admin_token == token
        assert (server.home / f"server-{server.port}.log").read_text().count(token) == 1  # printed once, ever
    finally:
        again.terminate()


def test_three_clusters_replicated_run_and_results_outlive_the_agents(
    server: ServerProcess, agents: dict[str, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    home = tmp_path / "cli"
    env = cli_env(server, home)
    shoal("context", "set", "--server", server.url, "--token", server.admin_token, env=env)
    (tmp_path / "wf").mkdir()
    (tmp_path / "wf" / "smoke.yaml").write_text(SMOKE)
    shoal("env", "create", "qa", env=env)
    agent_token = shoal("token", "create", "--env", "default", "--role", "agent", env=env).stdout.strip()
    assert agent_token.startswith("shoal_") and "\n" not in agent_token
    for cluster in ("a", "b", "c"):
        agents[cluster] = start_agent_process(
            server.url, agent_token, f"agent-{cluster}", tmp_path / f"agent-{cluster}", {"cluster": cluster}
        )
    shoal("apply", "-f", str(tmp_path / "wf"), env=env)

    def online() -> list[dict[str, Any]]:
        return json.loads(shoal("get", "agents", "-o", "json", env=env).stdout)

    wait_until(lambda: len([a for a in online() if a["status"] == "online"]) == 3, 60, "three agents online")
    listed = online()
    assert {a["labels"]["cluster"] for a in listed} == {"a", "b", "c"}
    assert all({"name", "labels", "status", "lastSeen", "capabilities"} <= set(a) for a in listed)

    run = shoal("run", "tw", "smoke", "--target-replicate", "cluster", "-f", env=env, check=False)
    assert run.returncode == 0, run.stderr

    executions = json.loads(shoal("get", "twe", "-w", "smoke", "-o", "json", env=env).stdout)
    assert len(executions) == 3
    assert len({e["groupId"] for e in executions}) == 1
    assert sorted(e["runner"] for e in executions) == ["agent-a", "agent-b", "agent-c"]
    assert all(e["result"]["status"] == "passed" and e["runnerId"] for e in executions)

    for proc in agents.values():
        proc.send_signal(signal.SIGTERM)
    for proc in agents.values():
        proc.wait(30)
    wait_until(lambda: all(a["status"] == "offline" for a in online()), 60, "agents offline")
    still = json.loads(shoal("get", "twe", "-w", "smoke", "-o", "json", env=env).stdout)
    assert {e["id"] for e in still} == {e["id"] for e in executions}

    agents["d"] = start_agent_process(
        server.url, agent_token, "agent-d", tmp_path / "agent-d", {"cluster": "d"}
    )
    wait_until(
        lambda: any(a["name"] == "agent-d" and a["status"] == "online" for a in online()), 60, "agent-d"
    )
    again = shoal("run", "tw", "smoke", "-f", env=env, check=False)  # no re-apply
    assert again.returncode == 0, again.stderr
    latest = json.loads(shoal("get", "twe", "-w", "smoke", "-o", "json", env=env).stdout)
    assert len(latest) == 4 and any(e["runner"] == "agent-d" for e in latest)


def _stored_lines(client: Client, execution_id: str) -> list[str]:
    return client.logs(execution_id).splitlines()


def test_server_killed_mid_run_loses_and_doubles_nothing(
    server: ServerProcess, agents: dict[str, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    with Client(server.url, server.admin_token) as c:
        c.apply(NUMBERED)
        token = c.create_token("agent", "default")
    for i in range(4):
        agents[str(i)] = start_agent_process(
            server.url, token, f"worker-{i}", tmp_path / f"worker-{i}", extra_args=["--max-concurrent", "5"]
        )
    with Client(server.url, server.admin_token) as c:
        wait_until(lambda: len([a for a in c.agents() if a["status"] == "online"]) == 4, 60, "agents")
        ids = [c.run("numbered")[0]["id"] for _ in range(20)]

        def some_progress() -> bool:
            return sum(len(c.logs(i)) for i in ids[:4]) > 20_000

        wait_until(some_progress, 120, "logs to start arriving")
    server.kill()
    restarted = start_server_process(server.home, port=server.port, extra_env=server.env)
    try:
        with Client(restarted.url, restarted.admin_token) as c:
            wait_until(
                lambda: all(c.execution(i)["result"]["status"] in TERMINAL for i in ids),
                300,
                "all 20 to finish",
            )
            for execution_id in ids:
                assert c.execution(execution_id)["result"]["status"] == "passed"
                assert _stored_lines(c, execution_id) == [f"line {n}" for n in range(1, 10_001)]
    finally:
        restarted.terminate()


def test_agent_killed_mid_run_reports_the_execution_once(
    server: ServerProcess, agents: dict[str, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    with Client(server.url, server.admin_token) as c:
        c.apply(SLOW)
        token = c.create_token("agent", "default")
        agents["a"] = start_agent_process(server.url, token, "crashy", tmp_path / "crashy")
        wait_until(lambda: any(a["status"] == "online" for a in c.agents()), 60, "agent online")
        ex = c.run("slow")[0]
        wait_until(lambda: "started" in c.logs(ex["id"]), 60, "the first step to print")
        agents["a"].send_signal(signal.SIGKILL)
        agents["a"].wait(10)
        agents["b"] = start_agent_process(server.url, token, "crashy", tmp_path / "crashy")
        final = wait_until(
            lambda: (e := c.execution(ex["id"]))["result"]["status"] in TERMINAL and e,
            120,
            "the execution to end",
        )
        assert final["result"]["status"] in ("passed", "aborted")
        assert _stored_lines(c, ex["id"]).count("started") == 1
        assert len(c.executions(workflow="slow")["results"]) == 1
        # Every step has exactly one final result, and the run is not reported twice.
        steps = final["result"]["steps"]
        assert all(s["status"] in ("passed", "aborted", "skipped") for s in steps.values())

"""A real `shoal controller` process, killed with SIGKILL while clusters are being provisioned and again
while they are being torn down: after each restart every cluster converges, each has exactly one
sandbox and one agent, and at the end no sandbox, no agent process and no agent registration is left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from shoal.client import Client
from shoal.clusters import agent_pids
from tests.harness import ServerProcess, start_server_process, wait_until

ROOT = Path(__file__).resolve().parents[2]


def _controller(home: Path, url: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "SHOAL_HOME": str(home),
        "SHOAL_CLUSTERS_POLL_S": "0.05",
        "SHOAL_CLUSTERS_LEASE_S": "1",
        "PYTHONPATH": str(ROOT),
    }
    log = open(home / "controller.log", "ab")  # noqa: SIM115 - owned by the process
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.clusters.shoal_cli",
            "controller",
            "--server-url",
            url,
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )


@pytest.mark.slow
def test_kill_9_during_provision_and_teardown(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    srv = start_server_process(home, extra_env={"SHOAL_CLUSTERS_CONTROLLER": "0"})
    ctl = _controller(home, srv.url)
    names = [f"k9-{i}" for i in range(3)]
    try:
        with _client(srv) as c:
            for name in names:
                c._json(
                    "POST", "/v1/clusters", json={"name": name, "classRef": "local", "labels": {"pr": "9"}}
                )

            def phases() -> dict[str, str]:
                return {n: c._json("GET", f"/v1/clusters/{n}")["phase"] for n in names}

            wait_until(
                lambda: "Provisioning" in phases().values() or "Ready" in phases().values(), 60, "progress"
            )
            ctl.send_signal(signal.SIGKILL)
            ctl.wait(10)
            ctl = _controller(home, srv.url)
            wait_until(lambda: set(phases().values()) == {"Ready"}, 90, "every cluster Ready after a kill -9")
            sandboxes = sorted(p.name for p in (home / "clusters").iterdir())
            assert len(sandboxes) == 3 and not [s for s in sandboxes if s.startswith(".")]
            agents = [a for a in c.agents() if a["labels"].get("pr") == "9"]
            assert sorted(a["labels"]["cluster"] for a in agents) == names
            assert all(a["status"] == "online" for a in agents)
            assert all(len(agent_pids(home / "clusters" / s / "agent")) == 1 for s in sandboxes)

            for name in names:
                c._json("POST", f"/v1/clusters/{name}/teardown")
            wait_until(lambda: "Deprovisioning" in phases().values(), 60, "teardown to start")
            ctl.send_signal(signal.SIGKILL)
            ctl.wait(10)
            ctl = _controller(home, srv.url)
            wait_until(lambda: set(phases().values()) == {"Deprovisioned"}, 90, "every cluster Deprovisioned")
            assert list((home / "clusters").iterdir()) == []
            assert [a for a in c.agents() if a["labels"].get("pr") == "9"] == []
            assert not any(agent_pids(home / "clusters" / s / "agent") for s in sandboxes)
    finally:
        ctl.kill()
        ctl.wait(10)
        srv.terminate()
        for pid in agent_pids_under(home / "clusters"):
            os.kill(pid, signal.SIGKILL)


def agent_pids_under(root: Path) -> list[int]:
    needle = str(root).encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _client(srv: ServerProcess) -> Client:
    return Client(srv.url, srv.admin_token)

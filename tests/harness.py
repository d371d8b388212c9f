"""Test harness: a real shoal server (uvicorn on a free port) in a background thread or a subprocess."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from shoal.client import Client
from shoal.server import ServerSettings, create_app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningServer:
    url: str
    home: Path
    admin_token: str
    port: int
    stop: Callable[[], None]

    def client(self, token: str | None = None, environment: str = "default") -> Client:
        return Client(self.url, token or self.admin_token, environment)


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll ``predicate`` with a deadline (for things with no event to wait on from a test)."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


@contextmanager
def server_in_thread(home: Path, **settings: Any) -> Iterator[RunningServer]:
    port = free_port()
    cfg = ServerSettings(home=home, print_admin_token=False, **settings)
    app = create_app(cfg)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", ws_ping_interval=None)
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(server.serve(),), daemon=True)
    thread.start()
    wait_until(lambda: server.started, 30, "the server to start")
    token = (home / "admin-token").read_text().strip()

    def stop() -> None:
        server.should_exit = True
        thread.join(30)

    try:
        yield RunningServer(f"http://127.0.0.1:{port}", home, token, port, stop)
    finally:
        stop()


@dataclass
class ServerProcess:
    url: str
    home: Path
    port: int
    proc: subprocess.Popen[bytes]
    env: dict[str, str]

    @property
    def admin_token(self) -> str:
        return (self.home / "admin-token").read_text().strip()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def terminate(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def start_server_process(
    home: Path, port: int | None = None, extra_env: dict[str, str] | None = None
) -> ServerProcess:
    """`shoal server` as a real process; returns once /health answers."""
    port = port or free_port()
    env = {**os.environ, "SHOAL_HOME": str(home), **(extra_env or {})}
    log = open(home / f"server-{port}.log", "ab")  # noqa: SIM115 - owned by the process
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "shoal",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if proc.poll() is not None:
            raise AssertionError(
                f"server exited with {proc.returncode}: {(home / f'server-{port}.log').read_text()[-2000:]}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return (home / "admin-token").exists()
        except OSError:
            return False

    wait_until(healthy, 60, "the server process to listen")
    return ServerProcess(url, home, port, proc, env)


def start_agent_process(
    server_url: str,
    token: str,
    name: str,
    state_dir: Path,
    labels: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
    extra_args: list[str] | None = None,
) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "shoal", "agent", "--server", server_url, "--token", token, "--name", name]
    args += extra_args or []
    args += ["--state-dir", str(state_dir)]
    for k, v in (labels or {}).items():
        args += ["--label", f"{k}={v}"]
    state_dir.mkdir(parents=True, exist_ok=True)
    log = open(state_dir / "agent.log", "ab")  # noqa: SIM115 - owned by the process
    return subprocess.Popen(args, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT)


TOKEN_RE = re.compile(r"shoal_[A-Za-z0-9_-]+")

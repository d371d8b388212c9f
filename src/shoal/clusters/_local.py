"""The ``local`` provisioner (the embedded default): a sandbox directory per cluster, with its own local
agent process that joins the environment, so the whole lifecycle can be tried on a laptop.

Layout under ``root``: ``<ext>/owner.json`` (the ownership tags), ``<ext>/agent/`` (the agent's state).
A sandbox is built in ``.tmp-<ext>`` and renamed into place, and deleted by renaming it to
``.del-<ext>`` first, so a crash at any point leaves something ``list_owned`` finds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from shoal.clusters._provisioner import (
    AgentInstall,
    CrashHook,
    Credentials,
    Observation,
    OwnedResource,
    OwnerTags,
    ProvisionerError,
    State,
    no_crash,
)

OWNER_FILE = "owner.json"


class AgentSpawner(Protocol):
    """Runs the agent of a sandbox: a real process by default, an in-process task in tests."""

    async def start(self, sandbox: Path, agent: AgentInstall) -> None: ...

    async def stop(self, sandbox: Path) -> None: ...

    def is_running(self, sandbox: Path) -> bool: ...


def agent_pids(state_dir: Path) -> list[int]:
    """Processes whose command line names ``state_dir`` (found again after any controller restart)."""
    needle = str(state_dir).encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if needle in args:
            pids.append(int(entry.name))
    return pids


class ProcessSpawner:
    """``python -m shoal agent`` as a detached process (its token in the environment, not argv)."""

    def __init__(self, python: str = sys.executable, stop_timeout_s: float = 10.0) -> None:
        self.python = python
        self.stop_timeout_s = stop_timeout_s
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    async def start(self, sandbox: Path, agent: AgentInstall) -> None:
        state = sandbox / "agent"
        if agent_pids(state):
            return
        state.mkdir(parents=True, exist_ok=True)
        args = [self.python, "-m", "shoal", "agent", "--server", agent.server, "--name", agent.name]
        for k, v in sorted(agent.labels.items()):
            args += ["--label", f"{k}={v}"]
        args += ["--state-dir", str(state)]
        env = {**os.environ, "SHOAL_AGENT_TOKEN": agent.token, "SHOAL_HOME": str(sandbox)}
        log = open(state / "agent.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            proc = subprocess.Popen(
                args,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            log.close()
        self._children[proc.pid] = proc

    async def stop(self, sandbox: Path) -> None:
        state = sandbox / "agent"
        pids = agent_pids(state)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout_s
        delay = 0.01
        while pids and time.monotonic() < deadline:
            self._reap()
            pids = [p for p in pids if _alive(p)]
            if pids:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.2)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._reap()

    def is_running(self, sandbox: Path) -> bool:
        self._reap()
        return bool(agent_pids(sandbox / "agent"))

    def _reap(self) -> None:
        for pid, proc in list(self._children.items()):
            if proc.poll() is not None:
                del self._children[pid]


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return status.rsplit(")", 1)[-1].split()[0] != "Z"


class LocalProvisioner:
    name = "local"

    def __init__(self, root: Path, spawner: AgentSpawner | None = None, crash: CrashHook = no_crash) -> None:
        self.root = root
        self.spawner: AgentSpawner = spawner or ProcessSpawner()
        self.crash = crash

    def validate(self, params: dict[str, Any]) -> list[str]:
        unknown = sorted(set(params) - {"files"})
        problems = [f"parameters.{k}: unknown parameter of the local provisioner" for k in unknown]
        files = params.get("files", {})
        if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
            problems.append("parameters.files: expected a mapping of relative path to text")
        return problems

    def sandbox(self, ext: str) -> Path:
        return self.root / ext

    async def ensure(self, ext: str, params: dict[str, Any], tags: OwnerTags) -> None:
        final = self.sandbox(ext)
        if final.exists():
            return
        tmp = self.root / f".tmp-{ext}"
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / OWNER_FILE).write_text(json.dumps({**tags.as_dict(), "createdAt": time.time()}))
        self.crash("local.ensure:mid")
        for rel, text in (params.get("files") or {}).items():
            path = (tmp / rel).resolve()
            if not path.is_relative_to(tmp.resolve()):
                raise ProvisionerError(f"files: {rel!r} escapes the sandbox", permanent=True)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        os.replace(tmp, final)

    async def observe(self, ext: str, params: dict[str, Any]) -> Observation:
        final = self.sandbox(ext)
        if (self.root / f".del-{ext}").exists():
            # deletion is synchronous: a leftover means it was interrupted, so delete must run again
            return Observation(State.DELETING, "sandbox being removed", {"retryDelete": True})
        if final.is_dir() and (final / OWNER_FILE).exists():
            return Observation(State.READY, "sandbox ready", {"path": str(final)})
        if (self.root / f".tmp-{ext}").exists():
            return Observation(State.CREATING, "sandbox half built", {"retryEnsure": True})
        return Observation(State.ABSENT)

    async def credentials(self, ext: str, params: dict[str, Any], ttl_s: float) -> Credentials:
        sandbox = self.sandbox(ext)
        if not sandbox.is_dir():
            raise ProvisionerError(f"sandbox {ext} does not exist")
        token = secrets.token_urlsafe(24)
        expires = datetime.now(UTC) + timedelta(seconds=ttl_s)
        kubeconfig = "\n".join(
            [
                "# shoal local sandbox: there is no Kubernetes API behind it; the server names the sandbox.",
                "apiVersion: v1",
                "kind: Config",
                "clusters:",
                f"- name: {ext}",
                "  cluster:",
                f"    server: file://{sandbox}",
                "contexts:",
                f"- name: {ext}",
                "  context:",
                f"    cluster: {ext}",
                f"    user: {ext}",
                "    namespace: default",
                f"current-context: {ext}",
                "users:",
                f"- name: {ext}",
                "  user:",
                f"    token: {token}",
                "",
            ]
        )
        return Credentials(kubeconfig, expires)

    async def delete(self, ext: str, params: dict[str, Any]) -> None:
        final, tmp, gone = self.sandbox(ext), self.root / f".tmp-{ext}", self.root / f".del-{ext}"
        for path in (final, gone):
            if path.exists():
                await self.spawner.stop(path)  # never leave an agent running in a removed sandbox
        if final.exists():
            if gone.exists():
                shutil.rmtree(gone)
            os.replace(final, gone)
        self.crash("local.delete:mid")
        for path in (gone, tmp):
            if path.exists():
                await asyncio.to_thread(shutil.rmtree, path, True)

    async def list_owned(self, controller: str, params: dict[str, Any]) -> list[OwnedResource]:
        if not self.root.is_dir():
            return []
        owned = []
        for entry in sorted(self.root.iterdir()):
            ext = entry.name
            for prefix in (".tmp-", ".del-"):
                if ext.startswith(prefix):
                    ext = ext[len(prefix) :]
            try:
                data = json.loads((entry / OWNER_FILE).read_text())
            except (OSError, ValueError):
                data = None
            if data is None:
                if entry.name.startswith((".tmp-", ".del-")):  # before its tags were written
                    created = datetime.fromtimestamp(entry.stat().st_mtime, UTC)
                    owned.append(
                        OwnedResource(ext, OwnerTags(controller, "", "", "", "", 0), created, "sandbox")
                    )
                continue
            tags = OwnerTags.from_dict(data)
            if tags.controller != controller:
                continue
            created = datetime.fromtimestamp(float(data.get("createdAt") or 0), UTC)
            owned.append(OwnedResource(ext, tags, created, "sandbox"))
        return owned

    async def install_agent(self, ext: str, params: dict[str, Any], agent: AgentInstall) -> None:
        sandbox = self.sandbox(ext)
        if not sandbox.is_dir():
            raise ProvisionerError(f"sandbox {ext} does not exist")
        await self.spawner.start(sandbox, agent)

    async def remove_agent(self, ext: str, params: dict[str, Any], name: str) -> None:
        for path in (self.sandbox(ext), self.root / f".del-{ext}"):
            await self.spawner.stop(path)

    def agent_running(self, ext: str) -> bool:
        return self.spawner.is_running(self.sandbox(ext))

"""The ``script`` provisioner: any executable speaking a small protocol — the bridge to terraform,
eksctl, kind, vcluster or a cloud API.

``SCRIPT <verb> --name <ext>`` with verb one of ``ensure``, ``observe``, ``credentials``, ``delete``,
``list``, ``install-agent``, ``remove-agent``. A JSON object comes on stdin (``name``, ``parameters``,
``tags``, and per verb ``ttlSeconds``, ``controller`` or ``agent``); a JSON object goes to stdout.
Exit codes: 0 done, 10 in progress (``ensure``/``delete`` started and will finish on their own), 20
permanent failure (never retried), anything else transient (retried with back-off). The script must be
idempotent on ``--name`` and must tag what it creates with the tags it receives. ``credentials`` output
is never logged. Class parameters: ``script`` (required), ``timeout`` (seconds per call, default 600),
``env`` (extra environment), anything else is passed through in ``parameters``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

from shoal.clusters._provisioner import (
    AgentInstall,
    Credentials,
    Observation,
    OwnedResource,
    OwnerTags,
    ProvisionerError,
    State,
)

log = logging.getLogger("shoal.clusters.script")

EXIT_OK, EXIT_IN_PROGRESS, EXIT_PERMANENT = 0, 10, 20


class ScriptProvisioner:
    name = "script"

    def validate(self, params: dict[str, Any]) -> list[str]:
        script = params.get("script")
        if not script:
            return ["parameters.script: the executable implementing the protocol is required"]
        path = Path(str(script)).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)) and shutil.which(str(script)) is None:
            return [f"parameters.script: {script} is not an executable file"]
        if "env" in params and not isinstance(params["env"], dict):
            return ["parameters.env: expected a mapping"]
        return []

    async def _call(
        self, verb: str, ext: str, params: dict[str, Any], payload: dict[str, Any], *, secret: bool = False
    ) -> tuple[int, dict[str, Any]]:
        script = str(params.get("script") or "")
        passed = {k: v for k, v in params.items() if k not in ("script", "timeout", "env")}
        body = json.dumps({"name": ext, "parameters": passed, **payload}).encode()
        env = {**os.environ, **{str(k): str(v) for k, v in (params.get("env") or {}).items()}}
        try:
            proc = await asyncio.create_subprocess_exec(
                script,
                verb,
                "--name",
                ext,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            raise ProvisionerError(f"cannot run {script}: {exc}", permanent=True) from exc
        timeout = float(params.get("timeout") or 600)
        try:
            out, err = await asyncio.wait_for(proc.communicate(body), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise ProvisionerError(f"{script} {verb} took longer than {timeout:.0f}s") from None
        code = proc.returncode if proc.returncode is not None else -1
        if code not in (EXIT_OK, EXIT_IN_PROGRESS):
            detail = "" if secret else err.decode(errors="replace").strip()[-400:]
            message = f"{Path(script).name} {verb} exited {code}" + (f": {detail}" if detail else "")
            raise ProvisionerError(message, permanent=code == EXIT_PERMANENT)
        text = out.decode(errors="replace").strip()
        if not text:
            return code, {}
        try:
            data = json.loads(text)
        except ValueError:
            shown = "<output withheld>" if secret else text[:200]
            raise ProvisionerError(f"{Path(script).name} {verb} printed no JSON object: {shown}") from None
        if not isinstance(data, dict):
            raise ProvisionerError(f"{Path(script).name} {verb}: expected a JSON object")
        return code, data

    async def ensure(self, ext: str, params: dict[str, Any], tags: OwnerTags) -> None:
        await self._call("ensure", ext, params, {"tags": tags.as_dict()})

    async def observe(self, ext: str, params: dict[str, Any]) -> Observation:
        try:
            code, data = await self._call("observe", ext, params, {})
        except ProvisionerError as exc:
            if exc.permanent:
                return Observation(State.FAILED, str(exc))
            raise
        raw = str(data.get("state") or ("CREATING" if code == EXIT_IN_PROGRESS else "")).upper()
        try:
            state = State(raw)
        except ValueError:
            raise ProvisionerError(f"observe: unknown state {raw!r}") from None
        handle = data.get("handle") if isinstance(data.get("handle"), dict) else {}
        return Observation(state, str(data.get("message") or ""), handle or {})

    async def credentials(self, ext: str, params: dict[str, Any], ttl_s: float) -> Credentials:
        _code, data = await self._call("credentials", ext, params, {"ttlSeconds": int(ttl_s)}, secret=True)
        kubeconfig = data.get("kubeconfig")
        if not isinstance(kubeconfig, str) or not kubeconfig.strip():
            raise ProvisionerError("credentials: no kubeconfig in the output")
        expires = None
        if data.get("expiresAt"):
            try:
                expires = datetime.fromisoformat(str(data["expiresAt"]))
            except ValueError:
                expires = None
        return Credentials(kubeconfig, expires)

    async def delete(self, ext: str, params: dict[str, Any]) -> None:
        await self._call("delete", ext, params, {})

    async def list_owned(self, controller: str, params: dict[str, Any]) -> list[OwnedResource]:
        _code, data = await self._call("list", "-", params, {"controller": controller})
        owned = []
        for item in data.get("resources") or []:
            if not isinstance(item, dict) or not item.get("name"):
                continue
            tags = OwnerTags.from_dict(item.get("tags") or {})
            if tags.controller and tags.controller != controller:
                continue
            created = None
            if item.get("createdAt"):
                try:
                    created = datetime.fromisoformat(str(item["createdAt"]))
                except ValueError:
                    created = None
            owned.append(OwnedResource(str(item["name"]), tags, created, str(item.get("kind") or "script")))
        return owned

    async def install_agent(self, ext: str, params: dict[str, Any], agent: AgentInstall) -> None:
        payload = {
            "agent": {
                "name": agent.name,
                "server": agent.server,
                "token": agent.token,
                "labels": agent.labels,
                "environment": agent.environment,
            }
        }
        await self._call("install-agent", ext, params, payload, secret=True)

    async def remove_agent(self, ext: str, params: dict[str, Any], name: str) -> None:
        await self._call("remove-agent", ext, params, {"agent": {"name": name}})

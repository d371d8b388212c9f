"""The ``script`` provisioner: any executable speaking a small protocol — the bridge to terraform,
eksctl, kind, vcluster or a cloud API.

``SCRIPT <verb> --name <ext>`` with verb one of ``ensure``, ``observe``, ``credentials``, ``delete``,
``list``, ``install-agent``, ``remove-agent``. A JSON object comes on stdin (``name``, ``parameters``,
``tags``, and per verb ``ttlSeconds``, ``controller`` or ``agent``); a JSON object goes to stdout.
Exit codes: 0 done, 10 in progress (``ensure``/``delete`` started and will finish on their own), 20
permanent failure (never retried), 30 unsupported verb, anything else transient (retried with back-off).
The script must be idempotent on ``--name`` and must tag what it creates with the tags it receives.
``credentials`` output is never logged. Class parameters: ``script`` (required), ``timeout`` (seconds
per call, default 600), ``env`` (extra environment), anything else is passed through in ``parameters``.

A script that answers ``install-agent`` / ``remove-agent`` with exit 30 leaves the agent to the
controller: it applies the shoal-agent chart's objects (``_agent_objects``) into the namespace
``agentNamespace`` (default ``shoal-agent``) of the cluster, through the kubeconfig of the
``credentials`` verb (parameters ``agentImage``, ``agentServer``, ``agentEnv`` as for ``namespace``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from lightkube import AsyncClient, KubeConfig
from lightkube.core.exceptions import ApiError
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace

from shoal.clusters._agent_objects import (
    FIELD_MANAGER,
    MANAGED_BY,
    AgentChartValues,
    apply_agent_objects,
    as_provisioner_error,
    remove_agent_objects,
    render_agent_objects,
    values_for,
)
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

EXIT_OK, EXIT_IN_PROGRESS, EXIT_PERMANENT, EXIT_UNSUPPORTED = 0, 10, 20, 30
AGENT_NAMESPACE = "shoal-agent"


class Unsupported(ProvisionerError):
    """The script does not implement this verb (exit 30)."""


class ScriptProvisioner:
    name = "script"

    def validate(self, params: dict[str, Any]) -> list[str]:
        script = params.get("script")
        if not script:
            return ["parameters.script: the executable implementing the protocol is required"]
        path = Path(str(script)).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)) and shutil.which(str(script)) is None:
            return [f"parameters.script: {script} is not an executable file"]
        for key in ("env", "agentEnv"):
            if key in params and not isinstance(params[key], dict):
                return [f"parameters.{key}: expected a mapping"]
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
            if code == EXIT_UNSUPPORTED:
                raise Unsupported(message, permanent=True)
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
        try:
            await self._call("install-agent", ext, params, payload, secret=True)
            return
        except Unsupported:
            pass
        values = self._agent_values(params, agent)
        creds = await self.credentials(ext, params, 600)
        async with _cluster_client(creds) as client:
            namespace = Namespace(
                metadata=ObjectMeta(name=values.namespace, labels={"app.kubernetes.io/managed-by": MANAGED_BY})
            )
            try:
                await client.apply(namespace, field_manager=FIELD_MANAGER)
            except Exception as exc:
                raise as_provisioner_error(exc) from exc
            await apply_agent_objects(client, render_agent_objects(values))

    async def remove_agent(self, ext: str, params: dict[str, Any], name: str) -> None:
        try:
            await self._call("remove-agent", ext, params, {"agent": {"name": name}})
            return
        except Unsupported:
            pass
        try:
            creds = await self.credentials(ext, params, 600)
        except ProvisionerError:
            if (await self.observe(ext, params)).state in (State.ABSENT, State.DELETING, State.FAILED):
                return  # the cluster (and the agent in it) is gone already
            raise
        values = self._agent_values(params, None)
        async with _cluster_client(creds) as client:
            await remove_agent_objects(client, values)
            try:  # the namespace the controller made for the agent (not one that was there before)
                ns = await client.get(Namespace, values.namespace)
                labels = (ns.metadata.labels if ns.metadata else None) or {}
                if labels.get("app.kubernetes.io/managed-by") == MANAGED_BY:
                    await client.delete(Namespace, values.namespace)
            except ApiError as exc:
                if exc.status.code != 404:
                    raise as_provisioner_error(exc) from exc
            except Exception as exc:
                raise as_provisioner_error(exc) from exc

    def _agent_values(self, params: dict[str, Any], agent: AgentInstall | None) -> AgentChartValues:
        return values_for(str(params.get("agentNamespace") or AGENT_NAMESPACE), params, agent)


@contextlib.asynccontextmanager
async def _cluster_client(creds: Credentials) -> AsyncIterator[AsyncClient]:
    """A client of the cluster itself, from a kubeconfig the ``credentials`` verb handed over."""
    try:
        client = AsyncClient(config=KubeConfig.from_dict(yaml.safe_load(creds.kubeconfig)))
    except Exception as exc:
        raise ProvisionerError(f"credentials: not a usable kubeconfig ({type(exc).__name__})") from None
    try:
        yield client
    finally:
        await client.close()

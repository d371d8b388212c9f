"""Thin async access to the Kubernetes API over lightkube, speaking plain dicts.

``KubeClient`` covers what shoal needs and nothing more: create, get, list, delete (one object or by
label), watch, and a pod log stream as raw bytes (markers are bytes; the parser wants them untouched).
Errors come out as ``KubeError`` with the API's status code and message.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, Literal

import httpx2 as httpx
from lightkube import AsyncClient, KubeConfig
from lightkube.core.exceptions import ApiError, ConfigError
from lightkube.core.generic_client import GenericAsyncClient
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import ConfigMap, Namespace, PersistentVolumeClaim, Pod, PodLog, Secret
from lightkube.types import CascadeType, OnErrorAction, OnErrorResult

Kind = Literal["Job", "Pod", "ConfigMap", "Secret", "Namespace", "PersistentVolumeClaim"]
_RESOURCES: dict[str, Any] = {
    "Job": Job,
    "Pod": Pod,
    "ConfigMap": ConfigMap,
    "Secret": Secret,
    "Namespace": Namespace,
    "PersistentVolumeClaim": PersistentVolumeClaim,
}
Propagation = Literal["Background", "Foreground", "Orphan"]
_PROPAGATION = {
    "Background": CascadeType.BACKGROUND,
    "Foreground": CascadeType.FOREGROUND,
    "Orphan": CascadeType.ORPHAN,
}


class KubeError(Exception):
    """An API request failed: ``code`` is the HTTP status (0 when the server could not be reached)."""

    def __init__(self, code: int, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason

    @property
    def not_found(self) -> bool:
        return self.code == 404

    @property
    def conflict(self) -> bool:
        return self.code == 409


def _wrap(exc: Exception) -> KubeError:
    if isinstance(exc, ApiError):
        status = exc.status
        return KubeError(int(status.code or 0), str(status.message or exc), str(status.reason or ""))
    if isinstance(exc, KubeError):
        return exc
    return KubeError(0, f"{type(exc).__name__}: {exc}")


def load_config(kubeconfig: str | os.PathLike[str] | None = None, context: str | None = None) -> KubeConfig:
    """A kubeconfig file (``$KUBECONFIG`` / ``~/.kube/config`` when None), or the in-cluster service
    account when there is no file."""
    try:
        if kubeconfig is not None:
            return KubeConfig.from_file(Path(kubeconfig))
        return KubeConfig.from_env()
    except ConfigError as exc:
        raise KubeError(0, f"no usable Kubernetes configuration: {exc}") from exc
    finally:
        del context


_models_ready = False
_models_lock = threading.Lock()


def _prepare_models() -> None:
    """Convert one object of every kind once, under a lock, before any client works.

    lightkube turns dicts into models with msgspec, which introspects each model class the first time
    it meets it; two threads doing that for the same class at once crash the interpreter (SIGSEGV,
    seen with the toolkit's parallel workers, each a thread with its own event loop). After this
    first pass the class information is cached and conversions are safe from any thread.
    """
    global _models_ready
    if _models_ready:
        return
    with _models_lock:
        if _models_ready:
            return
        for res in _RESOURCES.values():
            res.from_dict({"metadata": {"name": "x"}}).to_dict()
        Job.from_dict({"metadata": {}, "spec": {"template": {"spec": {"containers": [{"name": "c"}]}}},
                       "status": {"conditions": [{"type": "Complete", "status": "True"}]}}).to_dict()
        Pod.from_dict({"metadata": {}, "spec": {"containers": [{"name": "c"}]},
                       "status": {"containerStatuses": [{"name": "c", "image": "i", "imageID": "",
                                                         "ready": False, "restartCount": 0}]}}).to_dict()
        _models_ready = True


class KubeClient:
    """One lightkube ``AsyncClient`` and the handful of calls the runtime makes."""

    def __init__(
        self, config: KubeConfig, *, context: str | None = None, namespace: str | None = None
    ) -> None:
        _prepare_models()
        single = config.get(context_name=context)
        self.default_namespace = namespace or (single.namespace if single else None) or "default"
        self._client = AsyncClient(config=single, namespace=self.default_namespace)

    @classmethod
    def from_kubeconfig(
        cls,
        kubeconfig: str | os.PathLike[str] | None = None,
        *,
        context: str | None = None,
        namespace: str | None = None,
    ) -> KubeClient:
        return cls(load_config(kubeconfig), context=context, namespace=namespace)

    async def close(self) -> None:
        await self._client.close()

    # ------------------------------------------------------------------ objects

    async def create(self, obj: Mapping[str, Any], *, namespace: str | None = None) -> dict[str, Any]:
        res = _RESOURCES[str(obj["kind"])]
        try:
            created = await self._client.create(res.from_dict(dict(obj)), namespace=namespace)  # type: ignore[call-overload]
        except Exception as exc:
            raise _wrap(exc) from exc
        return dict(created.to_dict())

    async def get(self, kind: Kind, name: str, *, namespace: str | None = None) -> dict[str, Any] | None:
        try:
            obj = await self._client.get(_RESOURCES[kind], name, namespace=namespace)
        except ApiError as exc:
            if exc.status.code == 404:
                return None
            raise _wrap(exc) from exc
        except httpx.HTTPError as exc:
            raise _wrap(exc) from exc
        return dict(obj.to_dict())

    async def list(
        self, kind: Kind, *, namespace: str | None = None, labels: Mapping[str, str] | None = None
    ) -> list[dict[str, Any]]:
        try:
            items = [
                dict(o.to_dict())
                async for o in self._client.list(
                    _RESOURCES[kind], namespace=namespace, labels=dict(labels or {})
                )
            ]
        except Exception as exc:
            raise _wrap(exc) from exc
        return items

    async def delete(
        self,
        kind: Kind,
        name: str,
        *,
        namespace: str | None = None,
        propagation: Propagation = "Background",
        grace_period: int | None = None,
    ) -> bool:
        """Delete one object; False when it was already gone."""
        try:
            await self._client.delete(
                _RESOURCES[kind],
                name,
                namespace=namespace,
                grace_period=grace_period,
                cascade=_PROPAGATION[propagation],
            )
        except ApiError as exc:
            if exc.status.code == 404:
                return False
            raise _wrap(exc) from exc
        except httpx.HTTPError as exc:
            raise _wrap(exc) from exc
        return True

    async def delete_collection(
        self,
        kind: Kind,
        *,
        namespace: str,
        labels: Mapping[str, str],
        propagation: Propagation = "Background",
    ) -> None:
        """Delete every object of ``kind`` with ``labels`` in ``namespace`` (one request)."""
        client: GenericAsyncClient = self._client._client
        params = {
            "labelSelector": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
            "propagationPolicy": propagation,
        }
        try:
            await client.request("deletecollection", _RESOURCES[kind], namespace=namespace, params=params)
        except Exception as exc:
            raise _wrap(exc) from exc

    # ------------------------------------------------------------------ watching

    async def watch(
        self,
        kind: Kind,
        *,
        namespace: str | None = None,
        labels: Mapping[str, str] | None = None,
        resource_version: str | None = None,
        retries: int = 8,
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """(event type, object) for every change; reconnects where it left off when the server ends the
        stream, and after up to ``retries`` consecutive transport errors (with back-off)."""

        def on_error(exc: Exception, count: int) -> OnErrorResult:
            if count > retries or (isinstance(exc, ApiError) and exc.status.code in (401, 403, 404)):
                return OnErrorResult(OnErrorAction.RAISE)
            return OnErrorResult(OnErrorAction.RETRY, sleep=min(0.05 * 2**count, 2.0))

        stream = self._client.watch(
            _RESOURCES[kind],
            namespace=namespace,
            labels=dict(labels or {}),
            resource_version=resource_version,
            on_error=on_error,
        )
        try:
            async for op, obj in stream:
                yield str(op), dict(obj.to_dict())
        except Exception as exc:
            raise _wrap(exc) from exc

    # ------------------------------------------------------------------ logs

    async def log_stream(
        self, pod: str, *, namespace: str, container: str, follow: bool = True
    ) -> AsyncIterator[bytes]:
        """The raw bytes a container printed, from its start; with ``follow`` until it terminates.

        lightkube's own ``log()`` decodes and re-splits lines (``\\r`` included); the markers and the
        log lines must reach the parser exactly as printed, so this sends the same request itself.
        """
        client: GenericAsyncClient = self._client._client
        br = client.prepare_request(
            "get",
            PodLog,
            name=pod,
            namespace=namespace,
            params={"container": container, "follow": follow},
        )
        if follow:
            br.timeout = httpx.Timeout(10.0, read=None)
        request = client.build_adapter_request(br)
        try:
            resp = await client.send(request, stream=True)  # type: ignore[no-untyped-call]
        except httpx.HTTPError as exc:
            raise _wrap(exc) from exc
        try:
            if resp.is_error:
                await resp.aread()
                try:
                    client.raise_for_status(resp)  # type: ignore[no-untyped-call]
                except Exception as exc:
                    raise _wrap(exc) from exc
            async for chunk in resp.aiter_raw():
                yield chunk
        except httpx.HTTPError as exc:
            raise _wrap(exc) from exc
        finally:
            await resp.aclose()

    async def wait_deleted(self, kind: Kind, name: str, *, namespace: str, timeout: float) -> bool:
        """Whether the object is gone within ``timeout`` seconds (a watch, not a poll)."""

        async def gone() -> None:
            if await self.get(kind, name, namespace=namespace) is None:
                return
            async for op, obj in self.watch(kind, namespace=namespace):
                if op == "DELETED" and (obj.get("metadata") or {}).get("name") == name:
                    return

        try:
            await asyncio.wait_for(gone(), timeout)
        except TimeoutError:
            return False
        return True

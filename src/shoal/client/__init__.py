"""shoal.client: a typed HTTP client for the control plane API (used by the CLI, the agent and `execute`)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


class ClientError(Exception):
    """The server refused a request or could not be reached; ``problems`` lists located details."""

    def __init__(self, message: str, status: int | None = None, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.problems = list(problems)


def _raise_for(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        body = response.json()
    except ValueError:
        body = {"error": response.text[:500] or response.reason_phrase}
    if isinstance(body, dict):
        message = str(body.get("error") or body.get("detail") or response.reason_phrase)
        problems = [str(p) for p in body.get("problems") or []]
    else:
        message, problems = str(body), []
    raise ClientError(f"{message} (HTTP {response.status_code})", response.status_code, problems)


def _target(
    match: Mapping[str, Sequence[str]] | None,
    not_: Mapping[str, Sequence[str]] | None,
    replicate: Sequence[str],
) -> dict[str, Any] | None:
    target: dict[str, Any] = {}
    if match:
        target["match"] = {k: list(v) for k, v in match.items()}
    if not_:
        target["not"] = {k: list(v) for k, v in not_.items()}
    if replicate:
        target["replicate"] = list(replicate)
    return target or None


class Client:
    """Synchronous client. ``environment`` is sent with every request (default ``default``)."""

    def __init__(
        self, server: str, token: str | None, environment: str = "default", *, timeout: Any = DEFAULT_TIMEOUT
    ) -> None:
        self.server = server.rstrip("/")
        self.environment = environment
        headers = {"X-Shoal-Environment": environment}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.http = httpx.Client(base_url=self.server, headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ClientError(f"cannot reach {self.server}: {exc}") from None
        _raise_for(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        return response.json() if response.content else None

    # ---------------------------------------------------------------- environments, tokens, agents

    def environments(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._json("GET", "/v1/environments")
        return result

    def create_environment(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._json("POST", "/v1/environments", json={"name": name})
        return result

    def update_environment(
        self,
        name: str,
        retain_days: int | None = None,
        retain_count: int | None = None,
        clear: Sequence[str] = (),
    ) -> dict[str, Any]:
        body = {"retainDays": retain_days, "retainCount": retain_count, "clear": list(clear)}
        result: dict[str, Any] = self._json("PATCH", f"/v1/environments/{name}", json=body)
        return result

    def delete_environment(self, name: str) -> None:
        self._request("DELETE", f"/v1/environments/{name}")

    def create_token(self, role: str, environment: str | None = None, name: str = "") -> str:
        body = {"role": role, "environment": environment, "name": name}
        return str(self._json("POST", "/v1/tokens", json=body)["token"])

    def agents(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._json("GET", "/v1/agents")
        return result

    def delete_agent(self, name: str) -> None:
        self._request("DELETE", f"/v1/agents/{name}")

    # ---------------------------------------------------------------- resources

    def apply(self, text: str | bytes, source: str = "<input>") -> list[dict[str, Any]]:
        body = text.encode() if isinstance(text, str) else text
        result = self._json(
            "POST",
            "/v1/apply",
            content=body,
            params={"file": source},
            headers={"Content-Type": "application/yaml"},
        )
        applied: list[dict[str, Any]] = result["applied"]
        return applied

    def workflows(self, selector: str | None = None) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._json(
            "GET", "/v1/test-workflows", params=_params(selector=selector)
        )
        return result

    def workflow(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._json("GET", f"/v1/test-workflows/{name}")
        return result

    def templates(self, selector: str | None = None) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._json(
            "GET", "/v1/test-workflow-templates", params=_params(selector=selector)
        )
        return result

    def delete_resource(self, kind_path: str, name: str) -> None:
        self._request("DELETE", f"/v1/{kind_path}/{name}")

    # ---------------------------------------------------------------- executions

    def run(
        self,
        workflow: str,
        *,
        config: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
        match: Mapping[str, Sequence[str]] | None = None,
        not_: Mapping[str, Sequence[str]] | None = None,
        replicate: Sequence[str] = (),
        running_context: Mapping[str, Any] | None = None,
        parent_ids: Sequence[str] = (),
        name: str | None = None,
    ) -> list[dict[str, Any]]:
        body: dict[str, Any] = {"config": dict(config or {}), "tags": dict(tags or {})}
        target = _target(match, not_, replicate)
        if target:
            body["target"] = target
        if running_context:
            body["runningContext"] = dict(running_context)
        if parent_ids:
            body["parentExecutionIds"] = list(parent_ids)
        if name:
            body["name"] = name
        result: list[dict[str, Any]] = self._json(
            "POST", f"/v1/test-workflows/{workflow}/executions", json=body
        )
        return result

    def executions(
        self,
        workflow: str | None = None,
        status: str | None = None,
        group_id: str | None = None,
        page: int = 0,
        page_size: int = 100,
    ) -> dict[str, Any]:
        params = _params(workflow=workflow, status=status, groupId=group_id, page=page, pageSize=page_size)
        result: dict[str, Any] = self._json("GET", "/v1/test-workflow-executions", params=params)
        return result

    def all_executions(self, workflow: str | None = None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        page = 0
        while True:
            batch = self.executions(workflow=workflow, page=page, page_size=500)["results"]
            out.extend(batch)
            if len(batch) < 500:
                return out
            page += 1

    def execution(self, execution_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._json("GET", f"/v1/test-workflow-executions/{execution_id}")
        return result

    def control(self, execution_id: str, action: str) -> Any:
        return self._json("POST", f"/v1/test-workflow-executions/{execution_id}/{action}")

    def logs(self, execution_id: str) -> str:
        return self._request("GET", f"/v1/test-workflow-executions/{execution_id}/logs").text

    def follow(self, execution_id: str, after: int = 0) -> Iterator[dict[str, Any]]:
        """Events as they happen (SSE), ending with ``{"type": "end", "status": ...}``."""
        path = f"/v1/test-workflow-executions/{execution_id}/notifications"
        timeout = httpx.Timeout(None, connect=10.0)
        try:
            with self.http.stream("GET", path, params={"after": after}, timeout=timeout) as response:
                _raise_for_stream(response)
                yield from _parse_sse(response.iter_lines())
        except httpx.HTTPError as exc:
            raise ClientError(f"log stream from {self.server} broke: {exc}") from None

    def artifacts(self, execution_id: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._json(
            "GET", f"/v1/test-workflow-executions/{execution_id}/artifacts"
        )
        return result

    def download_artifact(self, execution_id: str, name: str, dest: Path) -> int:
        path = f"/v1/test-workflow-executions/{execution_id}/artifacts/{name}"
        return self._download(path, dest)

    def download_archive(self, execution_id: str, dest: Path) -> int:
        return self._download(f"/v1/test-workflow-executions/{execution_id}/artifact-archive", dest)

    def _download(self, path: str, dest: Path) -> int:
        size = 0
        try:
            with self.http.stream("GET", path) as response:
                _raise_for_stream(response)
                dest.parent.mkdir(parents=True, exist_ok=True)
                with open(dest, "wb") as fh:
                    for chunk in response.iter_bytes():
                        fh.write(chunk)
                        size += len(chunk)
        except httpx.HTTPError as exc:
            raise ClientError(f"download from {self.server} failed: {exc}") from None
        return size


class AsyncClient:
    """The async subset the agent and `execute` use."""

    def __init__(self, server: str, token: str | None, environment: str = "default") -> None:
        self.server = server.rstrip("/")
        headers = {"X-Shoal-Environment": environment}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.http = httpx.AsyncClient(base_url=self.server, headers=headers, timeout=DEFAULT_TIMEOUT)

    async def close(self) -> None:
        await self.http.aclose()

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ClientError(f"cannot reach {self.server}: {exc}") from None
        _raise_for(response)
        return response.json() if response.content else None

    async def agent_resources(self, since: int) -> dict[str, Any]:
        result: dict[str, Any] = await self._json("GET", "/v1/agent/resources", params={"since": since})
        return result

    async def upload_artifact(self, execution_id: str, name: str, path: Path) -> dict[str, Any]:
        async def body() -> AsyncIterator[bytes]:
            with open(path, "rb") as fh:
                while chunk := fh.read(256 * 1024):
                    yield chunk

        result: dict[str, Any] = await self._json(
            "PUT", f"/v1/agent/executions/{execution_id}/artifacts/{name}", content=body()
        )
        return result

    async def run(self, workflow: str, body: Mapping[str, Any]) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._json(
            "POST", f"/v1/test-workflows/{workflow}/executions", json=dict(body)
        )
        return result

    async def execution(self, execution_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._json("GET", f"/v1/test-workflow-executions/{execution_id}")
        return result


def _params(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _raise_for_stream(response: httpx.Response) -> None:
    if response.is_success:
        return
    response.read()
    _raise_for(response)


def _parse_sse(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    event = "message"
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                payload = json.loads("\n".join(data))
                if event == "end":
                    yield {"type": "end", **payload}
                    return
                yield payload
            event, data = "message", []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())


__all__ = ["AsyncClient", "Client", "ClientError"]

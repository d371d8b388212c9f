"""A tiny OCI registry served from the test process (no network): `/v2/<name>/manifests/<ref>`,
`/v2/<name>/blobs/<digest>`, a bearer-token challenge and a token endpoint, optional basic auth."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Registry:
    """Repositories: name -> tag -> manifest digest; blobs and manifests by digest."""

    host: str = ""
    manifests: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # digest -> (media type, body)
    blobs: dict[str, bytes] = field(default_factory=dict)
    tags: dict[tuple[str, str], str] = field(default_factory=dict)
    bearer: bool = False
    users: dict[str, str] = field(default_factory=dict)  # required credentials for tokens (empty: anonymous)
    requests: list[str] = field(default_factory=list)
    token: str = "secret-token"

    def add_image(
        self, name: str, tag: str, *, entrypoint: list[str] | None = None, cmd: list[str] | None = None,
        workdir: str = "", user: str = "", platforms: tuple[str, ...] = (),
    ) -> str:
        """Push an image (an index over ``platforms`` when given); returns the digest the tag points at."""

        def single(arch: str) -> str:
            config = json.dumps({"architecture": arch, "os": "linux", "config": {
                "Entrypoint": entrypoint, "Cmd": cmd, "WorkingDir": workdir, "User": user,
                "Env": ["PATH=/usr/bin:/bin"]}}).encode()
            self.blobs[_digest(config)] = config
            body = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST, "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json", "digest": _digest(config),
                "size": len(config)}, "layers": []}).encode()
            self.manifests[_digest(body)] = (MANIFEST, body)
            return _digest(body)

        if platforms:
            entries = []
            for plat in platforms:
                os_, arch = plat.split("/")[:2]
                d = single(arch)
                entries.append({"mediaType": MANIFEST, "digest": d, "size": len(self.manifests[d][1]),
                                "platform": {"os": os_, "architecture": arch}})
            body = json.dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": entries}).encode()
            self.manifests[_digest(body)] = (INDEX, body)
            top = _digest(body)
        else:
            top = single("amd64")
        self.tags[(name, tag)] = top
        return top


def _handler(reg: Registry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        disable_nagle_algorithm = True  # headers and body go out in two writes
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, code: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
            self.send_response(code)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            reg.requests.append(self.path)
            if self.path.startswith("/token"):
                if reg.users:
                    auth = self.headers.get("Authorization", "")
                    if not auth.startswith("Basic "):
                        return self._send(401)
                    user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
                    if reg.users.get(user) != pw:
                        return self._send(401)
                return self._send(200, json.dumps({"token": reg.token}).encode(), {"Content-Type": "application/json"})
            if reg.bearer and self.headers.get("Authorization") != f"Bearer {reg.token}":
                challenge = (f'Bearer realm="http://{reg.host}/token",service="test-registry",'
                             f'scope="repository:x:pull"')
                return self._send(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', {"WWW-Authenticate": challenge})
            parts = self.path.split("/")
            if len(parts) < 5 or parts[1] != "v2":
                return self._send(404)
            kind, ref = parts[-2], parts[-1]
            name = "/".join(parts[2:-2])
            if kind == "manifests":
                digest = ref if ref.startswith("sha256:") else reg.tags.get((name, ref), "")
                if digest not in reg.manifests:
                    return self._send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')
                media, body = reg.manifests[digest]
                return self._send(200, body, {"Content-Type": media, "Docker-Content-Digest": digest})
            if kind == "blobs" and ref in reg.blobs:
                return self._send(200, reg.blobs[ref], {"Content-Type": "application/octet-stream"})
            return self._send(404)

    return Handler


@contextmanager
def serve_registry(**options: Any) -> Iterator[Registry]:
    reg = Registry(**options)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(reg))
    reg.host = f"127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield reg
    finally:
        server.shutdown()
        server.server_close()

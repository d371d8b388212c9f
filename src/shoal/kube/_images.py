"""Image metadata (ENTRYPOINT, CMD, WORKDIR, USER, ENV) read from the registry over the OCI
distribution API, for the steps that need it.

Anonymous and bearer-token access (the ``WWW-Authenticate`` challenge), basic credentials from
``kubernetes.io/dockerconfigjson`` pull secrets, manifest lists / OCI indexes resolved to one platform.
Configs are cached by digest; a tag is resolved to its digest once per ``ImageInspector``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

DOCKER_HUB = "registry-1.docker.io"
_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}

MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
_INDEX_TYPES = MANIFEST_TYPES[:2]


class ImageMetadataError(Exception):
    """The image's configuration could not be read; the message names the image and the cause."""

    def __init__(self, image: str, message: str) -> None:
        super().__init__(f"image {image}: {message}")
        self.image = image
        self.cause = message


@dataclass(frozen=True, slots=True)
class ImageRef:
    registry: str  # host[:port]
    repository: str  # library/busybox
    reference: str  # tag or digest

    @classmethod
    def parse(cls, image: str) -> ImageRef:
        text = image.strip()
        if not text or any(c.isspace() for c in text):
            raise ImageMetadataError(image, "not a valid image reference")
        digest = ""
        if "@" in text:
            text, digest = text.split("@", 1)
        first, _, rest = text.partition("/")
        if rest and ("." in first or ":" in first or first == "localhost"):
            registry, path = first, rest
        else:
            registry, path = DOCKER_HUB, text
        if registry in _HUB_ALIASES:
            registry = DOCKER_HUB
        tag = "latest"
        last = path.rsplit("/", 1)[-1]
        if ":" in last:
            path, tag = path.rsplit(":", 1)
        if registry == DOCKER_HUB and "/" not in path:
            path = f"library/{path}"
        if not re.fullmatch(r"[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*", path):
            raise ImageMetadataError(image, f"repository {path!r} is not a valid name")
        return cls(registry, path, digest or tag)


@dataclass(frozen=True, slots=True)
class ImageConfig:
    """What Kubernetes does not tell: the image's own command, working directory, user and env."""

    digest: str
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    working_dir: str = ""
    user: str = ""
    env: list[str] = field(default_factory=list)

    def command_for(self, command: list[str] | None, args: list[str] | None) -> tuple[list[str], list[str]]:
        """The argv Kubernetes would run for a container with these ``command``/``args`` overrides."""
        if command:
            return list(command), list(args or [])
        if args is not None:
            return list(self.entrypoint), list(args)
        return list(self.entrypoint), list(self.cmd)


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str
    password: str


def credentials_from_dockerconfig(documents: Iterable[Mapping[str, Any]]) -> dict[str, Credentials]:
    """Registry host -> credentials, from the decoded ``.dockerconfigjson`` documents of pull secrets
    (earlier documents win, as the kubelet tries them in order)."""
    out: dict[str, Credentials] = {}
    for doc in documents:
        auths = doc.get("auths") if isinstance(doc.get("auths"), Mapping) else doc
        for key, entry in (auths or {}).items():
            if not isinstance(entry, Mapping):
                continue
            user, password = str(entry.get("username") or ""), str(entry.get("password") or "")
            if entry.get("auth"):
                try:
                    decoded = base64.b64decode(str(entry["auth"])).decode()
                except (ValueError, UnicodeDecodeError):
                    continue
                user, _, password = decoded.partition(":")
            host = _registry_host(str(key))
            if host and (user or password):
                out.setdefault(host, Credentials(user, password))
    return out


def dockerconfig_from_secret(secret: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``.dockerconfigjson`` (or legacy ``.dockercfg``) document of a Secret, decoded."""
    data = secret.get("data") or {}
    for key in (".dockerconfigjson", ".dockercfg"):
        if key in data:
            try:
                doc = json.loads(base64.b64decode(str(data[key])))
            except (ValueError, UnicodeDecodeError):
                return None
            return doc if isinstance(doc, dict) else None
    return None


def _registry_host(key: str) -> str:
    host = re.sub(r"^[a-z]+://", "", key.strip()).split("/", 1)[0]
    return DOCKER_HUB if host in _HUB_ALIASES else host


class ImageInspector:
    """Reads image configs from registries; one instance keeps the caches (share it).

    ``platform`` picks the manifest of a multi-platform image (``os/arch[/variant]``).
    ``insecure`` registries (and localhost) are spoken to over plain HTTP.
    """

    def __init__(
        self,
        *,
        platform: str = "linux/amd64",
        insecure: Iterable[str] = (),
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.platform = platform
        self.insecure = set(insecure)
        self.timeout = timeout
        self._transport = transport
        self._configs: dict[str, ImageConfig] = {}  # manifest digest -> config
        # (registry, repo, tag or digest, platform) -> digest of the platform's manifest
        self._digests: dict[tuple[str, str, str, str], str] = {}
        self._tokens: dict[tuple[str, str], str] = {}  # (registry, scope) -> bearer token
        self._lock = asyncio.Lock()
        self._http: tuple[asyncio.AbstractEventLoop, httpx.AsyncClient] | None = None
        self.requests = 0  # HTTP requests made (for tests and the bench)

    def cached(self, image: str, platform: str | None = None) -> ImageConfig | None:
        ref = ImageRef.parse(image)
        if ref.reference in self._configs:  # a digest of a single-platform manifest
            return self._configs[ref.reference]
        digest = self._digests.get((ref.registry, ref.repository, ref.reference, platform or self.platform))
        return self._configs.get(digest) if digest else None

    async def inspect(
        self, image: str, credentials: Mapping[str, Credentials] | None = None, platform: str | None = None
    ) -> ImageConfig:
        """The config of ``image`` for ``platform`` (default: the inspector's), from the cache if known."""
        platform = platform or self.platform
        ref = ImageRef.parse(image)
        hit = self.cached(image, platform)
        if hit is not None:
            return hit
        creds = (credentials or {}).get(ref.registry)
        scheme = (
            "http"
            if ref.registry in self.insecure or ref.registry.split(":")[0] in ("localhost", "127.0.0.1")
            else "https"
        )
        base = f"{scheme}://{ref.registry}/v2/{ref.repository}"
        session = _Session(self, self._client(), ref, creds, image)
        manifest, digest, media = await session.manifest(f"{base}/manifests/{ref.reference}")
        if media in _INDEX_TYPES or "manifests" in manifest:
            chosen = self._choose(manifest, image, platform)
            manifest, digest, media = await session.manifest(f"{base}/manifests/{chosen}")
        config_desc = manifest.get("config") or {}
        config_digest = str(config_desc.get("digest") or "")
        if not config_digest:
            raise ImageMetadataError(image, f"the manifest ({media or 'unknown type'}) has no config")
        if digest in self._configs:
            self._digests[(ref.registry, ref.repository, ref.reference, platform)] = digest
            return self._configs[digest]
        blob = await session.get(f"{base}/blobs/{config_digest}", accept="application/json")
        if hashlib.sha256(blob).hexdigest() != config_digest.partition(":")[2]:
            raise ImageMetadataError(image, f"config blob does not match its digest {config_digest}")
        try:
            data = json.loads(blob)
        except ValueError as exc:
            raise ImageMetadataError(image, f"config blob is not JSON: {exc}") from exc
        inner = data.get("config") or {}
        config = ImageConfig(
            digest=digest,
            entrypoint=[str(x) for x in inner.get("Entrypoint") or []],
            cmd=[str(x) for x in inner.get("Cmd") or []],
            working_dir=str(inner.get("WorkingDir") or ""),
            user=str(inner.get("User") or ""),
            env=[str(x) for x in inner.get("Env") or []],
        )
        async with self._lock:
            self._configs[digest] = config
            self._digests[(ref.registry, ref.repository, ref.reference, platform)] = digest
        return config

    def _client(self) -> httpx.AsyncClient:
        """One HTTP client per event loop (building one costs ~0.1 s: CA bundle, proxy settings)."""
        loop = asyncio.get_running_loop()
        if self._http is None or self._http[0] is not loop or self._http[1].is_closed:
            client = httpx.AsyncClient(timeout=self.timeout, transport=self._transport, follow_redirects=True)
            self._http = (loop, client)
        return self._http[1]

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http[1].aclose()
            self._http = None

    def _choose(self, index: Mapping[str, Any], image: str, platform: str) -> str:
        want = platform.split("/")
        entries = [m for m in index.get("manifests") or [] if isinstance(m, Mapping)]
        for entry in entries:
            plat = entry.get("platform") or {}
            have = [str(plat.get("os", "")), str(plat.get("architecture", ""))]
            if plat.get("variant"):
                have.append(str(plat["variant"]))
            if have[:2] == want[:2] and (len(want) < 3 or have[2:3] == want[2:3]):
                return str(entry["digest"])
        found = sorted(
            "/".join(
                x
                for x in (
                    str((m.get("platform") or {}).get("os", "")),
                    str((m.get("platform") or {}).get("architecture", "")),
                )
                if x
            )
            for m in entries
        )
        raise ImageMetadataError(
            image, f"no manifest for platform {platform} (has: {', '.join(found) or 'none'})"
        )


class _Session:
    """Requests to one repository, answering auth challenges on the way."""

    def __init__(
        self,
        owner: ImageInspector,
        http: httpx.AsyncClient,
        ref: ImageRef,
        creds: Credentials | None,
        image: str,
    ) -> None:
        self.owner = owner
        self.http = http
        self.ref = ref
        self.creds = creds
        self.image = image
        self.scope = f"repository:{ref.repository}:pull"
        self.basic = False

    def _headers(self, accept: str) -> dict[str, str]:
        headers = {"Accept": accept}
        token = self.owner._tokens.get((self.ref.registry, self.scope))
        if token:
            headers["Authorization"] = f"Bearer {token}"
        elif self.basic and self.creds is not None:
            raw = f"{self.creds.username}:{self.creds.password}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
        return headers

    async def _send(self, url: str, accept: str) -> httpx.Response:
        for attempt in range(2):
            try:
                self.owner.requests += 1
                resp = await self.http.get(url, headers=self._headers(accept))
            except httpx.HTTPError as exc:
                raise ImageMetadataError(
                    self.image, f"cannot reach the registry {self.ref.registry}: {type(exc).__name__}: {exc}"
                ) from exc
            if resp.status_code != 401 or attempt == 1:
                return resp
            await self._authenticate(resp.headers.get("www-authenticate", ""))
        raise AssertionError("unreachable")

    async def _authenticate(self, challenge: str) -> None:
        scheme, _, rest = challenge.partition(" ")
        if scheme.lower() == "basic":
            if self.creds is None:
                raise ImageMetadataError(
                    self.image,
                    f"the registry {self.ref.registry} needs credentials "
                    "(add an imagePullSecret of type kubernetes.io/dockerconfigjson)",
                )
            self.basic = True
            return
        if scheme.lower() != "bearer":
            raise ImageMetadataError(self.image, f"unsupported registry auth challenge {challenge!r}")
        params = dict(re.findall(r'(\w+)="([^"]*)"', rest))
        realm = params.get("realm")
        if not realm:
            raise ImageMetadataError(self.image, f"bearer challenge without realm: {challenge!r}")
        query = {"scope": params.get("scope") or self.scope}
        if params.get("service"):
            query["service"] = params["service"]
        auth = (self.creds.username, self.creds.password) if self.creds else None
        try:
            self.owner.requests += 1
            resp = await self.http.get(realm, params=query, auth=auth)
        except httpx.HTTPError as exc:
            raise ImageMetadataError(self.image, f"cannot reach the token service {realm}: {exc}") from exc
        if resp.status_code != 200:
            hint = "" if self.creds else " (no credentials: add an imagePullSecret)"
            raise ImageMetadataError(
                self.image, f"the token service refused access: HTTP {resp.status_code}{hint}"
            )
        body = resp.json()
        token = body.get("token") or body.get("access_token")
        if not token:
            raise ImageMetadataError(self.image, "the token service answered without a token")
        self.owner._tokens[(self.ref.registry, self.scope)] = str(token)

    async def get(self, url: str, accept: str) -> bytes:
        resp = await self._send(url, accept)
        if resp.status_code != 200:
            raise ImageMetadataError(self.image, _describe(resp))
        return resp.content

    async def manifest(self, url: str) -> tuple[dict[str, Any], str, str]:
        resp = await self._send(url, ", ".join(MANIFEST_TYPES))
        if resp.status_code != 200:
            raise ImageMetadataError(self.image, _describe(resp))
        body = resp.content
        digest = resp.headers.get("docker-content-digest") or "sha256:" + hashlib.sha256(body).hexdigest()
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise ImageMetadataError(self.image, f"the manifest is not JSON: {exc}") from exc
        media = str(data.get("mediaType") or resp.headers.get("content-type", "").split(";")[0])
        return data, digest, media


def _describe(resp: httpx.Response) -> str:
    what = {
        401: "access denied (credentials missing or wrong)",
        403: "access forbidden",
        404: "not found in the registry",
    }.get(resp.status_code, f"HTTP {resp.status_code}")
    return f"{what} ({resp.request.method} {resp.request.url.path})"

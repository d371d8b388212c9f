"""The ``tarball`` operation: download ``content.tarball`` archives and extract them safely.

Every member is checked before anything is written: absolute names, ``..`` components, links whose
target lands outside the destination, devices and FIFOs are refused, and the extraction itself runs
with tarfile's ``data`` filter as a second guard.
"""

from __future__ import annotations

import os
import posixpath
import tarfile
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

from ._context import ToolkitError, ToolkitRun

CHUNK = 1 << 16
TIMEOUT_S = 60.0


def entries(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The archives of a stage: ``{"tarball": [{url, path}, ...]}`` or a single ``{url, path}``."""
    items = spec.get("tarball", spec.get("items"))
    if items is None:
        items = [spec]
    if isinstance(items, dict):
        items = [items]
    out: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not item.get("url") or not item.get("path"):
            raise ToolkitError(f"content.tarball[{i}] needs both url and path")
        out.append(item)
    return out


def download(url: str, dest: Path, log: Callable[[str], None], client: httpx.Client | None = None) -> int:
    """Stream ``url`` into ``dest``; the number of bytes written."""
    if not url.startswith(("http://", "https://")):
        raise ToolkitError(f"{url}: only http(s) URLs can be fetched")
    own = client is None
    http = client or httpx.Client(follow_redirects=True, timeout=TIMEOUT_S)
    size = 0
    try:
        with http.stream("GET", url) as resp:
            if resp.status_code != 200:
                raise ToolkitError(f"{url}: HTTP {resp.status_code}")
            with dest.open("wb") as fh:
                for chunk in resp.iter_bytes(CHUNK):
                    fh.write(chunk)
                    size += len(chunk)
    except httpx.HTTPError as exc:
        raise ToolkitError(f"{url}: {exc}") from exc
    finally:
        if own:
            http.close()
    log(f"Downloaded {url} ({size} bytes)")
    return size


def _check_member(member: tarfile.TarInfo, target: str) -> None:
    name = member.name
    if name.startswith("/") or posixpath.isabs(name) or (len(name) > 1 and name[1] == ":"):
        raise ToolkitError(f"archive member {name!r} has an absolute name")
    if ".." in name.replace("\\", "/").split("/"):
        raise ToolkitError(f"archive member {name!r} escapes the target with '..'")
    if member.ischr() or member.isblk() or member.isfifo() or member.isdev():
        raise ToolkitError(f"archive member {name!r} is a device or FIFO")
    if member.issym() or member.islnk():
        link = member.linkname
        if posixpath.isabs(link):
            raise ToolkitError(f"archive link {name!r} points to the absolute path {link!r}")
        base = posixpath.dirname(name) if member.issym() else ""
        resolved = posixpath.normpath(posixpath.join(target, base, link))
        if resolved != target and not resolved.startswith(target.rstrip("/") + "/"):
            raise ToolkitError(f"archive link {name!r} points outside the target ({link!r})")


def extract(archive: Path, target: Path) -> int:
    """Extract ``archive`` (tar, optionally gzip/bz2/xz) into ``target``; the number of members."""
    target.mkdir(parents=True, exist_ok=True)
    root = os.path.realpath(target)
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                _check_member(member, root)
            tar.extractall(root, members=members, filter="data")
    except tarfile.TarError as exc:
        raise ToolkitError(f"{archive.name}: not a valid tar archive: {exc}") from exc
    return len(members)


def run_tarball(run: ToolkitRun) -> int:
    for item in entries(run.resolved(run.spec)):
        url = str(item["url"])
        target = run.host_path(str(item["path"]))
        run.log(f"Fetching {url} into {target}")
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="shoal-tarball-") as tmp:
            archive = Path(tmp) / "archive"
            download(url, archive, run.log)
            count = extract(archive, target)
        run.log(f"Extracted {count} entries into {target}")
    return 0

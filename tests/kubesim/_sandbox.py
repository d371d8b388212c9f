"""How a container's filesystem view is built: bubblewrap arguments or the mount-map fallback.

With bubblewrap the container sees the host read-only (except `/tmp`), its own `/dev`, `/proc`,
hostname and PID namespace, and each volumeMount bind-mounted at its mountPath (read-only when asked
or when the volume is a configMap/secret/projected one). A mountPath that does not exist on the host
is created on a tmpfs laid over its deepest existing ancestor, whose entries are bound back, so the
host is never written to. Without bubblewrap the process runs on the host and finds its volumes
through `KUBESIM_MOUNTS` (JSON: mountPath → host directory).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SKIP_ROOT = {"proc", "dev", "sys"}


@dataclass(frozen=True)
class Mount:
    dest: str  # absolute path inside the container
    source: str  # host path (directory or file)
    read_only: bool


@functools.cache
def bwrap_usable() -> bool:
    exe = shutil.which("bwrap")
    if exe is None:
        return False
    try:
        res = subprocess.run([exe, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-pid",
                              "true"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return res.returncode == 0


def _norm(path: str) -> str:
    return os.path.normpath("/" + path.lstrip("/"))


def _inside(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _host_real(path: str) -> str:
    """Resolve host symlinks in the existing prefix of `path` (e.g. /var/run → /run)."""
    return os.path.realpath(path)


def _deepest_existing(path: str) -> str:
    cur = path
    while not os.path.lexists(cur):
        cur = os.path.dirname(cur)
    return cur


def _bind_entries(directory: str, args: list[str], writable: set[str]) -> None:
    """Re-bind every entry of host `directory` (used under a tmpfs laid over it)."""
    try:
        entries = sorted(os.listdir(directory))
    except OSError:
        return
    for entry in entries:
        if directory == "/" and entry in SKIP_ROOT:
            continue
        full = os.path.join(directory, entry)
        if os.path.islink(full):
            args += ["--symlink", os.readlink(full), full]
        elif os.path.isdir(full) or os.path.isfile(full):
            args += ["--bind" if any(_inside(full, w) for w in writable) else "--ro-bind", full, full]


def bwrap_args(mounts: list[Mount], *, hostname: str, workdir: str | None, info_fd: int,
               termination_log: str | None, scratch: Path) -> list[str]:
    """The bwrap command line (without the command itself)."""
    exe = shutil.which("bwrap") or "bwrap"
    writable = {"/tmp"}
    volume_mounts: list[Mount] = []
    expand: set[str] = set()
    for m in sorted(mounts, key=lambda m: _norm(m.dest).count("/")):
        dest = _norm(m.dest)
        outer = next((v for v in reversed(volume_mounts) if _inside(dest, v.dest) and dest != v.dest), None)
        if outer is not None:
            # the mount point lives inside another volume: create it there (it is our own directory)
            rel = os.path.relpath(dest, outer.dest)
            target = Path(outer.source) / rel
            if os.path.isdir(m.source):
                target.mkdir(parents=True, exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.touch(exist_ok=True)
            volume_mounts.append(Mount(dest, m.source, m.read_only))
            continue
        real = _host_real(dest)
        anchor = _deepest_existing(real)
        if anchor != real and anchor != "/":
            expand.add(anchor)
        volume_mounts.append(Mount(real, m.source, m.read_only))
    wd_args: list[str] = []
    if workdir:
        wd = _norm(workdir)
        in_volume = any(_inside(wd, v.dest) for v in volume_mounts)
        if not in_volume and not os.path.isdir(_host_real(wd)):
            # a missing workingDir is created by the runtime: give it an empty directory of its own
            own = scratch / "workdir"
            own.mkdir(parents=True, exist_ok=True)
            real = _host_real(wd)
            anchor = _deepest_existing(real)
            if anchor != real and anchor != "/":
                expand.add(anchor)
            volume_mounts.append(Mount(real, str(own), False))
        elif in_volume:
            for v in volume_mounts:
                if _inside(wd, v.dest) and not v.read_only:
                    (Path(v.source) / os.path.relpath(wd, v.dest)).mkdir(parents=True, exist_ok=True)
        wd_args = ["--chdir", wd]
    args = [exe, "--tmpfs", "/"]
    _bind_entries("/", args, writable)
    args += ["--dev", "/dev", "--proc", "/proc", "--ro-bind", "/sys", "/sys"]
    for anchor in sorted(expand, key=lambda p: p.count("/")):
        args += ["--tmpfs", anchor]
        _bind_entries(anchor, args, writable)
    for v in sorted(volume_mounts, key=lambda v: v.dest.count("/")):
        args += ["--ro-bind" if v.read_only else "--bind", v.source, v.dest]
    if termination_log:
        args += ["--bind", termination_log, "/dev/termination-log"]
    args += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--hostname", hostname[:63],
             "--as-pid-1", "--die-with-parent", "--info-fd", str(info_fd), *wd_args]
    return args


def host_path_for(path: str, mounts: list[Mount]) -> str:
    """Where a container path lives on the host when running without bubblewrap."""
    p = _norm(path)
    best: Mount | None = None
    for m in mounts:
        d = _norm(m.dest)
        if _inside(p, d) and (best is None or len(d) > len(_norm(best.dest))):
            best = m
    if best is None:
        return p
    rel = os.path.relpath(p, _norm(best.dest))
    return best.source if rel == "." else os.path.join(best.source, rel)


def resolve_in_container(path: str, mounts: list[Mount], *, hops: int = 40) -> str | None:
    """The host path a container path ends at, following symlinks as the container would see them.

    A symlink inside a volume pointing at an absolute container path (`/.shoal/bin/sh` →
    `/.shoal/busybox`) is followed through the mounts, not through the host. None when it dangles.
    """
    parts = [p for p in _norm(path).split("/") if p]
    current = "/"
    while parts:
        part = parts.pop(0)
        candidate = os.path.normpath(os.path.join(current, part))
        host = host_path_for(candidate, mounts)
        if os.path.islink(host):
            hops -= 1
            if hops < 0:
                return None
            target = os.readlink(host)
            parts = [p for p in target.split("/") if p] + parts
            current = "/" if target.startswith("/") else current
            continue
        if not os.path.lexists(host):
            return None
        current = candidate
    return host_path_for(current, mounts)

"""Private mount namespaces for local steps: the Kubernetes paths (/data, /tmp, /testkube, /.shoal,
pod volumes) mounted from the execution's workspace, the rest of the host visible as usual.

Two implementations build the same view: bubblewrap when it works, else ``unshare`` plus a chroot
into a tmpfs root assembled with busybox ``mount``. ``none`` runs on the host as is and refuses
workflows that need the mapped paths.
"""

from __future__ import annotations

import functools
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from shoal.execution._runtime import ExecutionError

SandboxKind = Literal["bwrap", "unshare", "none"]
SandboxChoice = Literal["auto", "bwrap", "unshare", "none"]
Isolation = Literal["default", "strict"]


class SandboxError(ExecutionError):
    """The requested sandbox cannot be built on this host (or cannot hold this workflow)."""


@dataclass(frozen=True, slots=True)
class Mount:
    """``source`` (a host path) seen at ``target`` inside the sandbox."""

    source: Path
    target: str
    read_only: bool = False


@dataclass(slots=True)
class SandboxSpec:
    """What one container of an execution sees."""

    mounts: list[Mount] = field(default_factory=list)
    isolation: Isolation = "default"
    scratch: Path | None = None  # an empty host directory the unshare variant may use as its new root


@dataclass(frozen=True, slots=True)
class Sandbox:
    """A way of wrapping a command so it runs inside the view a ``SandboxSpec`` describes."""

    kind: SandboxKind
    busybox: str

    @property
    def maps_paths(self) -> bool:
        return self.kind != "none"

    def wrap(self, spec: SandboxSpec, argv: Sequence[str]) -> list[str]:
        """The full command line that runs ``argv`` inside the sandbox."""
        if self.kind == "bwrap":
            return _bwrap_command(spec, argv)
        if self.kind == "unshare":
            return _unshare_command(spec, argv, self.busybox)
        if spec.isolation == "strict":
            raise SandboxError(
                "--isolation strict needs a mount namespace (bubblewrap or unshare), not available here"
            )
        return list(argv)


# ------------------------------------------------------------------------------------------ detection


def find_busybox() -> str:
    """The static busybox the init program runs with (copied into every workspace)."""
    for candidate in ("/usr/bin/busybox", shutil.which("busybox")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise SandboxError(
        "busybox was not found (looked at /usr/bin/busybox and PATH); the local runtime runs every step "
        "through a static busybox: install it (Debian/Ubuntu: apt-get install busybox-static)"
    )


@functools.cache
def _probe(kind: SandboxKind, busybox: str) -> str | None:
    """None when ``kind`` works on this host, else why not."""
    if not sys.platform.startswith("linux"):
        return f"{kind} needs Linux (this is {sys.platform})"
    binary = "bwrap" if kind == "bwrap" else "unshare"
    if shutil.which(binary) is None:
        return f"{binary} is not installed"
    scratch = Path(os.environ.get("TMPDIR", "/tmp"))
    sandbox = Sandbox(kind=kind, busybox=busybox)
    spec = SandboxSpec(mounts=[Mount(Path("/"), "/.shoal-probe", read_only=True)], scratch=None)
    if kind == "unshare":
        import tempfile

        with tempfile.TemporaryDirectory(dir=scratch) as tmp:
            spec.scratch = Path(tmp)
            return _run_probe(sandbox, spec, busybox)
    return _run_probe(sandbox, spec, busybox)


def _run_probe(sandbox: Sandbox, spec: SandboxSpec, busybox: str) -> str | None:
    argv = sandbox.wrap(spec, [busybox, "sh", "-c", "test -d /.shoal-probe/proc"])
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{sandbox.kind} failed: {exc}"
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        return f"{sandbox.kind} failed: {err[-1] if err else f'exit code {proc.returncode}'}"
    return None


def choose_sandbox(choice: SandboxChoice = "auto", busybox: str | None = None) -> Sandbox:
    """The sandbox to use: the requested one (error if it does not work) or the best that works."""
    bb = busybox or find_busybox()
    if choice == "none":
        return Sandbox(kind="none", busybox=bb)
    kinds: list[SandboxKind] = ["bwrap", "unshare"] if choice == "auto" else [choice]
    reasons: list[str] = []
    for kind in kinds:
        reason = _probe(kind, bb)
        if reason is None:
            return Sandbox(kind=kind, busybox=bb)
        reasons.append(reason)
    if choice == "auto":
        return Sandbox(kind="none", busybox=bb)
    raise SandboxError("; ".join(reasons))


# ------------------------------------------------------------------------------------------ bubblewrap


def _host_entries(shadowed: set[str]) -> list[Path]:
    """Top-level host entries to carry into the new root, except those the sandbox replaces."""
    skip = {"proc", "dev"} | shadowed
    return sorted(p for p in Path("/").iterdir() if p.name not in skip)


def _top_level(mounts: Sequence[Mount]) -> set[str]:
    return {m.target.strip("/").split("/")[0] for m in mounts if m.target.strip("/").count("/") == 0}


def _ordered(mounts: Sequence[Mount]) -> list[Mount]:
    # Parents before children so a nested mount lands on top of its parent's.
    return sorted(mounts, key=lambda m: (m.target.rstrip("/").count("/"), m.target))


def _bwrap_command(spec: SandboxSpec, argv: Sequence[str]) -> list[str]:
    strict = spec.isolation == "strict"
    cmd = ["bwrap", "--die-with-parent", "--unshare-pid"]
    if strict:
        cmd.append("--unshare-net")
    for entry in _host_entries(_top_level(spec.mounts)):
        if entry.is_symlink():
            cmd += ["--symlink", os.readlink(entry), str(entry)]
        else:
            cmd += ["--ro-bind" if strict else "--dev-bind", str(entry), str(entry)]
    cmd += ["--proc", "/proc"]
    cmd += ["--dev", "/dev"] if strict else ["--dev-bind", "/dev", "/dev"]
    for m in _ordered(spec.mounts):
        cmd += ["--ro-bind" if m.read_only else "--bind", str(m.source), m.target]
    return [*cmd, "--chdir", "/", "--", *argv]


# ------------------------------------------------------------------------------------------ unshare


def _unshare_command(spec: SandboxSpec, argv: Sequence[str], busybox: str) -> list[str]:
    if spec.scratch is None:
        raise SandboxError("the unshare sandbox needs a scratch directory for its root")
    strict = spec.isolation == "strict"
    root = str(spec.scratch)
    q = shlex.quote
    lines = ["set -e", f"R={q(root)}", 'mount -t tmpfs shoal-root "$R"']
    for entry in _host_entries(_top_level(spec.mounts)):
        dst = f'"$R"{q(str(entry))}'
        if entry.is_symlink():
            lines.append(f"ln -s {q(os.readlink(entry))} {dst}")
            continue
        lines.append(f"mkdir -p {dst}" if entry.is_dir() else f"touch {dst}")
        lines.append(f"mount -o rbind {q(str(entry))} {dst}")
        if strict:
            lines.append(f"mount -o remount,bind,ro {dst}")
    lines += ['mkdir -p "$R/proc" "$R/dev"', 'mount -t proc proc "$R/proc"', 'mount -o rbind /dev "$R/dev"']
    for m in _ordered(spec.mounts):
        dst = f'"$R"{q(m.target)}'
        make = f"mkdir -p {dst}" if m.source.is_dir() else f'mkdir -p "$(dirname {dst})"; touch {dst}'
        lines += [make, f"mount -o bind {q(str(m.source))} {dst}"]
        # Sandbox-owned mounts stay writable in strict mode: only the host becomes read-only.
        if m.read_only:
            lines.append(f"mount -o remount,bind,ro {dst}")
    lines.append('cd "$R"; PWD=/; export PWD')
    lines.append('exec chroot "$R" "$@"')
    script = "\n".join(lines)
    flags = ["--mount", "--pid", "--fork", "--kill-child", "--propagation", "private"]
    if os.geteuid() != 0:
        flags = ["--user", "--map-root-user", *flags]
    if strict:
        flags.append("--net")
    # busybox on the host (absolute path) runs the set-up; the command runs after the chroot.
    return ["unshare", *flags, "--", busybox, "sh", "-c", script, "shoal-sandbox", *argv]

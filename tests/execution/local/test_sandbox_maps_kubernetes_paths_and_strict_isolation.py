"""The sandbox shows the workspace at /data, /.shoal ... and, in strict mode, a read-only host
without network; both bubblewrap and the unshare fallback build the same view."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from shoal.execution._sandbox import Mount, Sandbox, SandboxError, SandboxSpec, choose_sandbox, find_busybox

KINDS = ["bwrap", "unshare"]


def _sandbox(kind: str) -> Sandbox:
    try:
        return choose_sandbox(kind)  # type: ignore[arg-type]
    except SandboxError as exc:
        pytest.skip(f"{kind} unavailable here: {exc}")


def _run(sandbox: Sandbox, spec: SandboxSpec, script: str) -> subprocess.CompletedProcess[str]:
    argv = sandbox.wrap(spec, [find_busybox(), "sh", "-c", script])
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


@pytest.mark.parametrize("kind", KINDS)
def test_workspace_directories_appear_at_kubernetes_paths(kind: str, tmp_path: Path) -> None:
    data, shoal = tmp_path / "data", tmp_path / "shoal"
    data.mkdir()
    shoal.mkdir()
    (data / "in.txt").write_text("from the workspace\n")
    spec = SandboxSpec(mounts=[Mount(data, "/data"), Mount(shoal, "/.shoal")], scratch=tmp_path / "root")
    (tmp_path / "root").mkdir()
    proc = _run(_sandbox(kind), spec, "cat /data/in.txt && echo written > /.shoal/out.txt && pwd")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["from the workspace", "/"]
    assert (shoal / "out.txt").read_text() == "written\n"
    assert not Path("/.shoal").exists()  # nothing leaked onto the host's root


@pytest.mark.parametrize("kind", KINDS)
def test_strict_isolation_makes_the_host_read_only_and_cuts_the_network(kind: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "root").mkdir()
    host_dir = tmp_path / "host"
    host_dir.mkdir()
    spec = SandboxSpec(mounts=[Mount(data, "/data")], isolation="strict", scratch=tmp_path / "root")
    script = (
        f"touch {host_dir}/x 2>/dev/null && echo host-writable || echo host-read-only; "
        "touch /data/ok && echo data-writable; "
        "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '"
    )
    proc = _run(_sandbox(kind), spec, script)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.split()
    assert lines[:2] == ["host-read-only", "data-writable"]
    assert lines[2:] == ["lo"]  # a fresh network namespace: loopback only
    assert not (host_dir / "x").exists()

    default = SandboxSpec(mounts=[Mount(data, "/data")], scratch=tmp_path / "root")
    proc = _run(_sandbox(kind), default, f"touch {host_dir}/x && echo host-writable")
    assert proc.stdout.strip() == "host-writable"


def test_no_sandbox_refuses_strict_isolation() -> None:
    sandbox = Sandbox(kind="none", busybox=find_busybox())
    with pytest.raises(SandboxError, match="strict"):
        sandbox.wrap(SandboxSpec(isolation="strict"), ["true"])

"""Small Plans for the init-program tests, built from the dataclasses, and a runner for their programs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shoal.execution._initgen import init_files
from shoal.execution._markers import MARKER_PREFIX
from shoal.workflow._plan import Action, Container, EnvVar, Plan, Retry, Stage

BUSYBOX = "/usr/bin/busybox"
SHELLS: dict[str, list[str]] = {
    "dash": ["dash"],
    "bash-posix": ["bash", "--posix"],
    "busybox": [BUSYBOX, "sh"],
}


@dataclass
class Node:
    ref: str
    kind: str
    children: list[Node] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)


def group(ref: str, *children: Node, **options: Any) -> Node:
    return Node(ref, "group", list(children), options)


def shell(ref: str, script: str, **options: Any) -> Node:
    return Node(ref, "shell", [], {"shell": script, **options})


def run(ref: str, command: list[str], args: list[str] | None = None, **options: Any) -> Node:
    return Node(ref, "run", [], {"command": command, "args": args, **options})


def op(ref: str, kind: str, **options: Any) -> Node:
    return Node(ref, kind, [], options)


def env(**values: str) -> list[EnvVar]:
    return [EnvVar(name, value) for name, value in values.items()]


def build(root: Node, cuts: Sequence[str] = ()) -> Plan:
    """A Plan like the compiler makes: default conditions, status chains and group results.

    ``cuts``: refs before whose ``start`` a new container begins.
    """
    stages: dict[str, Stage] = {}

    def visit(node: Node, parent: str | None, chain: list[str]) -> None:
        options = dict(node.options)
        retry = options.pop("retry", None)
        stage = Stage(ref=node.ref, kind=node.kind, parent=parent, **options)  # type: ignore[arg-type]
        if isinstance(retry, int):
            stage.retry = Retry(count=retry)
        elif isinstance(retry, tuple):
            stage.retry = Retry(count=retry[0], until=retry[1])
        stage.status_chain = "&&".join(chain) or "true"
        stages[node.ref] = stage
        earlier: list[str] = []
        for child in node.children:
            stage.children.append(child.ref)
            visit(child, node.ref, earlier + chain)
            if not child.options.get("optional"):
                earlier.append(child.ref)
        if node.kind == "group" and stage.result is None:
            counted = [c.ref for c in node.children if not c.options.get("optional")]
            if stage.negative:
                stage.result = "||".join("!" + ref for ref in counted) or "false"
            else:
                stage.result = "&&".join(counted) or "true"

    visit(root, None, [])
    containers: list[list[Action]] = [[]]

    def actions(node: Node) -> None:
        if node.ref in cuts and containers[-1]:
            containers.append([])
        containers[-1].append(Action("start", node.ref))
        if node.kind == "group":
            for child in node.children:
                actions(child)
        else:
            containers[-1].append(Action("exec", node.ref))
        containers[-1].append(Action("end", node.ref))

    actions(root)
    return Plan(
        workflow="test",
        root=root.ref,
        stages=stages,
        signature=[],
        containers=[
            Container(index=i + 1, name=str(i + 1), image="busybox", actions=acts)
            for i, acts in enumerate(containers)
        ],
    )


Marker = tuple[str, str, Any]


@dataclass
class Result:
    code: int
    output: bytes
    markers: list[Marker]
    log: bytes  # everything that is not a marker

    def statuses(self) -> dict[str, str]:
        return {ref: value["status"] for ref, name, value in self.markers if name == "end"}

    def names(self, ref: str) -> list[str]:
        return [name for r, name, _ in self.markers if r == ref]

    def values(self, ref: str, name: str) -> list[Any]:
        return [value for r, n, value in self.markers if r == ref and n == name]

    @property
    def text(self) -> str:
        return self.log.decode(errors="replace")


def parse(output: bytes) -> tuple[list[Marker], bytes]:
    markers: list[Marker] = []
    log = bytearray()
    rest = output
    while True:
        at = rest.find(MARKER_PREFIX)
        if at == -1:
            log += rest
            break
        log += rest[:at]
        end = rest.index(b"\x03\n", at)
        body = rest[at + 3 : end]
        ref, _, tail = body.partition(b"\x03")
        name, _, value = tail.partition(b"\x04")
        markers.append((ref.decode(), name.decode(), json.loads(value)))
        rest = rest[end + 2 :]
    return markers, bytes(log)


class Workspace:
    """SHOAL_DIR, SHOAL_DATA and SHOAL_OUTPUTS under one temp dir, for one Plan and one shell."""

    def __init__(self, root: Path, plan: Plan, shell: str) -> None:
        self.root = root
        self.plan = plan
        self.shell = SHELLS[shell]
        self.dir = root / "shoal"
        self.data = root / "data"
        self.outputs = root / "testkube" / "outputs"
        self.dir.mkdir(parents=True, exist_ok=True)
        for rel, content in init_files(plan).items():
            (self.dir / rel).write_text(content)
        self.extra_env: dict[str, str] = {}

    def environment(self) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "SHOAL_DIR": str(self.dir),
            "SHOAL_BUSYBOX": BUSYBOX,
            "SHOAL_DATA": str(self.data),
            "SHOAL_OUTPUTS": str(self.outputs),
            "SHOAL_KILL_GRACE": "0.3",
            **self.extra_env,
        }

    def argv(self, index: int) -> list[str]:
        return [*self.shell, str(self.dir / f"c{index}.sh")]

    def run(self, index: int = 1, timeout: float = 20) -> Result:
        proc = subprocess.run(
            self.argv(index),
            env=self.environment(),
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
        markers, log = parse(proc.stdout)
        return Result(proc.returncode, proc.stdout, markers, log)

    def run_all(self) -> Result:
        """Every container in order (like a runtime: stop after a non-zero exit)."""
        code, output = 0, b""
        for container in self.plan.containers:
            result = self.run(container.index)
            code, output = result.code, output + result.output
            if code != 0:
                break
        markers, log = parse(output)
        return Result(code, output, markers, log)

    def start(self, index: int = 1) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            self.argv(index),
            env=self.environment(),
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

    def finalize(self) -> Result:
        proc = subprocess.run(
            [BUSYBOX, "sh", str(self.dir / "lib.sh"), "finalize-aborted"],
            env=self.environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=10,
            check=False,
        )
        markers, log = parse(proc.stdout)
        return Result(proc.returncode, proc.stdout, markers, log)


def read_until(
    proc: subprocess.Popen[bytes], predicate: Callable[[bytes], bool], timeout: float = 10
) -> bytes:
    """Read the process' stdout until ``predicate(output so far)`` holds (or fail after ``timeout``)."""
    assert proc.stdout is not None
    out = b""
    deadline = time.monotonic() + timeout
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    while not predicate(out):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting; output so far: {out!r}")
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            time.sleep(0.005)
            continue
        if not chunk:
            raise AssertionError(f"process ended early; output: {out!r}")
        out += chunk
    os.set_blocking(fd, True)
    return out


def finish(proc: subprocess.Popen[bytes], before: bytes, timeout: float = 10) -> Result:
    rest, _ = proc.communicate(timeout=timeout)
    output = before + rest
    markers, log = parse(output)
    return Result(proc.returncode, output, markers, log)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[-1][:1] != "Z"
    except FileNotFoundError:
        return False


def wait_gone(pid: int, timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.01)
    return False


def terminate(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)

"""stop() aborts a running execution: SIGTERM, then SIGKILL, reach every process the step started,
even one that left the process group; the step ends aborted and the rest skipped."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from shoal.execution import ExecutionOutcome, LocalRuntime

from .local_helpers import job_for, steps_by_name


def _processes_with(argv: list[str]) -> list[int]:
    wanted = "\0".join(argv).encode()
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as fh:
                    if fh.read().rstrip(b"\0") == wanted:
                        found.append(int(name))
            except OSError:
                continue
    return found


@pytest.mark.parametrize("sandbox", ["bwrap", "none"])
def test_stop_kills_grandchildren_in_other_sessions(tmp_path: Path, sandbox: str) -> None:
    rt = LocalRuntime(tmp_path, sandbox=sandbox, kill_grace=1.0)  # type: ignore[arg-type]
    job = job_for(
        {
            "steps": [
                {"name": "long", "shell": "setsid sleep 313 & sleep 314 & echo ready; wait"},
                {"name": "after", "shell": "echo never"},
            ]
        },
        tmp_path,
    )

    async def main() -> ExecutionOutcome:
        handle = await rt.start(job)
        async for event in rt.observe(handle):
            if event.type == "log" and event.line == "ready":
                break
        assert await _until(lambda: bool(_processes_with(["sleep", "313"]))), "the grandchild never started"
        await rt.stop(handle)
        return await rt.wait(handle)

    outcome = asyncio.run(main())
    assert outcome.status == "aborted"
    steps = steps_by_name(outcome)
    assert steps["long"]["status"] == "aborted"
    assert steps["after"]["status"] == "skipped"
    gone = asyncio.run(
        _until(lambda: not _processes_with(["sleep", "313"]) and not _processes_with(["sleep", "314"]))
    )
    assert gone, "a process of the step survived the stop"


async def _until(condition: Callable[[], bool], within: float = 5.0) -> bool:
    """Poll ``condition`` with a deadline (other processes: there is nothing to wait on)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + within
    while loop.time() < end:
        if condition():
            return True
        await asyncio.sleep(0.02)
    return False

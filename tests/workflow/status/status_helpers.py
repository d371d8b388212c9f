"""Builders for status tests: compact signatures and event streams with automatic seq numbers."""

from __future__ import annotations

from typing import Any

from shoal.workflow._plan import SignatureNode
from shoal.workflow._status import EventType, ExecutionEvent, ExecutionState

ROOT = "root"
T0 = 1_700_000_000_000  # 2023-11-14T22:13:20.000Z


def node(ref: str, *children: SignatureNode, optional: bool = False, negative: bool = False) -> SignatureNode:
    return SignatureNode(
        ref=ref, name=ref.upper(), optional=optional, negative=negative, children=list(children)
    )


class Stream:
    """Events of one execution, seq-numbered in the order they are added; ``ts`` in seconds after T0."""

    def __init__(self) -> None:
        self.events: list[ExecutionEvent] = []

    def add(self, type_: EventType, at: float, **payload: Any) -> Stream:
        seq = len(self.events) + 1
        self.events.append(ExecutionEvent(seq=seq, ts=T0 + int(at * 1000), type=type_, **payload))
        return self

    def status(self, status: str, at: float, details: str | None = None) -> Stream:
        return self.add("status", at, status=status, details=details)

    def init(self, status: str, at: float, details: str | None = None) -> Stream:
        return self.add("initialization", at, status=status, details=details)

    def start(self, ref: str, at: float) -> Stream:
        return self.add("step", at, ref=ref, status="running")

    def end(self, ref: str, status: str, at: float) -> Stream:
        return self.add("step", at, ref=ref, status=status)

    def run(self, ref: str, status: str, at: float, took: float = 1.0, code: int | None = None) -> Stream:
        """A leaf that starts at ``at``, reports its exit code and ends ``took`` seconds later."""
        self.start(ref, at)
        if code is None:
            code = 0 if status == "passed" else 1
        self.add("step", at + took, ref=ref, exit_code=code, details="", iteration=1)
        return self.end(ref, status, at + took)

    def log(self, ref: str | None, line: str, at: float) -> Stream:
        return self.add("log", at, ref=ref, line=line)


def replay(signature: list[SignatureNode], stream: Stream) -> ExecutionState:
    state = ExecutionState.for_signature(signature, root=ROOT)
    state.apply_all(stream.events)
    return state


def statuses(state: ExecutionState) -> dict[str, str]:
    return {ref: step.status.value for ref, step in state.result().steps.items()}

"""Helpers for parser tests: marker bytes as the init program prints them, and whole-stream parsing."""

from __future__ import annotations

from collections.abc import Iterable

from shoal.execution._logparse import MarkerParser
from shoal.execution._markers import format_marker
from shoal.workflow._status import ExecutionEvent

CLOCK_MS = 1_700_000_000_000


def marker(ref: str, name: str, /, **value: object) -> bytes:
    return format_marker(ref, name, value)


def parse(chunks: Iterable[bytes], **options: int) -> list[ExecutionEvent]:
    parser = MarkerParser(clock=lambda: CLOCK_MS, **options)  # type: ignore[arg-type]
    return list(parser.parse(chunks))


def lines(events: Iterable[ExecutionEvent]) -> list[tuple[str | None, str | None]]:
    return [(e.ref, e.line) for e in events if e.type == "log"]

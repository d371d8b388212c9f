"""Turn an init program's output stream into seq-numbered ``ExecutionEvent``s.

``MarkerParser`` is fed bytes in chunks of any size and finds the markers of the init protocol
(docs/internal/init-protocol.md) anywhere in the stream; every other line becomes a ``log`` event of
the step running at that moment. Memory per stream is bounded (one partial line of at most
``max_line_bytes``, or one partial marker of at most ``max_marker_bytes``), and the events do not
depend on how the stream was cut into chunks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Final

from shoal.execution._markers import MARKER_PREFIX
from shoal.workflow._status import INIT_REF, EventType, ExecutionEvent

DEFAULT_MAX_LINE_BYTES: Final = 64 * 1024
DEFAULT_MAX_MARKER_BYTES: Final = 1024 * 1024
MAX_DEPTH: Final = 4096  # refs remembered as "running"; deeper nesting is not something a Plan has

_TEXT, _MARKER, _RAW = 0, 1, 2  # what the carried bytes are: text, a marker, an over-long marker line


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class MarkerParser:
    """Incremental parser of one execution's output stream.

    ``start_seq`` is the seq of the first event it yields (so a resumed stream continues where the
    last one stopped) and ``running`` the stages started and not ended at that point, outermost
    first (``ExecutionState.running_refs()``). ``clock`` (epoch ms) stamps log lines
    and markers that carry no ``ts``; it is read once per ``feed``.

    A line longer than ``max_line_bytes`` is cut into pieces of that size (at a UTF-8 character
    boundary when one is within the last 3 bytes); invalid UTF-8 becomes U+FFFD; a trailing ``\\r`` is
    dropped. A marker line longer than ``max_marker_bytes`` or one that does not parse is kept as
    log text.
    """

    def __init__(
        self,
        start_seq: int = 1,
        *,
        running: Sequence[str] = (),
        clock: Callable[[], int] = _now_ms,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        max_marker_bytes: int = DEFAULT_MAX_MARKER_BYTES,
    ) -> None:
        if start_seq < 1:
            raise ValueError("start_seq must be >= 1")
        if max_line_bytes < 8:
            raise ValueError("max_line_bytes must be at least 8")
        self.next_seq = start_seq
        self.max_line_bytes = max_line_bytes
        self.max_marker_bytes = max(max_marker_bytes, max_line_bytes)
        self.unknown_markers = 0  # well-formed markers with a name this parser does not know
        self._clock = clock
        self._stack: list[str] = list(running)[-MAX_DEPTH:]
        self._carry = b""
        self._mode = _TEXT
        self._ts = 0

    @property
    def current_ref(self) -> str | None:
        """The ref log lines are attributed to: the innermost started, unfinished stage."""
        return self._stack[-1] if self._stack else None

    # ------------------------------------------------------------------ feeding

    def feed(self, chunk: bytes | bytearray | memoryview) -> list[ExecutionEvent]:
        """Parse the next piece of the stream; returns the events it completed."""
        data = self._carry + bytes(chunk) if self._carry else bytes(chunk)
        self._carry = b""
        self._ts = self._clock()
        events: list[ExecutionEvent] = []
        pos = 0
        n = len(data)
        mode = self._mode
        while pos < n:
            if mode == _TEXT:
                marker = data.find(MARKER_PREFIX, pos)
                end = n if marker == -1 else marker
                last_nl = data.rfind(b"\n", pos, end)
                if last_nl != -1:
                    self._emit_lines(data, pos, last_nl, events)
                    pos = last_nl + 1
                if marker == -1:
                    pos = self._emit_long_prefix(data, pos, n, events)
                    break
                if marker > pos:
                    self._emit_text(data[pos:marker], events, skip_empty=True)
                pos = marker
                mode = _MARKER
            elif mode == _MARKER:
                nl = data.find(b"\n", pos)
                if nl == -1:
                    if n - pos > self.max_marker_bytes:
                        mode = _RAW
                        continue
                    break
                if nl - pos > self.max_marker_bytes:
                    mode = _RAW
                    continue
                self._emit_marker(data[pos:nl], events)
                pos = nl + 1
                mode = _TEXT
            else:  # _RAW: an over-long marker line, passed on as text up to its newline
                nl = data.find(b"\n", pos)
                if nl == -1:
                    pos = self._emit_long_prefix(data, pos, n, events)
                    break
                self._emit_text(data[pos:nl], events, skip_empty=False)
                pos = nl + 1
                mode = _TEXT
        self._carry = data[pos:]
        self._mode = mode
        return events

    def flush(self) -> list[ExecutionEvent]:
        """The stream ended: whatever is carried becomes a last line (a marker if it is a whole one)."""
        events: list[ExecutionEvent] = []
        self._ts = self._clock()
        carry, self._carry = self._carry, b""
        mode, self._mode = self._mode, _TEXT
        if carry:
            if mode == _MARKER:
                self._emit_marker(carry, events)
            else:
                self._emit_text(carry, events, skip_empty=False)
        return events

    def make_event(self, type: EventType, *, ts: int | None = None, **payload: Any) -> ExecutionEvent:
        """An event of the runtime's own (``status``, ``initialization``, ...) in this stream's seq order."""
        event = ExecutionEvent(
            seq=self.next_seq, ts=self._clock() if ts is None else ts, type=type, **payload
        )
        self.next_seq += 1
        return event

    def parse(self, chunks: Iterable[bytes]) -> Iterator[ExecutionEvent]:
        """Every event of a whole stream (chunks, then end of stream)."""
        for chunk in chunks:
            yield from self.feed(chunk)
        yield from self.flush()

    # ------------------------------------------------------------------ log lines

    def _emit_lines(self, data: bytes, start: int, stop: int, events: list[ExecutionEvent]) -> None:
        """Emit ``data[start:stop]``: whole lines separated by ``\\n`` (``stop`` is a newline)."""
        region = data[start:stop]
        raw_lines = region.split(b"\n")
        limit = self.max_line_bytes
        if max(map(len, raw_lines)) > limit:
            for raw in raw_lines:
                self._emit_text(raw, events, skip_empty=False)
            return
        # Every line is short: decode the region at once (a newline ends any broken UTF-8 sequence,
        # so this decodes exactly as line by line would).
        text = region.decode("utf-8", "replace")
        lines = text.split("\n")
        if "\r" in text:
            lines = [line[:-1] if line.endswith("\r") else line for line in lines]
        # The hot loop: events are allocated in one go and filled in place (see ExecutionEvent.log).
        seq = self.next_seq
        base = {"ts": self._ts, "type": "log", "ref": self._stack[-1] if self._stack else None}
        new = _new_event
        cls = ExecutionEvent
        made = [new(cls) for _ in lines]
        for event, number, line in zip(made, range(seq, seq + len(lines)), lines, strict=True):
            state = event.__dict__
            state.update(base)
            state["seq"] = number
            state["line"] = line
        events.extend(made)
        self.next_seq = seq + len(lines)

    def _emit_text(self, raw: bytes, events: list[ExecutionEvent], *, skip_empty: bool) -> None:
        """One line of text (no newline in it): drop a trailing ``\\r``, cut it when too long."""
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if not raw and skip_empty:
            return
        limit = self.max_line_bytes
        while len(raw) > limit:
            cut = _cut_point(raw, limit)
            self._log(raw[:cut], events)
            raw = raw[cut:]
        self._log(raw, events)

    def _emit_long_prefix(self, data: bytes, start: int, stop: int, events: list[ExecutionEvent]) -> int:
        """A partial line ``data[start:stop]``: emit pieces only when more bytes cannot change them.

        Keeping at least ``max_line_bytes + 2`` bytes back means a ``\\r`` that may end the line is never
        cut off from it, so the pieces are the same as when the whole line arrives at once.
        """
        limit = self.max_line_bytes
        while stop - start > limit + 1:
            cut = _cut_point(data, limit, start)
            self._log(data[start : start + cut], events)
            start += cut
        return start

    def _log(self, raw: bytes, events: list[ExecutionEvent]) -> None:
        events.append(
            ExecutionEvent.log(
                self.next_seq,
                self._ts,
                self._stack[-1] if self._stack else None,
                raw.decode("utf-8", "replace"),
            )
        )
        self.next_seq += 1

    # ------------------------------------------------------------------ markers

    def _emit_marker(self, raw: bytes, events: list[ExecutionEvent]) -> None:
        """``raw`` is one marker line from ``\\x01\\x05`` up to (not including) its newline."""
        parsed = _parse_marker(raw)
        if parsed is None:
            self._emit_text(raw, events, skip_empty=False)
            return
        ref, name, value = parsed
        event = self._marker_event(ref, name, value)
        if event is None:
            if name in _KNOWN_NAMES:
                self._emit_text(raw, events, skip_empty=False)  # a known name with an unusable value
            else:
                self.unknown_markers += 1
            return
        events.append(event)
        self.next_seq += 1

    def _marker_event(self, ref: str, name: str, value: Any) -> ExecutionEvent | None:
        if not isinstance(value, dict):
            return None
        seq = self.next_seq
        kind: EventType = "initialization" if ref == INIT_REF else "step"
        ts = value.get("ts", self._ts)
        if not isinstance(ts, int) or isinstance(ts, bool):
            ts = self._ts
        if name == "start":
            self._push(ref)
            return ExecutionEvent.unchecked(seq, ts, kind, ref=ref, status="running")
        if name == "end":
            status = value.get("status")
            if not isinstance(status, str):
                return None
            self._pop(ref)
            return ExecutionEvent.unchecked(seq, ts, kind, ref=ref, status=status)
        if name == "execution":
            code = value.get("code")
            details = value.get("details")
            iteration = value.get("iteration")
            return ExecutionEvent.unchecked(
                seq,
                ts,
                kind,
                ref=ref,
                exit_code=code if isinstance(code, int) else None,
                details=details if isinstance(details, str) else "",
                iteration=iteration if isinstance(iteration, int) else None,
            )
        if name == "iteration":
            number = value.get("n")
            if not isinstance(number, int):
                return None
            return ExecutionEvent.unchecked(seq, ts, kind, ref=ref, iteration=number)
        if name == "pause":
            return ExecutionEvent.unchecked(seq, ts, kind, ref=ref, status="paused")
        if name == "resume":
            return ExecutionEvent.unchecked(seq, ts, kind, ref=ref, status="running")
        if name == "output":
            return ExecutionEvent.unchecked(seq, ts, "output", ref=ref, outputs=dict(value))
        if name == "artifact":
            return ExecutionEvent.unchecked(seq, ts, "artifact", ref=ref, artifact=dict(value))
        if name == "report":
            return ExecutionEvent.unchecked(seq, ts, "report", ref=ref, report=dict(value))
        if name in _TOOLKIT_NOTICES:
            # The toolkit's progress notices (a service's address and state, a parallel worker's or a
            # child execution's status) become step outputs, keyed so that instances do not collide.
            key = ".".join(
                str(part) for part in (name, value.get("name"), value.get("index")) if part is not None
            )
            return ExecutionEvent.unchecked(seq, ts, "output", ref=ref, outputs={key: dict(value)})
        return None

    def _push(self, ref: str) -> None:
        if len(self._stack) < MAX_DEPTH:
            self._stack.append(ref)

    def _pop(self, ref: str) -> None:
        # Ends come children first; an end for a ref deeper in the stack closes everything above it.
        for index in range(len(self._stack) - 1, -1, -1):
            if self._stack[index] == ref:
                del self._stack[index:]
                return


_new_event = object.__new__
_TOOLKIT_NOTICES: Final = frozenset({"service", "parallel", "execute"})
_KNOWN_NAMES: Final = frozenset(
    {"start", "end", "execution", "iteration", "pause", "resume", "output", "artifact", "report"}
    | _TOOLKIT_NOTICES
)


def _cut_point(raw: bytes, limit: int, offset: int = 0) -> int:
    """Where to cut a too-long line starting at ``offset``: ``limit`` bytes in, moved back to the start of
    a UTF-8 character when one is within 3 bytes (``raw`` holds more than ``offset + limit`` bytes)."""
    cut = limit
    while cut > limit - 3 and (raw[offset + cut] & 0xC0) == 0x80:
        cut -= 1
    return cut if (raw[offset + cut] & 0xC0) != 0x80 else limit


def _parse_marker(raw: bytes) -> tuple[str, str, Any] | None:
    """``\\x01\\x05\\x06<ref>\\x03<name>\\x04<json>\\x03`` (optionally ``\\r``) → (ref, name, value)."""
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    if len(raw) < 5 or raw[2] != 0x06 or raw[-1] != 0x03:
        return None
    body = raw[3:-1]
    sep = body.find(b"\x03")
    if sep == -1:
        return None
    ref = body[:sep].decode("utf-8", "replace")
    rest = body[sep + 1 :]
    value_at = rest.find(b"\x04")
    if value_at == -1:
        return ref, rest.decode("utf-8", "replace"), {}
    name = rest[:value_at].decode("utf-8", "replace")
    try:
        value = json.loads(rest[value_at + 1 :].decode("utf-8", "replace"))
    except ValueError:
        return None
    return ref, name, value


__all__ = ["DEFAULT_MAX_LINE_BYTES", "DEFAULT_MAX_MARKER_BYTES", "MarkerParser"]

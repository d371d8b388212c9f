"""Log throughput through marker parsing, and the parser's memory on a 1 GB stream.

Prints one JSON line per figure (median of several runs after a warm-up):

* ``log_lines_per_s``: 1,000,000 short log lines (with a start/end marker pair every 1,000 lines) fed
  to ``MarkerParser`` in 64 KiB chunks, events built and dropped.
* ``log_marker_events_per_s``: a stream of nothing but markers (start/execution/end per step).
* ``log_parse_1gb_mb_per_s`` and ``log_parse_1gb_peak_mb``: a generated 1 GiB stream (log lines of
  mixed length, markers, a 200 KiB line every 4 MiB, invalid UTF-8) parsed in a
  fresh subprocess in 64 KiB chunks; peak = that process's max RSS. ``log_parse_baseline_peak_mb`` is
  the same subprocess generating the stream without parsing it, so the difference is the parser's.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from shoal.execution._logparse import MarkerParser  # noqa: E402
from shoal.execution._markers import format_marker  # noqa: E402

CHUNK = 64 * 1024
RUNS = 5
LINES = 1_000_000
GIB = 1 << 30


def _emit(name: str, value: float, unit: str, runs: int) -> None:
    print(json.dumps({"bench": "logs", "name": name, "value": round(value, 2), "unit": unit, "runs": runs}))


def _short_lines_stream() -> bytes:
    parts: list[bytes] = []
    for block in range(LINES // 1000):
        ref = f"r{block % 97}"
        parts.append(format_marker(ref, "start", {"ts": block}))
        parts.append(b"".join(b"%d: GET /api/items 200 3ms\n" % (block * 1000 + i) for i in range(1000)))
        parts.append(format_marker(ref, "end", {"ts": block, "status": "passed"}))
    return b"".join(parts)


def _markers_stream(steps: int) -> bytes:
    return b"".join(
        format_marker(f"r{i}", "start", {"ts": i})
        + format_marker(f"r{i}", "execution", {"code": 0, "details": "", "iteration": 1})
        + format_marker(f"r{i}", "end", {"ts": i, "status": "passed"})
        for i in range(steps)
    )


def _parse_all(data: bytes) -> int:
    parser = MarkerParser(clock=lambda: 0)
    count = 0
    for offset in range(0, len(data), CHUNK):
        count += len(parser.feed(data[offset : offset + CHUNK]))
    return count + len(parser.flush())


def _rate(data: bytes, units: int) -> tuple[float, int]:
    _parse_all(data)  # warm-up
    rates = []
    for _ in range(RUNS):
        started = time.perf_counter()
        _parse_all(data)
        rates.append(units / (time.perf_counter() - started))
    return statistics.median(rates), RUNS


# --------------------------------------------------------------------------- 1 GiB in a subprocess


def _block() -> bytes:
    """About 4 MiB of realistic output, repeated to make the stream."""
    parts: list[bytes] = []
    size = 0
    step = 0
    while size < 4 << 20:
        ref = f"r{step}"
        chunk = [format_marker(ref, "start", {"ts": step})]
        for i in range(400):
            width = (i * 37) % 180
            chunk.append(b"[%06d] worker-%d " % (i, i % 8) + b"x" * width + b"\n")
        chunk.append(b"partial output without newline \xff\xfe")
        chunk.append(format_marker(ref, "execution", {"code": 0, "details": "", "iteration": 1}))
        chunk.append(format_marker(ref, "end", {"ts": step, "status": "passed"}))
        data = b"".join(chunk)
        parts.append(data)
        size += len(data)
        step += 1
    parts.append(b"L" * (200 * 1024) + b"\n")
    return b"".join(parts)


def _chunks(total: int) -> Iterator[bytes]:
    block = _block()
    sent = 0
    while sent < total:
        for offset in range(0, len(block), CHUNK):
            piece = block[offset : offset + CHUNK]
            yield piece
            sent += len(piece)
            if sent >= total:
                return


def _child(mode: str) -> None:
    started = time.perf_counter()
    events = 0
    size = 0
    parser = MarkerParser(clock=lambda: 0)
    for chunk in _chunks(GIB):
        size += len(chunk)
        if mode == "parse":
            events += len(parser.feed(chunk))
    if mode == "parse":
        events += len(parser.flush())
    elapsed = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"bytes": size, "events": events, "seconds": elapsed, "peak_mb": peak_kib / 1024}))


def _run_child(mode: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode], check=True, capture_output=True, text=True
    ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    short = _short_lines_stream()
    rate, runs = _rate(short, LINES)
    _emit("log_lines_per_s", rate, "lines/s", runs)
    markers = _markers_stream(100_000)
    rate, runs = _rate(markers, 300_000)
    _emit("log_marker_events_per_s", rate, "events/s", runs)

    baseline = _run_child("generate")
    parsed = _run_child("parse")
    _emit("log_parse_1gb_mb_per_s", parsed["bytes"] / (1 << 20) / parsed["seconds"], "MB/s", 1)
    _emit("log_parse_1gb_peak_mb", parsed["peak_mb"], "MB", 1)
    _emit("log_parse_baseline_peak_mb", baseline["peak_mb"], "MB", 1)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        _child(sys.argv[2])
    else:
        main()

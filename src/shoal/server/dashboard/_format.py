"""Small presentation helpers shared by the pages (Jinja filters): durations, ages, status classes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

FINISHED_OK = frozenset({"passed"})
FINISHED_BAD = frozenset({"failed", "timeout", "aborted", "canceled"})
RUNNING = frozenset({"assigned", "starting", "scheduling", "running", "pausing", "resuming", "stopping"})


def parse_ts(value: Any) -> datetime | None:
    """A datetime from a datetime or an ISO-8601 string (``Z`` accepted); naive values are UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        ts = value
    else:
        try:
            ts = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return None
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def duration(ms: Any) -> str:
    """``850ms``, ``12.3s``, ``4m 05s``, ``2h 03m``; an em dash when unknown."""
    if ms is None or ms == "":
        return "—"
    try:
        value = float(ms)
    except (TypeError, ValueError):
        return "—"
    if value < 1000:
        return f"{int(value)}ms"
    s = value / 1000
    if s < 60:
        return f"{s:.1f}s"
    m, sec = divmod(int(s), 60)
    if m < 60:
        return f"{m}m {sec:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h {m:02d}m"


def span_ms(start: Any, end: Any, now: datetime | None = None) -> int | None:
    """Milliseconds from ``start`` to ``end`` (or to now when it has not ended)."""
    a = parse_ts(start)
    if a is None:
        return None
    b = parse_ts(end) or now or datetime.now(UTC)
    return max(0, int((b - a).total_seconds() * 1000))


def ago(value: Any, now: datetime | None = None) -> str:
    """``12s ago``, ``5m ago``, ``3h ago``, ``2d ago``; ``in 4m`` for the future; ``never``."""
    ts = parse_ts(value)
    if ts is None:
        return "never"
    delta = ((now or datetime.now(UTC)) - ts).total_seconds()
    future = delta < 0
    delta = abs(delta)
    if delta < 60:
        text = f"{int(delta)}s"
    elif delta < 3600:
        text = f"{int(delta // 60)}m"
    elif delta < 86400:
        text = f"{int(delta // 3600)}h"
    else:
        text = f"{int(delta // 86400)}d"
    return f"in {text}" if future else f"{text} ago"


def iso(value: Any) -> str:
    ts = parse_ts(value)
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if ts else ""


def status_class(status: Any) -> str:
    """A CSS modifier for a status badge: ok, bad, run, wait, skip."""
    s = str(status or "")
    if s in FINISHED_OK:
        return "ok"
    if s in FINISHED_BAD:
        return "bad"
    if s in RUNNING or s == "paused":
        return "run"
    if s == "skipped":
        return "skip"
    return "wait"


def percent(value: Any) -> str:
    if value is None:
        return "—"
    return f"{float(value) * 100:.0f}%"


def filters() -> dict[str, Any]:
    return {
        "duration": duration,
        "ago": ago,
        "iso": iso,
        "status_class": status_class,
        "percent": percent,
    }


__all__ = ["ago", "duration", "filters", "iso", "parse_ts", "percent", "span_ms", "status_class"]

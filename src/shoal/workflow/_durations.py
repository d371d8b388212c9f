"""Go duration strings (`30s`, `1h30m`, `1.5s`, `500ms`) to milliseconds."""

from __future__ import annotations

import re

_UNITS_MS = {
    "ns": 1e-6,
    "us": 1e-3,
    "µs": 1e-3,
    "μs": 1e-3,
    "ms": 1.0,
    "s": 1000.0,
    "m": 60_000.0,
    "h": 3_600_000.0,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration_ms(text: str) -> int:
    """Milliseconds of a Go duration; raises ValueError with a readable message otherwise."""
    value = text.strip()
    sign = 1
    if value[:1] in "+-" and value:
        sign = -1 if value[0] == "-" else 1
        value = value[1:]
    if value == "0":
        return 0
    pos = 0
    total = 0.0
    while pos < len(value):
        match = _PART.match(value, pos)
        if match is None:
            raise ValueError(f"expected a duration such as 30s, 5m or 1h30m, got {text!r}")
        total += float(match.group(1)) * _UNITS_MS[match.group(2)]
        pos = match.end()
    if pos == 0:
        raise ValueError(f"expected a duration such as 30s, 5m or 1h30m, got {text!r}")
    return sign * round(total)


def format_seconds(ms: int) -> str:
    """`1500` -> `1.5` (the argument of `sleep`)."""
    seconds = ms / 1000
    return f"{seconds:g}"

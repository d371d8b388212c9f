"""The marker format of the init protocol (docs/internal/init-protocol.md): constants and encoder.

A marker is ``\\x01\\x05\\x06<ref>\\x03<name>\\x04<json>\\x03\\n``; lib.sh prints the same bytes.
"""

from __future__ import annotations

import json
from typing import Any, Final

MARKER_PREFIX: Final = b"\x01\x05"  # what a parser searches for, anywhere in the stream
MARKER_START: Final = b"\x01\x05\x06"
MARKER_SEP: Final = b"\x03"
MARKER_VALUE: Final = b"\x04"
MARKER_END: Final = b"\x03\n"

# Marker names (hints) printed by the init program.
START: Final = "start"
END: Final = "end"
EXECUTION: Final = "execution"
ITERATION: Final = "iteration"
OUTPUT: Final = "output"
PAUSE: Final = "pause"
RESUME: Final = "resume"
MARKER_NAMES: Final = frozenset({START, END, EXECUTION, ITERATION, OUTPUT, PAUSE, RESUME})

# Final step statuses an ``end`` marker carries.
STATUSES: Final = frozenset({"passed", "failed", "timeout", "skipped", "aborted"})

_FORBIDDEN = frozenset("\x01\x02\x03\x04\x05\x06\n")


def format_marker(ref: str, name: str, value: Any) -> bytes:
    """Encode one marker exactly as lib.sh prints it (compact JSON, raw UTF-8)."""
    for label, text in (("ref", ref), ("name", name)):
        bad = _FORBIDDEN.intersection(text)
        if bad:
            raise ValueError(f"marker {label} {text!r} contains control characters {sorted(bad)!r}")
    payload = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return (
        MARKER_START
        + ref.encode()
        + MARKER_SEP
        + name.encode()
        + MARKER_VALUE
        + payload.encode()
        + MARKER_END
    )

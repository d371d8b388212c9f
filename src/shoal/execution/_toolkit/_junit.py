"""JUnit XML detection and summaries, streamed with ``iterparse`` in bounded memory.

A file is a JUnit report when its root element is ``testsuites`` or ``testsuite``. Documents with a
DOCTYPE are refused (no entity expansion of any kind), and files above a size cap are not parsed.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
_PROLOG_BYTES = 64 * 1024
_ROOT_NAMES = frozenset({"testsuites", "testsuite"})
_ELEMENT_START = re.compile(rb"<[A-Za-z_:]")


class JUnitError(Exception):
    """The file looks like a report but cannot be summarised."""


@dataclass(slots=True)
class JUnitSummary:
    tests: int = 0
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    errored: int = 0
    duration: int = 0  # milliseconds, total of the test cases

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _prolog(path: Path) -> bytes:
    with path.open("rb") as fh:
        head = fh.read(_PROLOG_BYTES)
    m = _ELEMENT_START.search(head)
    return head[: m.start()] if m else head


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value.replace(",", ""))
    except ValueError:
        return None


def looks_like_junit(path: Path) -> bool:
    """Cheap check on the first element name, without parsing the document."""
    try:
        with path.open("rb") as fh:
            head = fh.read(_PROLOG_BYTES)
    except OSError:
        return False
    m = _ELEMENT_START.search(head)
    if m is None:
        return False
    name = re.match(rb"<([A-Za-z_:][-\w.:]*)", head[m.start() :])
    return name is not None and _local(name.group(1).decode("ascii", "replace")).split(":")[-1] in _ROOT_NAMES


def summarize(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> JUnitSummary | None:
    """The summary of a JUnit report, or ``None`` when the file is not one.

    Raises ``JUnitError`` for a report that is too large, malformed, or declares a DOCTYPE.
    """
    if not path.is_file() or not looks_like_junit(path):
        return None
    size = path.stat().st_size
    if size > max_bytes:
        raise JUnitError(f"{path.name}: {size} bytes is above the {max_bytes}-byte cap for reports")
    if b"<!DOCTYPE" in _prolog(path) or b"<!ENTITY" in _prolog(path):
        raise JUnitError(f"{path.name}: documents with a DOCTYPE are not parsed")
    summary = JUnitSummary()
    total_ms = 0.0
    have_case_time = False
    root_time: float | None = None
    depth = 0
    case_status: str | None = None
    try:
        for event, elem in ET.iterparse(path, events=("start", "end")):
            name = _local(elem.tag)
            if event == "start":
                depth += 1
                if depth == 1:
                    if name not in _ROOT_NAMES:
                        return None
                    root_time = _seconds(elem.get("time"))
                elif name == "testcase":
                    case_status = "passed"
                    t = _seconds(elem.get("time"))
                    if t is not None:
                        total_ms += t * 1000
                        have_case_time = True
                elif case_status is not None:
                    if name == "failure" and case_status == "passed":
                        case_status = "failed"
                    elif name == "error" and case_status in ("passed", "failed"):
                        case_status = "errored"
                    elif name == "skipped":
                        case_status = "skipped"
                continue
            depth -= 1
            if name == "testcase" and case_status is not None:
                summary.tests += 1
                setattr(summary, case_status, getattr(summary, case_status) + 1)
                case_status = None
            if name in ("testcase", "testsuite"):
                elem.clear()  # keep memory bounded on large reports
    except ET.ParseError as exc:
        raise JUnitError(f"{path.name}: not well-formed XML: {exc}") from exc
    ms = total_ms if have_case_time else (root_time or 0.0) * 1000
    summary.duration = round(ms)
    return summary


def report_value(file: str, summary: JUnitSummary) -> dict[str, Any]:
    """The value of a ``report`` marker."""
    return {"kind": "junit", "file": file, "summary": summary.to_dict()}

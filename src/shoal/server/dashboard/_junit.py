"""Failed test cases of a JUnit report artifact, for the execution page (bounded size, no DOCTYPE)."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from dataclasses import dataclass

MAX_REPORT_BYTES = 16 * 1024 * 1024
MAX_CASES = 200


@dataclass(frozen=True, slots=True)
class FailedCase:
    suite: str
    classname: str
    name: str
    kind: str  # failure | error
    message: str
    text: str


class ReportUnreadable(Exception):
    """The report cannot be shown (too large, not well-formed, declares a DOCTYPE)."""


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def failed_cases(data: bytes, limit: int = MAX_CASES) -> list[FailedCase]:
    """Test cases with a ``failure`` or ``error`` child, in document order (at most ``limit``)."""
    if len(data) > MAX_REPORT_BYTES:
        raise ReportUnreadable(f"report of {len(data)} bytes is above the {MAX_REPORT_BYTES}-byte limit")
    head = data[:65536]
    if b"<!DOCTYPE" in head or b"<!ENTITY" in head:
        raise ReportUnreadable("reports with a DOCTYPE are not parsed")
    out: list[FailedCase] = []
    suites: list[str] = []
    try:
        for event, elem in ET.iterparse(io.BytesIO(data), events=("start", "end")):
            name = _local(elem.tag)
            if event == "start":
                if name == "testsuite":
                    suites.append(elem.get("name") or "")
                continue
            if name == "testsuite":
                if suites:
                    suites.pop()
                elem.clear()
            elif name == "testcase":
                for child in elem:
                    kind = _local(child.tag)
                    if kind in ("failure", "error"):
                        out.append(
                            FailedCase(
                                suite=suites[-1] if suites else "",
                                classname=elem.get("classname") or "",
                                name=elem.get("name") or "",
                                kind=kind,
                                message=(child.get("message") or "")[:500],
                                text=(child.text or "").strip()[:4000],
                            )
                        )
                        break
                elem.clear()
                if len(out) >= limit:
                    break
    except ET.ParseError as exc:
        raise ReportUnreadable(f"not well-formed XML: {exc}") from exc
    return out


__all__ = ["FailedCase", "ReportUnreadable", "failed_cases"]

"""Inline SVG charts rendered on the server: a run trend (duration bars coloured by status) and
timeline bars for steps. Colours come from CSS classes, so dark mode and contrast live in one place."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

from shoal.server.dashboard._format import duration, status_class


@dataclass(frozen=True, slots=True)
class TrendPoint:
    status: str
    duration_ms: int | None
    label: str  # e.g. the execution name, shown as the bar's tooltip


def trend_chart(
    points: Sequence[TrendPoint], *, width: int = 160, height: int = 32, title: str = ""
) -> Markup:
    """Duration of the last runs as bars (oldest left), each coloured by its status."""
    if not points:
        return Markup('<span class="muted">no runs yet</span>')
    longest = max((p.duration_ms or 0) for p in points) or 1
    n = len(points)
    slot = min(width / n, 12.0)  # a few runs stay narrow bars on the left, not wide slabs
    bar = max(1.0, slot * 0.75)
    passed = sum(1 for p in points if p.status == "passed")
    summary = title or f"last {n} runs: {passed} passed, {n - passed} not passed; bar height is the duration"
    parts = [
        f'<svg class="trend" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(summary)}">'
    ]
    for i, p in enumerate(points):
        h = max(2.0, (p.duration_ms or 0) / longest * (height - 2))
        x = i * slot + (slot - bar) / 2
        tip = f"{p.label}: {p.status}, {duration(p.duration_ms)}"
        parts.append(
            f'<rect class="bar {status_class(p.status)}" x="{x:.1f}" y="{height - h:.1f}" '
            f'width="{bar:.1f}" height="{h:.1f}"><title>{escape(tip)}</title></rect>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def timeline_bar(
    start_ms: int | None, end_ms: int | None, total_start: int, total_end: int, status: str
) -> Markup:
    """One step's span inside the execution's span, as a thin horizontal bar."""
    label = (
        f"{status}, {duration((end_ms - start_ms) if start_ms is not None and end_ms is not None else None)}"
    )
    if start_ms is None or total_end <= total_start:
        return Markup(
            f'<svg class="timeline" viewBox="0 0 1000 10" preserveAspectRatio="none" role="img" '
            f'aria-label="{escape(status)}, not started"><rect class="track" x="0" y="3" width="1000" height="4"/></svg>'
        )
    span = total_end - total_start
    end = end_ms if end_ms is not None else total_end
    w = max(6.0, (end - start_ms) / span * 1000)
    x = min(max(0.0, (start_ms - total_start) / span * 1000), 1000 - min(w, 1000.0))
    w = min(w, 1000 - x)
    return Markup(
        f'<svg class="timeline" viewBox="0 0 1000 10" preserveAspectRatio="none" role="img" '
        f'aria-label="{escape(label)}"><rect class="track" x="0" y="3" width="1000" height="4"/>'
        f'<rect class="bar {status_class(status)}" x="{x:.1f}" y="0" width="{w:.1f}" height="10"/></svg>'
    )


__all__ = ["TrendPoint", "timeline_bar", "trend_chart"]

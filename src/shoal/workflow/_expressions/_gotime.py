"""Formatting of times with Go layout strings (``2006-01-02T15:04:05.000Z07:00``).

A layout is the reference time Mon Jan 2 15:04:05 MST 2006 written the way the result should
look; each recognised element is replaced by the value of the given time. Only UTC (and fixed
offsets) matter here, since ``date()`` works in UTC.
"""

from __future__ import annotations

from datetime import datetime, timedelta

RFC3339_MILLIS = "2006-01-02T15:04:05.000Z07:00"

_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

# Elements, longest first where one is the prefix of another.
_ZONE_ELEMENTS = (
    "Z07:00:00",
    "-07:00:00",
    "Z070000",
    "-070000",
    "Z07:00",
    "-07:00",
    "Z0700",
    "-0700",
    "Z07",
    "-07",
)


def _starts_with_lower(text: str) -> bool:
    return bool(text) and "a" <= text[0] <= "z"


def _next_element(layout: str, i: int) -> tuple[str, int]:
    """The element starting at ``i`` (or ``""``) and its length."""
    c = layout[i]
    rest = layout[i:]
    if c == "J":
        if rest.startswith("January"):
            return "January", 7
        if rest.startswith("Jan") and not _starts_with_lower(layout[i + 3 :]):
            return "Jan", 3
    elif c == "M":
        if rest.startswith("Monday"):
            return "Monday", 6
        if rest.startswith("Mon") and not _starts_with_lower(layout[i + 3 :]):
            return "Mon", 3
        if rest.startswith("MST"):
            return "MST", 3
    elif c == "0":
        if rest.startswith("002"):
            return "002", 3
        if len(rest) > 1 and rest[1] in "123456":
            return rest[:2], 2
    elif c == "1":
        if rest.startswith("15"):
            return "15", 2
        return "1", 1
    elif c == "2":
        if rest.startswith("2006"):
            return "2006", 4
        return "2", 1
    elif c == "_":
        if rest.startswith("_2"):
            if rest.startswith("_2006"):
                return "", 0  # a literal "_" before the year
            return "_2", 2
        if rest.startswith("__2"):
            return "__2", 3
    elif c in "345":
        return c, 1
    elif c == "P":
        if rest.startswith("PM"):
            return "PM", 2
    elif c == "p":
        if rest.startswith("pm"):
            return "pm", 2
    elif c in "-Z":
        for element in _ZONE_ELEMENTS:
            if element[0] == c and rest.startswith(element):
                return element, len(element)
    elif c in ".," and len(rest) > 1 and rest[1] in "09":
        digit = rest[1]
        j = 1
        while j < len(rest) and rest[j] == digit:
            j += 1
        if not (j < len(rest) and rest[j].isdigit()):
            return c + rest[1:j], j
    return "", 0


def _zone(element: str, offset: timedelta | None) -> str:
    seconds = int(offset.total_seconds()) if offset is not None else 0
    if element.startswith("Z") and seconds == 0:
        return "Z"
    sign = "-" if seconds < 0 else "+"
    seconds = abs(seconds)
    hours, minutes, secs = seconds // 3600, seconds // 60 % 60, seconds % 60
    shape = element[1:]
    if shape == "07":
        return f"{sign}{hours:02d}"
    if shape == "0700":
        return f"{sign}{hours:02d}{minutes:02d}"
    if shape == "07:00":
        return f"{sign}{hours:02d}:{minutes:02d}"
    if shape == "070000":
        return f"{sign}{hours:02d}{minutes:02d}{secs:02d}"
    return f"{sign}{hours:02d}:{minutes:02d}:{secs:02d}"


def format_go_time(moment: datetime, layout: str) -> str:
    """``moment`` formatted with the Go ``layout``."""
    out: list[str] = []
    i = 0
    literal_start = 0
    hour = moment.hour
    while i < len(layout):
        element, length = _next_element(layout, i)
        if not length:
            i += 1
            continue
        out.append(layout[literal_start:i])
        i += length
        literal_start = i
        if element == "2006":
            out.append(f"{moment.year:04d}")
        elif element == "06":
            out.append(f"{moment.year % 100:02d}")
        elif element == "January":
            out.append(_MONTHS[moment.month - 1])
        elif element == "Jan":
            out.append(_MONTHS[moment.month - 1][:3])
        elif element == "01":
            out.append(f"{moment.month:02d}")
        elif element == "1":
            out.append(str(moment.month))
        elif element == "Monday":
            out.append(_DAYS[moment.weekday()])
        elif element == "Mon":
            out.append(_DAYS[moment.weekday()][:3])
        elif element == "02":
            out.append(f"{moment.day:02d}")
        elif element == "2":
            out.append(str(moment.day))
        elif element == "_2":
            out.append(f"{moment.day:2d}")
        elif element == "002":
            out.append(f"{moment.timetuple().tm_yday:03d}")
        elif element == "__2":
            out.append(f"{moment.timetuple().tm_yday:3d}")
        elif element == "15":
            out.append(f"{hour:02d}")
        elif element == "03":
            out.append(f"{(hour % 12) or 12:02d}")
        elif element == "3":
            out.append(str((hour % 12) or 12))
        elif element == "04":
            out.append(f"{moment.minute:02d}")
        elif element == "4":
            out.append(str(moment.minute))
        elif element == "05":
            out.append(f"{moment.second:02d}")
        elif element == "5":
            out.append(str(moment.second))
        elif element == "PM":
            out.append("PM" if hour >= 12 else "AM")
        elif element == "pm":
            out.append("pm" if hour >= 12 else "am")
        elif element == "MST":
            out.append(moment.tzname() or "UTC")
        elif element[0] in "-Z":
            out.append(_zone(element, moment.utcoffset()))
        else:  # fractional seconds: .000 keeps zeros, .999 trims them
            digits = f"{moment.microsecond:06d}000"[: len(element) - 1]
            if element[1] == "9":
                digits = digits.rstrip("0")
                if digits:
                    out.append(element[0] + digits)
            else:
                out.append(element[0] + digits)
    out.append(layout[literal_start:])
    return "".join(out)

"""Timestamps, uids and generated names in the formats the API server uses."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid

# the alphabet `generateName` suffixes are drawn from (no vowels, no confusable digits)
NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def rfc3339(t: dt.datetime | None = None) -> str:
    return (t or now()).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_nano(t: dt.datetime | None = None) -> str:
    """Go's RFC3339Nano: nanoseconds with trailing zeros trimmed."""
    t = t or now()
    fraction = f"{t.microsecond * 1000:09d}".rstrip("0")
    return t.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + "Z"


def parse_rfc3339(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def new_uid() -> str:
    return str(uuid.uuid4())


def random_suffix(n: int = 5) -> str:
    return "".join(secrets.choice(NAME_ALPHABET) for _ in range(n))

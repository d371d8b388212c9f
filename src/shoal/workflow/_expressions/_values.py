"""Plain values of the expression language and their conversions.

Values are JSON-like Python data: ``None``, ``bool``, ``int``, ``float``, ``str``, ``list``, ``dict``.
Conversions follow Testkube's rules (string forms for ``==``, floats for ``<``, truthiness of
``"0"``/``"off"``/``"false"``), and numbers print without a trailing ``.0``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from decimal import Decimal
from json.encoder import encode_basestring
from typing import Any

from shoal.workflow._expressions._errors import ExpressionError

# Arithmetic is done on floats; a result that is a whole number small enough to be exact comes back
# as an int, so that Python callers see 3, not 3.0.
_EXACT_INT_LIMIT = 2**53

_GO_FLOAT_RE = re.compile(
    r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity|nan)", re.IGNORECASE
)

FALSY_STRINGS = frozenset({"", "false", "0", "off"})


def number(value: float) -> int | float:
    """An arithmetic result: whole numbers come back as ``int``."""
    if value.is_integer() and -_EXACT_INT_LIMIT < value < _EXACT_INT_LIMIT:
        return int(value)
    return value


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def format_float(value: float) -> str:
    """A float as a string form (Go's ``%v`` without the exponent for whole numbers)."""
    if value != value:
        return "NaN"
    if value in (math.inf, -math.inf):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return repr(value)


def format_json_float(value: float) -> str:
    """A finite float as JSON text: shortest digits, positional between 1e-6 and 1e21."""
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    text = repr(value)
    if "e" in text:
        magnitude = abs(value)
        if 1e-6 <= magnitude < 1e21:
            return format(Decimal(text), "f")
        mantissa, exponent = text.split("e")
        sign = exponent[0] if exponent[0] in "+-" else "+"
        return f"{mantissa}e{sign}{exponent.lstrip('+-').lstrip('0') or '0'}"
    return text


def dump_json(value: Any) -> str:
    """Compact JSON with sorted keys and Go-style numbers (``500``, not ``500.0``)."""
    if isinstance(value, str):
        return encode_basestring(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (math.inf, -math.inf):
            return "null"
        return format_json_float(value)
    if isinstance(value, list):
        return "[" + ",".join([dump_json(item) for item in value]) + "]"
    if isinstance(value, dict):
        items = sorted((to_string(key), item) for key, item in value.items())
        return "{" + ",".join([encode_basestring(key) + ":" + dump_json(item) for key, item in items]) + "}"
    return encode_basestring(str(value))


def to_string(value: Any) -> str:
    """The string form: null is empty, lists join with commas, maps are JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_float(value)
    if isinstance(value, list):
        return ",".join([to_string(item) for item in value])
    if isinstance(value, dict):
        return dump_json(value)
    return str(value)


def is_truthy(value: Any) -> bool:
    """Truthiness: null, false, empty containers and "", "false", "0", "off" are false."""
    if value is True or value is False:
        return value
    if value is None:
        return False
    if isinstance(value, (list, dict)):
        return len(value) > 0
    return to_string(value) not in FALSY_STRINGS


def to_float(value: Any) -> float:
    if isinstance(value, float):
        return value
    if value is None:
        return 0.0
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    text = to_string(value)
    if _GO_FLOAT_RE.fullmatch(text) is None:
        raise ExpressionError(f"cannot convert {text!r} to a number")
    return float(text)


def to_int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    converted = to_float(value)
    if converted != converted or converted in (math.inf, -math.inf):
        raise ExpressionError(f"cannot convert {to_string(value)!r} to an integer")
    return int(converted)


def to_map(value: Any) -> dict[str, Any] | None:
    if isinstance(value, dict):
        return value
    if value is None:
        return None
    if isinstance(value, list):
        return {str(index): item for index, item in enumerate(value)}
    raise ExpressionError(f"cannot convert {to_string(value)!r} to a map")


def to_list(value: Any) -> list[Any] | None:
    if isinstance(value, list):
        return value
    if value is None:
        return None
    if isinstance(value, dict):
        raise ExpressionError("cannot convert a map to a list")
    raise ExpressionError(f"cannot convert {to_string(value)!r} to a list")


def plain(value: Any) -> Any:
    """Bring a caller's value into the JSON-like domain (tuples become lists, mappings dicts)."""
    if value is None or isinstance(value, (str, bool, int, float, list, dict)):
        return value
    if isinstance(value, (tuple, set, frozenset)):
        return [plain(item) for item in value]
    if isinstance(value, Mapping):
        return {to_string(key): plain(item) for key, item in value.items()}
    return str(value)


def copy_plain(value: Any) -> Any:
    """A copy of the containers of a value, so callers cannot change a shared literal."""
    if isinstance(value, list):
        return [copy_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: copy_plain(item) for key, item in value.items()}
    return value


def escape_template_text(text: str) -> str:
    """Text that a template compiles back to itself: ``{{`` and lone ``{`` become islands."""
    if "{" not in text:
        return text
    return _BRACES_RE.sub(_escape_braces, text)


_BRACES_RE = re.compile(r"\{+")
_ESCAPED_PAIR = '{{"{{"}}'
_ESCAPED_SINGLE = '{{"{"}}'


def _escape_braces(match: re.Match[str]) -> str:
    count = len(match.group(0))
    return _ESCAPED_PAIR * (count // 2) + _ESCAPED_SINGLE * (count % 2)

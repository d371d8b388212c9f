"""Tokenizer: one compiled regular expression, matched once per token.

JSON objects and arrays are read by the JSON decoder (they may nest); everything else is a
single alternation of the regular expression below, in Testkube's order of precedence.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Final

from shoal.workflow._expressions._errors import ExpressionError

# Token kinds
OP: Final = 0  # binary operator (and unary minus)
NOT: Final = 1  # !
OPEN: Final = 2  # (
CLOSE: Final = 3  # )
COMMA: Final = 4  # ,
COLON: Final = 5  # :
QUESTION: Final = 6  # ?
SPREAD: Final = 7  # ...
VALUE: Final = 8  # literal value (JSON, single-quoted string, null/true/false)
NAME: Final = 9  # accessor: a, a.b.c, a.*.b
PROPERTY: Final = 10  # .k after something else
END: Final = 11  # end of the tokens (the parser's sentinel)

KIND_NAMES = {
    OP: "operator",
    NOT: "'!'",
    OPEN: "'('",
    CLOSE: "')'",
    COMMA: "','",
    COLON: "':'",
    QUESTION: "'?'",
    SPREAD: "'...'",
    VALUE: "value",
    NAME: "name",
    PROPERTY: "property",
    END: "end",
}

# (kind, value, start, end)
Token = tuple[int, Any, int, int]

_SPACE = r"[ \t\n\r\f]"
_TOKEN_RE = re.compile(
    rf"""
    (?P<ws>{_SPACE}+)
    |(?P<op>!=|<>|==|>=|<=|&&|\*\*|\|\||[-+*/><=%])
    |(?P<not>!)
    |(?P<punct>[(),:?])
    |(?P<spread>\.\.\.)
    |(?P<kw>(?:null|true|false)(?![a-zA-Z0-9_.]))
    |(?P<num>(?:0|[1-9][0-9]*)(?P<frac>\.[0-9]+)?(?P<exp>[eE][-+]?[0-9]+)?)
    |(?P<dq>"(?:[^"\\]|\\.)*")
    |(?P<sq>'(?:[^'\\]|\\.)*')
    |(?P<json>[\[{{])
    |(?P<name>[a-zA-Z0-9_]+(?:{_SPACE}*\.{_SPACE}*(?:[a-zA-Z0-9_]+|\*))*)
    |(?P<prop>\.{_SPACE}*(?:[a-zA-Z0-9_]+|\*))
    """,
    re.VERBOSE | re.DOTALL,
)
_SPACE_RE = re.compile(f"{_SPACE}+")
_PUNCT = {"(": OPEN, ")": CLOSE, ",": COMMA, ":": COLON, "?": QUESTION}
_KEYWORDS: dict[str, Any] = {"null": None, "true": True, "false": False}
_SINGLE_ESCAPE_RE = re.compile(r'\\(.)|"', re.DOTALL)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (math.inf, -math.inf):
        raise ValueError(f"number out of range: {text}")
    return value


_JSON = json.JSONDecoder(strict=False, parse_constant=_reject_constant, parse_float=_finite_float)


def _single_quote_escape(match: re.Match[str]) -> str:
    escaped = match.group(1)
    if escaped is None:
        return '\\"'
    if escaped == "'":
        return "'"
    return match.group(0)


def _decode_double(text: str, start: int) -> str:
    inner = text[1:-1]
    if "\\" not in inner:
        return inner
    try:
        value: str = _JSON.decode(text)
    except ValueError as exc:
        raise ExpressionError(f"invalid string literal: {exc}", start) from None
    return value


def _decode_single(text: str, start: int) -> str:
    inner = text[1:-1]
    if "\\" not in inner and '"' not in inner:
        return inner
    try:
        value: str = _JSON.decode('"' + _SINGLE_ESCAPE_RE.sub(_single_quote_escape, inner) + '"')
    except ValueError as exc:
        raise ExpressionError(f"invalid string literal: {exc}", start) from None
    return value


def tokenize(source: str, start: int = 0, *, in_template: bool = False) -> tuple[list[Token], int]:
    """Tokens of ``source`` from ``start``.

    In an expression every character must belong to a token. With ``in_template``, tokenizing
    stops at the first character that starts no token (the ``}}`` closing the island) and the
    position of that character is returned (the length of the text if there is none).
    """
    tokens: list[Token] = []
    append = tokens.append
    match_at = _TOKEN_RE.match
    end = len(source)
    pos = start
    while pos < end:
        m = match_at(source, pos)
        if m is None:
            if in_template:
                return tokens, pos
            char = source[pos]
            if char in "\"'":
                raise ExpressionError("unterminated string literal", pos)
            if char == ".":
                raise ExpressionError("expected a property name after '.'", pos)
            raise ExpressionError(f"unexpected character {char!r}", pos)
        group = m.lastgroup
        stop = m.end()
        if group == "ws":
            pos = stop
            continue
        if group == "op":
            append((OP, m.group(), pos, stop))
        elif group == "name":
            text = m.group()
            if _SPACE_RE.search(text) is not None:
                text = _SPACE_RE.sub("", text)
            append((NAME, text, pos, stop))
        elif group == "num":
            text = m.group()
            if m.group("frac") is None and m.group("exp") is None:
                append((VALUE, int(text), pos, stop))
            else:
                value = float(text)
                if value in (math.inf, -math.inf):
                    raise ExpressionError(f"number out of range: {text}", pos)
                append((VALUE, value, pos, stop))
        elif group == "punct":
            append((_PUNCT[m.group()], None, pos, stop))
        elif group == "dq":
            append((VALUE, _decode_double(m.group(), pos), pos, stop))
        elif group == "prop":
            append((PROPERTY, _SPACE_RE.sub("", m.group()[1:]), pos, stop))
        elif group == "kw":
            append((VALUE, _KEYWORDS[m.group()], pos, stop))
        elif group == "sq":
            append((VALUE, _decode_single(m.group(), pos), pos, stop))
        elif group == "not":
            append((NOT, None, pos, stop))
        elif group == "spread":
            append((SPREAD, None, pos, stop))
        else:  # JSON object or array
            try:
                value, stop = _JSON.raw_decode(source, pos)
            except json.JSONDecodeError as exc:
                raise ExpressionError(f"invalid JSON value: {exc.msg}", exc.pos) from None
            except ValueError as exc:
                raise ExpressionError(f"invalid JSON value: {exc}", pos) from None
            except RecursionError:
                raise ExpressionError("JSON value nested too deeply", pos) from None
            append((VALUE, value, pos, stop))
        pos = stop
    return tokens, pos

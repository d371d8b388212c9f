"""Templates: text with ``{{ expression }}`` islands, and the helpers built on them.

Each island is stringified; static text and static islands merge. ``expand_template_list`` is the
argv rule: an item that is exactly one island yielding a list becomes several items, unless the
island is a wildcard accessor (``{{ services.db.*.ip }}``), which is joined with commas.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from shoal.workflow._expressions._ast import WILDCARD_FUNCTION, Accessor, Call, Expression, Literal
from shoal.workflow._expressions._errors import ExpressionError
from shoal.workflow._expressions._machine import (
    Machine,
    as_string_part,
    concatenate,
)
from shoal.workflow._expressions._parse import (
    CACHED_SOURCE_LENGTH,
    MAX_SOURCE_LENGTH,
    compile_expression,
    compile_tokens,
)
from shoal.workflow._expressions._tokenize import NAME, PROPERTY, tokenize
from shoal.workflow._expressions._values import to_string


def compile_template(source: str) -> Expression:
    """Compile a template; raises ``ExpressionError`` positioned in the template text."""
    if len(source) <= CACHED_SOURCE_LENGTH:
        return _compile_template_cached(source)
    return compile_template_uncached(source)


@lru_cache(maxsize=16384)
def _compile_template_cached(source: str) -> Expression:
    return compile_template_uncached(source)


def compile_template_uncached(source: str) -> Expression:
    if len(source) > MAX_SOURCE_LENGTH:
        raise ExpressionError(f"template is longer than {MAX_SOURCE_LENGTH} characters", MAX_SOURCE_LENGTH)
    if "{{" not in source:
        return Literal(source)
    parts: list[Expression] = []
    offset = 0
    while True:
        opening = source.find("{{", offset)
        if opening == -1:
            break
        if opening > offset:
            parts.append(Literal(source[offset:opening]))
        tokens, stop = tokenize(source, opening + 2, in_template=True)
        if stop >= len(source):
            raise ExpressionError("template error: expression not closed", opening)
        if not source.startswith("}}", stop):
            raise ExpressionError(f"unexpected character {source[stop]!r} in template expression", stop)
        offset = stop + 2
        if not tokens:
            continue
        parts.append(as_string_part(compile_tokens(tokens, stop)))
    if offset < len(source):
        parts.append(Literal(source[offset:]))
    return concatenate(parts)


def extract_pure_template_expression(source: str) -> str | None:
    """The inner expression when ``source`` is exactly one ``{{ }}`` island (blanks around allowed)."""
    text = source.strip()
    if not text.startswith("{{") or not text.endswith("}}"):
        return None
    inner = text[2:-2]
    if "{{" in inner or "}}" in inner:
        return None
    inner = inner.strip()
    return inner or None


def is_wildcard_accessor_only(source: str) -> bool:
    """Whether ``source`` is only a wildcard accessor chain (``a.*.b``) or its compiled ``_wc`` form."""
    tokens: list[tuple[int, object, int, int]]
    try:
        tokens, _ = tokenize(source)
    except ExpressionError:
        return False
    is_chain = bool(tokens) and tokens[0][0] == NAME and all(token[0] == PROPERTY for token in tokens[1:])
    if is_chain and (".*" in str(tokens[0][1]) or any(token[1] == "*" for token in tokens[1:])):
        return True
    if not source.lstrip().startswith(WILDCARD_FUNCTION):
        return False
    try:
        compiled = compile_expression(source)
    except ExpressionError:
        return False
    return _is_wildcard_call(compiled)


def _is_wildcard_call(node: Expression) -> bool:
    if not isinstance(node, Call) or node.name != WILDCARD_FUNCTION or len(node.args) != 2:
        return False
    base, path = node.args
    if base.spread or path.spread or not isinstance(path.expr, Literal):
        return False
    text = path.expr.value_
    if not isinstance(text, str) or not (text == "_.value" or text.startswith("_.value.")):
        return False
    return isinstance(base.expr, Accessor) or _is_wildcard_call(base.expr)


def expand_template_list(items: Sequence[str], *machines: Machine, final: bool = False) -> list[str]:
    """Resolve a list of templates (argv); a pure ``{{ list }}`` item expands into several items.

    Items that cannot be resolved yet come back as template text (``{{ env.X }}``); with
    ``final`` every item must resolve, and unknown names fail.
    """
    result: list[str] = []
    for item in items:
        if "{{" not in item:
            result.append(item)
            continue
        inner = extract_pure_template_expression(item)
        if inner is not None and not is_wildcard_accessor_only(inner):
            try:
                expr = compile_expression(inner).resolve(*machines, final=final)
            except ExpressionError:
                expr = None
            if expr is not None and isinstance(expr, Literal):
                value = expr.value_
                if value is None:  # like an empty list: the item disappears
                    continue
                if isinstance(value, list):
                    result.extend(to_string(element) for element in value)
                else:
                    result.append(to_string(value))
                continue
        resolved = compile_template(item).resolve(*machines, final=final)
        result.append(to_string(resolved.value_) if isinstance(resolved, Literal) else resolved.template())
    return result

"""Parser: precedence climbing over the token list, with depth and length limits.

Precedence, low to high: ``c ? a : b`` (right-associative) < ``&&`` ``||`` (one level, left to
right) < comparisons (not chainable) < ``+ -`` < ``* / %`` < ``**`` < unary ``!`` ``-`` <
postfix ``.name``. Wildcard names (``a.*.b``) become ``_wc(a, "_.value.b")`` calls.
"""

from __future__ import annotations

import re
from functools import lru_cache

from shoal.workflow._expressions._ast import (
    CANONICAL_OPERATOR,
    COMPARISONS,
    NONE,
    PRIORITY,
    WILDCARD_FUNCTION,
    Accessor,
    Argument,
    Binary,
    Call,
    Expression,
    Literal,
    Property,
    Ternary,
    Unary,
)
from shoal.workflow._expressions._errors import ExpressionError
from shoal.workflow._expressions._machine import resolve_at_compile_time
from shoal.workflow._expressions._tokenize import (
    CLOSE,
    COLON,
    COMMA,
    END,
    KIND_NAMES,
    NAME,
    NOT,
    OP,
    OPEN,
    PROPERTY,
    QUESTION,
    SPREAD,
    VALUE,
    Token,
    tokenize,
)

MAX_SOURCE_LENGTH = 1_000_000
MAX_DEPTH = 128  # depth of the tree (a long a+b+c+... chain counts too)
MAX_NESTING = 48  # parentheses, calls and unary operators inside each other

_OPERATOR_PRIORITY = {**PRIORITY, "=": 1, "<>": 1}


def name_expression(name: str, position: int = 0) -> Expression:
    """An accessor, or ``_wc()`` calls for the wildcard segments of ``name``."""
    if ".*" not in name:
        return Accessor(name)
    segments = name.split(".*")
    if len(segments) > MAX_DEPTH:
        raise ExpressionError(f"expression is nested too deeply (more than {MAX_DEPTH} levels)", position)
    node: Expression = Accessor(segments[0])
    for segment in segments[1:]:
        node = Call(WILDCARD_FUNCTION, (Argument(node), Argument(Literal("_.value" + segment))))
    return node


def path_expression(target: Expression, segments: list[str]) -> Expression:
    """``target.a.b``; a ``*`` segment maps the rest over the items (``_wc``)."""
    if "*" not in segments:
        for segment in segments:
            target = (
                Accessor(target.name + "." + segment)
                if isinstance(target, Accessor)
                else Property(target, segment)
            )
        return target
    star = len(segments) - 1 - segments[::-1].index("*")
    inner = path_expression(target, segments[:star])
    suffix = "".join("." + segment for segment in segments[star + 1 :])
    return Call(WILDCARD_FUNCTION, (Argument(inner), Argument(Literal("_.value" + suffix))))


class _Parser:
    __slots__ = ("index", "nesting", "positions", "tokens")

    def __init__(self, tokens: list[Token], end: int) -> None:
        # Where each operation starts (node id -> offset), to position errors of constant folding.
        self.positions: dict[int, int] = {}
        # A sentinel at the end: looking at the current token never goes out of range.
        self.tokens: list[Token] = [*tokens, (END, None, end, end)]
        self.index = 0
        self.nesting = 0

    # -- helpers ------------------------------------------------------------------------------

    def _fail_at_current(self, expected: str) -> ExpressionError:
        kind, value, start, _ = self.tokens[self.index]
        if kind == END:
            return ExpressionError(f"unexpected end of expression, expected {expected}", start)
        shown = KIND_NAMES[kind] if value is None else repr(value) if kind == VALUE else str(value)
        return ExpressionError(f"unexpected {shown}, expected {expected}", start)

    @staticmethod
    def _check_depth(depth: int, position: int) -> None:
        if depth > MAX_DEPTH:
            raise ExpressionError(f"expression is nested too deeply (more than {MAX_DEPTH} levels)", position)

    def _enter(self, position: int) -> None:
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            raise ExpressionError(
                f"expression is nested too deeply (more than {MAX_NESTING} levels)", position
            )

    # -- grammar ------------------------------------------------------------------------------

    def parse(self) -> Expression:
        if len(self.tokens) == 1:
            return NONE
        node, _ = self.ternary()
        if self.tokens[self.index][0] != END:
            raise self._fail_at_current("an operator or the end of the expression")
        return node

    def ternary(self) -> tuple[Expression, int]:
        condition, depth = self.binary(0)
        token = self.tokens[self.index]
        if token[0] != QUESTION:
            return condition, depth
        self._enter(token[2])
        self.index += 1
        then, then_depth = self.ternary()
        token = self.tokens[self.index]
        if token[0] != COLON:
            raise self._fail_at_current("':' of the conditional")
        self.index += 1
        otherwise, otherwise_depth = self.ternary()
        self.nesting -= 1
        depth = max(depth, then_depth, otherwise_depth) + 1
        self._check_depth(depth, token[2])
        node = Ternary(condition, then, otherwise)
        self.positions[id(node)] = token[2]
        return node, depth

    def binary(self, min_priority: int) -> tuple[Expression, int]:
        left, depth = self.unary()
        tokens = self.tokens
        after_comparison = False
        while True:
            kind, op, start, _ = tokens[self.index]
            if kind != OP:
                break
            priority = _OPERATOR_PRIORITY[op]
            if priority < min_priority:
                break
            canonical: str = CANONICAL_OPERATOR.get(op) or op
            is_comparison = canonical in COMPARISONS
            if is_comparison and after_comparison:
                raise ExpressionError(f"comparison operators cannot be chained: {op!r}", start)
            self.index += 1
            right, right_depth = self.binary(priority + 1)
            depth = (depth if depth > right_depth else right_depth) + 1
            if depth > MAX_DEPTH:
                self._check_depth(depth, start)
            left = Binary(canonical, left, right, op if op != canonical else "")
            self.positions[id(left)] = start
            after_comparison = is_comparison
        return left, depth

    def unary(self) -> tuple[Expression, int]:
        kind, value, start, _ = self.tokens[self.index]
        if kind == NOT or (kind == OP and value == "-"):
            self.index += 1
            self._enter(start)
            operand, depth = self.unary()
            self.nesting -= 1
            op = "!" if kind == NOT else "-"
            if op == "-" and type(operand) is Literal:
                number = operand.value_
                if isinstance(number, (int, float)) and not isinstance(number, bool):
                    return Literal(-number), depth
            self._check_depth(depth + 1, start)
            unary = Unary(op, operand)
            self.positions[id(unary)] = start
            return unary, depth + 1
        node, depth = self.primary()
        tokens = self.tokens
        if tokens[self.index][0] != PROPERTY:
            return node, depth
        segments: list[str] = []
        start = tokens[self.index][2]
        while tokens[self.index][0] == PROPERTY:
            segments.append(tokens[self.index][1])
            self.index += 1
        depth += len(segments)
        self._check_depth(depth, start)
        node = path_expression(node, segments)
        self.positions[id(node)] = start
        return node, depth

    def primary(self) -> tuple[Expression, int]:
        tokens = self.tokens
        kind, value, start, _ = tokens[self.index]
        if kind == VALUE:
            self.index += 1
            return Literal(value), 1
        if kind == NAME:
            self.index += 1
            if tokens[self.index][0] == OPEN:
                return self.call(value, start)
            return name_expression(value, start), value.count(".*") + 1
        if kind == OPEN:
            self.index += 1
            self._enter(start)
            node, depth = self.ternary()
            if tokens[self.index][0] != CLOSE:
                raise self._fail_at_current("')'")
            self.index += 1
            self.nesting -= 1
            return node, depth
        raise self._fail_at_current("a value")

    def call(self, name: str, start: int) -> tuple[Expression, int]:
        self.index += 1  # (
        self._enter(start)
        tokens = self.tokens
        args: list[Argument] = []
        depth = 0
        while True:
            kind = tokens[self.index][0]
            if kind == CLOSE:
                self.index += 1
                break
            if kind == END:
                raise self._fail_at_current(f"')' closing the call of {name}()")
            if args:
                if kind != COMMA:
                    raise self._fail_at_current(f"',' or ')' in the call of {name}()")
                self.index += 1
            expr, arg_depth = self.ternary()
            if arg_depth > depth:
                depth = arg_depth
            if tokens[self.index][0] == SPREAD:
                self.index += 1
                args.append(Argument(expr, True))
            else:
                args.append(Argument(expr))
        self.nesting -= 1
        self._check_depth(depth + 1, start)
        call = Call(name, tuple(args))
        self.positions[id(call)] = start
        return call, depth + 1


def parse_tokens(tokens: list[Token], end: int) -> Expression:
    """The tree of a token list (not simplified)."""
    return _Parser(tokens, end).parse()


def compile_tokens(tokens: list[Token], end: int) -> Expression:
    """The simplified tree of a token list; a failure while folding points at its operation."""
    parser = _Parser(tokens, end)
    tree = parser.parse()
    try:
        return resolve_at_compile_time(tree)
    except ExpressionError as exc:
        if exc.position is not None:
            raise
        raise ExpressionError(exc.message, _locate_failure(tree, parser.positions)) from None


def _locate_failure(tree: Expression, positions: dict[int, int]) -> int | None:
    """The position of the innermost operation of ``tree`` that fails to fold."""
    order: list[Expression] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        order.append(node)
        stack.extend(node.children())
    for node in reversed(order):  # children before their parents
        position = positions.get(id(node))
        if position is None:
            continue
        try:
            resolve_at_compile_time(node)
        except ExpressionError:
            return position
    return None


def parse(source: str) -> Expression:
    """The tree of an expression, as written (no simplification)."""
    return parse_tokens(*_tokens(source))


def _tokens(source: str) -> tuple[list[Token], int]:
    if len(source) > MAX_SOURCE_LENGTH:
        raise ExpressionError(f"expression is longer than {MAX_SOURCE_LENGTH} characters", MAX_SOURCE_LENGTH)
    return tokenize(source)


CACHED_SOURCE_LENGTH = 4096  # longer sources are compiled every time (they would crowd the cache)


def compile_expression(source: str) -> Expression:
    """Parse an expression and simplify its constant parts; raises ``ExpressionError``."""
    if len(source) <= CACHED_SOURCE_LENGTH:
        return _compile_expression_cached(source)
    return compile_expression_uncached(source)


@lru_cache(maxsize=16384)
def _compile_expression_cached(source: str) -> Expression:
    return compile_expression_uncached(source)


def compile_expression_uncached(source: str) -> Expression:
    match = _SIMPLE_NAME_RE.fullmatch(source)
    if match is not None and match.group(1) not in _KEYWORDS:
        return name_expression(match.group(1), match.start(1))
    return compile_tokens(*_tokens(source))


# A plain (dotted) name, the most common expression: no need for the tokenizer.
_SIMPLE_NAME_RE = re.compile(r"[ \t\n\r\f]*([a-zA-Z_][a-zA-Z0-9_]*(?:\.(?:[a-zA-Z0-9_]+|\*))*)[ \t\n\r\f]*")
_KEYWORDS = frozenset({"null", "true", "false"})

"""Parser: precedence climbing over the token list, with depth and length limits.

Precedence, low to high: ``c ? a : b`` (right-associative) < ``&&`` ``||`` (one level, left to
right) < comparisons (not chainable) < ``+ -`` < ``* / %`` < ``**`` < unary ``!`` ``-`` <
postfix ``.name``. Wildcard names (``a.*.b``) become ``_wc(a, "_.value.b")`` calls.
"""

from __future__ import annotations

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
from shoal.workflow._expressions._tokenize import (
    CLOSE,
    COLON,
    COMMA,
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


def name_expression(name: str) -> Expression:
    """An accessor, or ``_wc()`` calls for the wildcard segments of ``name``."""
    star = name.rfind(".*")
    if star == -1:
        return Accessor(name)
    return Call(
        WILDCARD_FUNCTION,
        (Argument(name_expression(name[:star])), Argument(Literal("_.value" + name[star + 2 :]))),
    )


def path_expression(target: Expression, segments: list[str]) -> Expression:
    """``target.a.b``; a ``*`` segment maps the rest over the items (``_wc``)."""
    if "*" not in segments:
        for segment in segments:
            target = Property(target, segment)
        return target
    star = len(segments) - 1 - segments[::-1].index("*")
    inner = path_expression(target, segments[:star])
    suffix = "".join("." + segment for segment in segments[star + 1 :])
    return Call(WILDCARD_FUNCTION, (Argument(inner), Argument(Literal("_.value" + suffix))))


class _Parser:
    __slots__ = ("end", "index", "nesting", "tokens")

    def __init__(self, tokens: list[Token], end: int) -> None:
        self.tokens = tokens
        self.index = 0
        self.end = end  # position reported for "unexpected end"
        self.nesting = 0

    # -- helpers ------------------------------------------------------------------------------

    def _peek(self) -> Token | None:
        index = self.index
        return self.tokens[index] if index < len(self.tokens) else None

    def _fail_at_current(self, expected: str) -> ExpressionError:
        token = self._peek()
        if token is None:
            return ExpressionError(f"unexpected end of expression, expected {expected}", self.end)
        kind, value, start, _ = token
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
        if not self.tokens:
            return NONE
        node, _ = self.ternary()
        if self.index < len(self.tokens):
            raise self._fail_at_current("an operator or the end of the expression")
        return node

    def ternary(self) -> tuple[Expression, int]:
        condition, depth = self.binary(0)
        token = self._peek()
        if token is None or token[0] != QUESTION:
            return condition, depth
        self._enter(token[2])
        self.index += 1
        then, then_depth = self.ternary()
        token = self._peek()
        if token is None or token[0] != COLON:
            raise self._fail_at_current("':' of the conditional")
        self.index += 1
        otherwise, otherwise_depth = self.ternary()
        self.nesting -= 1
        depth = max(depth, then_depth, otherwise_depth) + 1
        self._check_depth(depth, token[2])
        return Ternary(condition, then, otherwise), depth

    def binary(self, min_priority: int) -> tuple[Expression, int]:
        left, depth = self.unary()
        tokens = self.tokens
        after_comparison = False
        while self.index < len(tokens):
            kind, op, start, _ = tokens[self.index]
            if kind != OP:
                break
            assert isinstance(op, str)
            priority = _OPERATOR_PRIORITY[op]
            if priority < min_priority:
                break
            canonical = CANONICAL_OPERATOR.get(op, op)
            is_comparison = canonical in COMPARISONS
            if is_comparison and after_comparison:
                raise ExpressionError(f"comparison operators cannot be chained: {op!r}", start)
            self.index += 1
            right, right_depth = self.binary(priority + 1)
            depth = max(depth, right_depth) + 1
            self._check_depth(depth, start)
            left = Binary(canonical, left, right, op if op != canonical else "")
            after_comparison = is_comparison
        return left, depth

    def unary(self) -> tuple[Expression, int]:
        token = self._peek()
        if token is not None:
            kind, value, start, _ = token
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
                return Unary(op, operand), depth + 1
        return self.postfix()

    def postfix(self) -> tuple[Expression, int]:
        node, depth = self.primary()
        tokens = self.tokens
        segments: list[str] = []
        start = 0
        while self.index < len(tokens) and tokens[self.index][0] == PROPERTY:
            if not segments:
                start = tokens[self.index][2]
            segments.append(tokens[self.index][1])
            self.index += 1
        if segments:
            depth += len(segments)
            self._check_depth(depth, start)
            node = path_expression(node, segments)
        return node, depth

    def primary(self) -> tuple[Expression, int]:
        token = self._peek()
        if token is None:
            raise self._fail_at_current("a value")
        kind, value, start, _ = token
        if kind == VALUE:
            self.index += 1
            return Literal(value), 1
        if kind == NAME:
            self.index += 1
            following = self._peek()
            if following is not None and following[0] == OPEN:
                return self.call(value, start)
            return name_expression(value), (2 if ".*" in value else 1)
        if kind == OPEN:
            self.index += 1
            self._enter(start)
            node, depth = self.ternary()
            token = self._peek()
            if token is None or token[0] != CLOSE:
                raise self._fail_at_current("')'")
            self.index += 1
            self.nesting -= 1
            return node, depth
        raise self._fail_at_current("a value")

    def call(self, name: str, start: int) -> tuple[Expression, int]:
        self.index += 1  # (
        self._enter(start)
        args: list[Argument] = []
        depth = 0
        while True:
            token = self._peek()
            if token is None:
                raise self._fail_at_current(f"')' closing the call of {name}()")
            if token[0] == CLOSE:
                self.index += 1
                break
            if args:
                if token[0] != COMMA:
                    raise self._fail_at_current(f"',' or ')' in the call of {name}()")
                self.index += 1
            expr, arg_depth = self.ternary()
            depth = max(depth, arg_depth)
            following = self._peek()
            if following is not None and following[0] == SPREAD:
                self.index += 1
                args.append(Argument(expr, True))
            else:
                args.append(Argument(expr))
        self.nesting -= 1
        self._check_depth(depth + 1, start)
        return Call(name, tuple(args)), depth + 1


def parse_tokens(tokens: list[Token], end: int) -> Expression:
    """The tree of a token list (not simplified)."""
    return _Parser(tokens, end).parse()


def parse(source: str) -> Expression:
    """The tree of an expression, as written (no simplification)."""
    if len(source) > MAX_SOURCE_LENGTH:
        raise ExpressionError(f"expression is longer than {MAX_SOURCE_LENGTH} characters", MAX_SOURCE_LENGTH)
    tokens, end = tokenize(source)
    return parse_tokens(tokens, end)


@lru_cache(maxsize=16384)
def compile_expression(source: str) -> Expression:
    """Parse an expression and simplify its constant parts; raises ``ExpressionError``."""
    from shoal.workflow._expressions._machine import resolve_at_compile_time

    return resolve_at_compile_time(parse(source))

"""Expression tree: immutable nodes, their static types, and their normalized text.

The text forms follow Testkube's printer (no spaces around binary operators, ``a ? b : c``,
``(a+"/")+b``) where it is sound, and add parentheses where Testkube's would change the meaning
on re-parsing (``a-(b-c)``, chained comparisons).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shoal.workflow._expressions._errors import ExpressionError
from shoal.workflow._expressions._values import copy_plain, dump_json, escape_template_text, to_string

if TYPE_CHECKING:
    from shoal.workflow._expressions._machine import Machine

# Static types, as far as they can be told from the tree alone (Testkube's ``Type()``).
T_UNKNOWN = ""
T_BOOL = "bool"
T_STRING = "string"
T_FLOAT = "float64"
T_INT = "int64"

# Operator priorities (higher binds tighter). ``&&`` and ``||`` share one level.
PRIORITY: dict[str, int] = {
    "&&": 0,
    "||": 0,
    "==": 1,
    "!=": 1,
    "<": 1,
    "<=": 1,
    ">": 1,
    ">=": 1,
    "+": 2,
    "-": 2,
    "*": 3,
    "/": 3,
    "%": 3,
    "**": 4,
}
COMPARISONS = frozenset({"==", "!=", "<", "<=", ">", ">="})
CANONICAL_OPERATOR = {"=": "==", "<>": "!="}

# Return types of the standard functions (the rest are unknown).
FUNCTION_TYPES: dict[str, str] = {
    "string": T_STRING,
    "join": T_STRING,
    "tojson": T_STRING,
    "toyaml": T_STRING,
    "shellquote": T_STRING,
    "trim": T_STRING,
    "relpath": T_STRING,
    "abspath": T_STRING,
    "makepath": T_STRING,
    "date": T_STRING,
    "int": T_INT,
    "len": T_INT,
    "floor": T_INT,
    "ceil": T_INT,
    "round": T_INT,
    "bool": T_BOOL,
    "float": T_FLOAT,
}

WILDCARD_FUNCTION = "_wc"


class Expression:
    """Base of every node. Nodes are immutable and may be shared between many trees."""

    __slots__ = ()

    def resolve(self, *machines: Machine, final: bool = False) -> Expression:
        """Substitute what the machines know and simplify; with ``final``, unknown names fail."""
        return _machine.resolve_expression(self, machines, final)

    def is_static(self) -> bool:
        return False

    def value(self) -> Any:
        raise ExpressionError(f"expression is not static: {self.source()}")

    def source(self) -> str:
        return render(self)

    def template(self) -> str:
        return render_template(self)

    def type(self) -> str:
        return type_of(self)

    def children(self) -> tuple[Expression, ...]:
        return ()

    def walk(self) -> Iterator[Expression]:
        stack: list[Expression] = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children()))

    def accessors(self) -> set[str]:
        return {node.name for node in self.walk() if isinstance(node, Accessor)}

    def functions(self) -> set[str]:
        return {node.name for node in self.walk() if isinstance(node, Call)}

    def __str__(self) -> str:
        return render(self)


@dataclass(frozen=True, slots=True)
class Literal(Expression):
    """A plain value: null, bool, number, string, list or map."""

    value_: Any

    def __repr__(self) -> str:
        return f"Literal({self.value_!r})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Literal)
            and type(other.value_) is type(self.value_)
            and other.value_ == self.value_
        )

    def __hash__(self) -> int:
        return hash(("Literal", dump_json(self.value_)))

    def is_static(self) -> bool:
        return True

    def value(self) -> Any:
        return copy_plain(self.value_)


@dataclass(frozen=True, slots=True)
class Accessor(Expression):
    """A variable, possibly dotted (``config.x``, ``services.db.0.ip``)."""

    name: str


@dataclass(frozen=True, slots=True)
class Property(Expression):
    """``.name`` after something that is not a plain name (``f(x).0``, ``{"k": 1}.k``)."""

    target: Expression
    name: str

    def children(self) -> tuple[Expression, ...]:
        return (self.target,)


@dataclass(frozen=True, slots=True)
class Argument:
    """One call argument; ``spread`` marks ``list...``."""

    expr: Expression
    spread: bool = False


@dataclass(frozen=True, slots=True)
class Call(Expression):
    name: str
    args: tuple[Argument, ...] = ()

    def children(self) -> tuple[Expression, ...]:
        return tuple(arg.expr for arg in self.args)


@dataclass(frozen=True, slots=True)
class Unary(Expression):
    """``!x`` or ``-x``."""

    op: str
    operand: Expression

    def children(self) -> tuple[Expression, ...]:
        return (self.operand,)


@dataclass(frozen=True, slots=True)
class Binary(Expression):
    """A binary operation. ``op`` is canonical (``==`` and ``!=``); ``spelling`` keeps ``=``/``<>``."""

    op: str
    left: Expression
    right: Expression
    spelling: str = field(default="", compare=False)

    def children(self) -> tuple[Expression, ...]:
        return (self.left, self.right)


@dataclass(frozen=True, slots=True)
class Ternary(Expression):
    condition: Expression
    then: Expression
    otherwise: Expression

    def children(self) -> tuple[Expression, ...]:
        return (self.condition, self.then, self.otherwise)


@dataclass(frozen=True, slots=True)
class Template(Expression):
    """A template with at least one unresolved island: string-typed parts, concatenated.

    Static text parts are ``Literal`` strings; every other part has the string type (an island is
    wrapped in ``string(...)`` unless it already yields a string).
    """

    parts: tuple[Expression, ...]

    def children(self) -> tuple[Expression, ...]:
        return self.parts


NONE = Literal(None)
TRUE = Literal(True)
FALSE = Literal(False)
EMPTY_STRING = Literal("")


# ---------------------------------------------------------------------------------------------------
# Types


def literal_type(value: Any) -> str:
    if isinstance(value, str):
        return T_STRING
    if value is True or value is False:
        return T_BOOL
    if isinstance(value, (int, float)):
        # Every number literal is a float64 in Testkube (JSON decoding), and arithmetic is float.
        return T_FLOAT
    return T_UNKNOWN


def type_of(node: Expression) -> str:
    if isinstance(node, Literal):
        return literal_type(node.value_)
    if isinstance(node, Binary):
        op = node.op
        if op in COMPARISONS:
            return T_BOOL
        if op == "+":
            if type_of(node.left) == T_STRING or type_of(node.right) == T_STRING:
                return T_STRING
            return T_FLOAT
        if op in ("&&", "||"):
            left = type_of(node.left)
            return left if left == type_of(node.right) else T_UNKNOWN
        return T_FLOAT
    if isinstance(node, Call):
        return FUNCTION_TYPES.get(node.name, T_UNKNOWN)
    if isinstance(node, Template):
        return T_STRING
    if isinstance(node, Unary):
        return T_BOOL if node.op == "!" else T_FLOAT
    if isinstance(node, Ternary):
        then = type_of(node.then)
        return then if then == type_of(node.otherwise) else T_UNKNOWN
    return T_UNKNOWN


# ---------------------------------------------------------------------------------------------------
# Normalized text


def render_literal(value: Any) -> str:
    if isinstance(value, float) and (value != value or value in (math.inf, -math.inf)):
        return 'float("NaN")' if value != value else ('float("+Inf")' if value > 0 else 'float("-Inf")')
    if isinstance(value, list) and any(
        isinstance(item, float) and (item != item or item in (math.inf, -math.inf)) for item in value
    ):
        return "list(" + ",".join(render_literal(item) for item in value) + ")"
    return dump_json(value)


def render(node: Expression) -> str:
    if isinstance(node, Literal):
        return render_literal(node.value_)
    if isinstance(node, Accessor):
        return node.name
    if isinstance(node, Binary):
        return (
            _left_operand(node.op, node.left)
            + (node.spelling or node.op)
            + _right_operand(node.op, node.left, node.right)
        )
    if isinstance(node, Call):
        return (
            node.name
            + "("
            + ",".join(render(arg.expr) + ("..." if arg.spread else "") for arg in node.args)
            + ")"
        )
    if isinstance(node, Property):
        return _postfix_operand(node.target) + "." + node.name
    if isinstance(node, Unary):
        return node.op + _postfix_operand(node.operand, allow_unary=True)
    if isinstance(node, Ternary):
        condition = render(node.condition)
        if type(node.condition) is Ternary:
            condition = "(" + condition + ")"
        return condition + " ? " + render(node.then) + " : " + render(node.otherwise)
    if isinstance(node, Template):
        parts = node.parts
        text = _left_operand("+", parts[0])
        for part in parts[1:]:
            text += "+" + _right_operand("+", parts[0], part)
        return text
    raise TypeError(f"not an expression node: {node!r}")


def _is_concatenation(node: Expression) -> bool:
    """A string ``+`` whose left side is a string: re-associating it keeps its meaning."""
    if type(node) is Template:
        return True
    return isinstance(node, Binary) and node.op == "+" and type_of(node.left) == T_STRING


def _left_operand(op: str, child: Expression) -> str:
    kind = type(child)
    if isinstance(child, Binary):
        priority = PRIORITY[op]
        child_priority = PRIORITY[child.op]
        if child_priority > priority or (
            child_priority == priority
            and op not in COMPARISONS
            and (child.op != "+" or type_of(child) == type_of(child.left))
        ):
            return render(child)
        return "(" + render(child) + ")"
    if kind is Template:
        # A concatenation: like a string-typed ``+`` whose left side is a string.
        return render(child) if PRIORITY[op] <= PRIORITY["+"] else "(" + render(child) + ")"
    if kind is Ternary:
        return "(" + render(child) + ")"
    return render(child)


def _right_operand(op: str, left: Expression, child: Expression) -> str:
    kind = type(child)
    if isinstance(child, Binary):
        # ``s + (t + u)`` with strings ``s`` and ``t`` is ``s + t + u``; the re-parsed form then
        # needs no parentheses either, since its left side ``s + t`` stays a string-led sum.
        if PRIORITY[child.op] > PRIORITY[op] or (
            op == "+" and _is_concatenation(child) and type_of(left) == T_STRING
        ):
            return render(child)
        return "(" + render(child) + ")"
    if kind is Template:
        if (op == "+" and type_of(left) == T_STRING) or PRIORITY[op] < PRIORITY["+"]:
            return render(child)
        return "(" + render(child) + ")"
    if kind is Ternary:
        return "(" + render(child) + ")"
    return render(child)


def _postfix_operand(node: Expression, allow_unary: bool = False) -> str:
    kind = type(node)
    if kind in (Accessor, Call, Property) or (allow_unary and kind is Unary):
        return render(node)
    if kind is Literal:
        text = render(node)
        # A negative number before ``.k`` would read as ``-(n.k)``.
        return "(" + text + ")" if text.startswith("-") else text
    return "(" + render(node) + ")"


def render_template(node: Expression) -> str:
    """The node written back as template text: static strings as text, the rest in ``{{ }}``."""
    if isinstance(node, Literal):
        value = node.value_
        if value is None:
            return ""
        return escape_template_text(to_string(value))
    if isinstance(node, Template):
        return "".join(render_template(part) for part in node.parts)
    if isinstance(node, Binary) and node.op == "+" and type_of(node) == T_STRING:
        return render_template(node.left) + render_template(node.right)
    if isinstance(node, Call) and node.name == "string" and not any(arg.spread for arg in node.args):
        return "".join(render_template(arg.expr) for arg in node.args)
    return "{{" + render(node) + "}}"


# The resolver needs the node classes above; imported last to close the cycle.
from shoal.workflow._expressions import _machine  # noqa: E402

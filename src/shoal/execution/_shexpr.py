"""Residual run-time expressions of a Plan, translated into sh that lib.sh evaluates.

A translated expression is an sh function that leaves its value in ``_sh_r`` as a tagged string
(``s<text>``, ``n<number>``, ``btrue``/``bfalse``, ``z`` for null, ``l`` + newline-separated items)
or returns 1 with ``_sh_err`` set. User data never becomes code: literals are single-quoted words,
everything else flows through variables. What lib.sh cannot evaluate raises ``RuntimeExpressionError``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from shoal.workflow._expressions._ast import (
    WILDCARD_FUNCTION,
    Accessor,
    Binary,
    Call,
    Expression,
    Literal,
    Property,
    Template,
    Ternary,
    Unary,
)
from shoal.workflow._expressions._errors import ExpressionError
from shoal.workflow._expressions._machine import Machine
from shoal.workflow._expressions._parse import compile_expression
from shoal.workflow._expressions._template import compile_template
from shoal.workflow._expressions._values import to_string

# Functions lib.sh implements as _sh_fn_<name>.
RUNTIME_FUNCTIONS: frozenset[str] = frozenset(
    {"string", "len", "trim", "shellquote", "file", "glob", "bool", "int", "join", "at"}
)
_OPERATORS = frozenset({"==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "%", "**"})
_SH_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_STEP_ID = re.compile(r"[A-Za-z0-9_-]+")
_OUTPUT_KEY = re.compile(r"[^/\x00]+")
_SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")


class RuntimeExpressionError(Exception):
    """An expression the init program cannot evaluate; ``position`` is 0-based when known."""

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message if position is None else f"{message} (at {position})")
        self.message = message
        self.position = position


@dataclass(frozen=True, slots=True)
class Scope:
    """What names mean where an expression is evaluated.

    ``refs`` maps stage refs to their index (status variable ``_S<n>``); ``env`` maps env names
    defined by the stage itself to the sh variables holding their string values (``prelude`` is
    the sh command that computes them); ``passed`` is the source of what a bare ``passed`` means
    (the stage's status chain; ``None`` = true); in ``until`` bare ``passed``/``failed``/``status``
    mean ``self.*``; ``self_index`` is the stage that ``self`` refers to. When a conjunction of refs
    is exactly ``chain_refs``, the translation tests ``chain_flags`` instead (sh words that expand
    to non-empty text when a group on the way to the root has a failed child), so that the check
    costs the depth of the stage rather than the number of steps before it.
    """

    refs: Mapping[str, int]
    env: Mapping[str, str] = field(default_factory=dict)
    prelude: str = ""
    step_id: str | None = None
    passed: str | None = None
    until: bool = False
    self_index: int | None = None
    chain_refs: frozenset[str] = frozenset()
    chain_flags: str = ""


def sh_quote(text: str) -> str:
    """A single sh word that expands to exactly ``text``."""
    if "\x00" in text:
        raise RuntimeExpressionError("a NUL character cannot be passed to the shell")
    return "'" + text.replace("'", "'\\''") + "'"


def parse_expression(source: str) -> Expression:
    try:
        return compile_expression(source)
    except ExpressionError as exc:
        raise RuntimeExpressionError(exc.message, exc.position) from None


def parse_template(source: str) -> Expression:
    try:
        return compile_template(source)
    except ExpressionError as exc:
        raise RuntimeExpressionError(exc.message, exc.position) from None


def encode_value(value: object) -> str:
    """The tagged form of a plain value (what lib.sh holds at run time)."""
    if value is None:
        return "z"
    if value is True:
        return "btrue"
    if value is False:
        return "bfalse"
    if isinstance(value, (int, float)):
        if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
            raise RuntimeExpressionError(f"{to_string(value)} cannot be used at run time")
        return "n" + to_string(value)
    if isinstance(value, str):
        return "s" + value
    if isinstance(value, list):
        items = [to_string(item) for item in value]
        if any("\n" in item for item in items):
            raise RuntimeExpressionError("a list item with a newline cannot be used at run time")
        return "l" + "".join("\n" + item for item in items)
    raise RuntimeExpressionError("maps cannot be used in run-time expressions")


def _is_namespace(name: str) -> bool:
    """A run-time name that is a map of further names (``env``, ``services.db``, ``step.x.outputs``)."""
    parts = name.split(".")
    if parts[0] == "env" or parts[0] == "self":
        return len(parts) == 1
    if parts[0] == "services":
        return len(parts) <= 3
    if parts[0] == "step":
        return (
            len(parts) == 1
            or (len(parts) == 2 and parts[1] != "results")
            or (len(parts) == 3 and parts[2] == "outputs")
        )
    return False


def dotted_name(node: Expression) -> str | None:
    """``a.b.c`` for an accessor, a chain of properties over one, or ``at(a, "b")``; else None."""
    if isinstance(node, Accessor):
        return node.name
    if isinstance(node, Property):
        base = dotted_name(node.target)
        return None if base is None else base + "." + node.name
    if isinstance(node, Call) and node.name == "at" and len(node.args) == 2 and not node.args[1].spread:
        key = node.args[1].expr
        base = dotted_name(node.args[0].expr)
        if (
            base is not None
            and _is_namespace(base)
            and isinstance(key, Literal)
            and not isinstance(key.value_, bool)
        ):
            text = to_string(key.value_)
            if isinstance(key.value_, (str, int)) and _SEGMENT.fullmatch(text):
                return base + "." + text
    return None


class _Translator:
    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.lines: list[str] = []
        self.temps = 0
        self.depth = 1

    def emit(self, line: str) -> None:
        self.lines.append("\t" * self.depth + line)

    def temp(self) -> str:
        self.temps += 1
        return f"_sh_t{self.temps}"

    def result(self, command: str, check: bool = True) -> str:
        """Run a lib.sh command that sets _sh_r and keep its value in a fresh temporary."""
        name = self.temp()
        self.emit(f"{command} || return 1" if check else command)
        self.emit(f"{name}=$_sh_r")
        return f'"${name}"'

    # ------------------------------------------------------------------ nodes

    def operand(self, node: Expression) -> str:
        """Emit what computes ``node``; return an sh word expanding to its tagged value."""
        if isinstance(node, Literal):
            return sh_quote(encode_value(node.value_))
        name = dotted_name(node)
        if name is not None:
            return self.name(name)
        if isinstance(node, Unary):
            value = self.operand(node.operand)
            if node.op == "!":
                return self.result(f"_sh_not {value}", check=False)
            if node.op == "-":
                return self.result(f"_sh_neg {value}")
            raise RuntimeExpressionError(f"unknown operator {node.op}")
        if isinstance(node, Binary):
            return self.binary(node)
        if isinstance(node, Ternary):
            return self.branch(node.condition, node.then, node.otherwise)
        if isinstance(node, Template):
            parts = [self.operand(part) for part in node.parts]
            return self.result("_sh_fn_string " + " ".join(parts))
        if isinstance(node, Call):
            return self.call(node)
        if isinstance(node, Property):
            target = self.operand(node.target)
            return self.result(f"_sh_fn_at {target} {sh_quote('s' + node.name)}")
        raise RuntimeExpressionError(f"{node.source()} cannot be evaluated at run time")

    def binary(self, node: Binary) -> str:
        refs = self.ref_conjunction(node)
        if refs is not None and self.scope.chain_flags and set(refs) == self.scope.chain_refs:
            name = self.temp()
            self.emit(f'case "{self.scope.chain_flags}" in *1*) {name}=bfalse ;; *) {name}=btrue ;; esac')
            return f'"${name}"'
        if refs is not None:
            # one pattern match instead of a branch per ref
            words = " ".join(f"$_S{self.scope.refs[ref]}" for ref in refs)
            name = self.temp()
            self.emit(
                f'case " {words} " in *" failed "* | *" timeout "* | *" aborted "*) {name}=bfalse ;; '
                f"*) {name}=btrue ;; esac"
            )
            return f'"${name}"'
        if node.op == "&&":
            return self.branch(node.left, node.right, None)
        if node.op == "||":
            return self.branch(node.left, None, node.right)
        if node.op not in _OPERATORS:
            raise RuntimeExpressionError(f"unknown operator {node.op}")
        left = self.operand(node.left)
        right = self.operand(node.right)
        return self.result(f"_sh_op {sh_quote(node.op)} {left} {right}")

    def ref_conjunction(self, node: Expression) -> list[str] | None:
        """The refs of ``a&&b&&c`` when every operand is a stage ref, else None."""
        if isinstance(node, Binary) and node.op == "&&":
            left = self.ref_conjunction(node.left)
            right = self.ref_conjunction(node.right)
            return None if left is None or right is None else left + right
        if isinstance(node, Accessor) and node.name in self.scope.refs:
            return [node.name]
        return None

    def branch(
        self,
        condition: Expression,
        then: Expression | None,
        otherwise: Expression | None,
    ) -> str:
        """``c ? a : b``; a missing branch (``&&``, ``||``) yields the condition's value."""
        test = self.operand(condition)
        name = self.temp()
        self.emit(f"if _sh_truthy {test}; then")
        for position, branch in enumerate((then, otherwise)):
            if position == 1:
                self.emit("else")
            self.depth += 1
            value = test if branch is None else self.operand(branch)
            self.emit(f"{name}={value}")
            self.depth -= 1
        self.emit("fi")
        return f'"${name}"'

    def call(self, node: Call) -> str:
        wildcard = self.service_wildcard(node)
        if wildcard is not None:
            return self.result(f"_sh_services {sh_quote(wildcard[0])} {sh_quote(wildcard[1])}", check=False)
        if node.name not in RUNTIME_FUNCTIONS:
            raise RuntimeExpressionError(f"function {node.name}() is not available at run time")
        if any(arg.spread for arg in node.args):
            raise RuntimeExpressionError(
                f"spread arguments (...) are not supported at run time in {node.name}()"
            )
        args = [self.operand(arg.expr) for arg in node.args]
        return self.result(" ".join([f"_sh_fn_{node.name}", *args]))

    def service_wildcard(self, node: Call) -> tuple[str, str] | None:
        """``services.<name>.*.<key>`` (``_wc(services.<name>, "_.value.<key>")``) -> (name, key)."""
        if node.name != WILDCARD_FUNCTION or len(node.args) != 2 or any(a.spread for a in node.args):
            return None
        target, path = node.args[0].expr, node.args[1].expr
        base = dotted_name(target)
        if base is None or not isinstance(path, Literal) or not isinstance(path.value_, str):
            return None
        head, _, service = base.partition(".")
        key = path.value_.removeprefix("_.value.")
        if head != "services" or key == path.value_ or not all(_SEGMENT.fullmatch(p) for p in (service, key)):
            return None
        return service, key

    def name(self, name: str) -> str:
        scope = self.scope
        if name in ("always", "true"):
            return "btrue"
        if name in ("never", "false"):
            return "bfalse"
        if name == "null":
            return "z"
        if name in ("passed", "success", "failed", "error", "status"):
            if scope.until:
                return self.self_value(name)
            return self.chain(name)
        if name in scope.refs:
            return self.result(f'_sh_ref "$_S{scope.refs[name]}"', check=False)
        head, _, rest = name.partition(".")
        if head == "self" and rest in ("status", "passed", "success", "failed", "error"):
            return self.self_value(rest)
        if head == "env" and rest:
            return self.env(rest)
        if head == "step" and rest:
            return self.step(rest)
        if head == "services":
            parts = rest.split(".")
            if len(parts) == 3 and all(_SEGMENT.fullmatch(part) for part in parts) and parts[1].isdigit():
                words = " ".join(sh_quote(part) for part in parts)
                return self.result(f"_sh_service {words}", check=False)
        raise RuntimeExpressionError(f"unknown variable {name} at run time")

    def chain(self, name: str) -> str:
        scope = self.scope
        passed = self.operand(parse_expression(scope.passed)) if scope.passed is not None else "btrue"
        if name in ("passed", "success"):
            return passed
        if name in ("failed", "error"):
            return self.result(f"_sh_not {passed}", check=False)
        out = self.temp()
        self.emit(f"if _sh_truthy {passed}; then {out}=spassed; else {out}=sfailed; fi")
        return f'"${out}"'

    def self_value(self, field_: str) -> str:
        index = self.scope.self_index
        self.emit(f'_sh_self_status "$_S{index}"' if index is not None else "_sh_self_status")
        name = self.temp()
        if field_ == "status":
            self.emit(f"{name}=s$_sh_s")
        elif field_ in ("passed", "success"):
            self.emit(f'[ "$_sh_s" = passed ]; _sh_bool $?; {name}=$_sh_r')
        else:
            self.emit(f'case $_sh_s in "" | passed | skipped) {name}=bfalse ;; *) {name}=btrue ;; esac')
        return f'"${name}"'

    def env(self, var: str) -> str:
        if var in self.scope.env:
            return f'"s${self.scope.env[var]}"'
        if not _SH_NAME.fullmatch(var) or var.startswith("_sh_"):
            raise RuntimeExpressionError(f"env.{var}: not a variable name the init program can read")
        return f'"s${{{var}-}}"'

    def step(self, rest: str) -> str:
        if rest == "results":
            if self.scope.step_id is None:
                raise RuntimeExpressionError("step.results: the step has no id")
            return f'"s$_sh_data/.steps/"{sh_quote(self.scope.step_id)}'
        step_id, _, tail = rest.partition(".")
        if not _STEP_ID.fullmatch(step_id):
            raise RuntimeExpressionError(f"step.{rest}: {step_id!r} is not a step id")
        if tail == "results":
            return f'"s$_sh_data/.steps/"{sh_quote(step_id)}'
        kind, _, key = tail.partition(".")
        if kind == "outputs" and _OUTPUT_KEY.fullmatch(key) and key not in (".", ".."):
            return self.result(f"_sh_output {sh_quote(step_id)} {sh_quote(key)}", check=False)
        raise RuntimeExpressionError(f"unknown variable step.{rest} at run time")


def prepare(node: Expression, scope: Scope) -> Expression:
    """Expand the status names (``passed``, ``failed``, ``status``, ``always``, ...) and fold constants."""
    chain = scope.passed or "true"  # compiled by the machine only when a status name is used
    passed: str | Expression = Accessor("self.passed") if scope.until else chain
    failed: str | Expression = Accessor("self.failed") if scope.until else f"!({chain})"
    status: str | Expression = Accessor("self.status") if scope.until else f'({chain}) ? "passed" : "failed"'
    names: dict[str, str | Expression] = {
        "always": Literal(True),
        "never": Literal(False),
        "passed": passed,
        "success": passed,
        "failed": failed,
        "error": failed,
        "status": status,
    }
    try:
        return node.resolve(Machine(expressions=names))
    except ExpressionError as exc:
        raise RuntimeExpressionError(exc.message, exc.position) from None


def sh_function(name: str, node: Expression, scope: Scope) -> str:
    """An sh function ``name`` that evaluates ``node`` into ``_sh_r`` (1 + ``_sh_err`` on failure)."""
    translator = _Translator(scope)
    if scope.prelude and scope.env and _uses_env(node, scope.env):
        translator.emit(f"{scope.prelude} || return 1")
    value = translator.operand(node)
    translator.emit(f"_sh_r={value}")
    return f"{name}() {{\n" + "\n".join(translator.lines) + "\n}\n"


def _uses_env(node: Expression, names: Mapping[str, str]) -> bool:
    for sub in node.walk():
        dotted = dotted_name(sub)
        if dotted is not None and dotted.startswith("env.") and dotted[4:] in names:
            return True
    return False

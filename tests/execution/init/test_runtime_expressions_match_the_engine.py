"""Run-time expressions translated to sh give the values the Python engine gives, under three shells."""

from __future__ import annotations

import json
import os
import random
import subprocess
from pathlib import Path

import pytest

from shoal.execution._initgen import LIB_PATH
from shoal.execution._shexpr import RuntimeExpressionError, Scope, encode_value, sh_function
from shoal.workflow._expressions._errors import ExpressionError
from shoal.workflow._expressions._files import filesystem_machine
from shoal.workflow._expressions._machine import Machine
from shoal.workflow._expressions._parse import compile_expression, parse

from ._plans import BUSYBOX, SHELLS

ENV = {
    "A": "5",
    "B": "abc",
    "EMPTY": "",
    "NUM": "3.5",
    "ZERO": "0",
    "OFF": "off",
    "SPACED": "  \t padded text \n ",
    "QUOTE": "it's a $HOME `x`",
    "NEG": "-12",
    "LEADING": "007",
}

EXPRESSIONS = [
    '"abc"', "5", "2.5", "true", "null", '[1,"a",[2,3]]', "[]",
    "1 + 2", '"a" + 1', '1 + "a"', "5 - 7", "2 * 3.5", "7 / 2", "8 / 2", "7 % 3", "-7 % 3", "7.5 % 2",
    "2 ** 10", "2 ** 0.5", "2 ** -2", "(-3) ** 3", "0.5 ** 3", "1 / 3", "0.1 + 0.2", "3 - 3.0", "-0 * 1",
    '5 == "5"', "5 != 5", '"a" == "b"', "1 < 2", '"10" > 9', "2.5 >= 2.5", "1 <= 0", "-1 < -2",
    "0 || 5", "1 && 0 || 2", '"" || "x"', '"off" && 1', '!"false"', "!0", "!null", "![]",
    "true ? \"y\" : \"n\"", "null ? 1 : 2", "env.A == 5 ? env.B : env.A",
    "env.A + env.B", "int(env.A) + 1", 'env.UNSET == ""', "env.UNSET", "len(env.B)", "len(env.EMPTY)",
    "trim(env.SPACED)", "shellquote(env.QUOTE)", 'shellquote("a b", "it\'s", "", null, "~x", "$y", "plain")',
    'shellquote("a\\"b", "x=1;y", "[a]")', 'string(1, true, null, "x", [1, 2])', 'bool("off")', 'bool("no")',
    "bool(env.ZERO)", "bool(env.OFF)", "bool(env.EMPTY)", "bool(env.B)", 'int("42")', "int(3.99)", "int(-3.99)",
    "int(env.NEG)", "int(env.LEADING) + 1", "int(env.NUM)", "-env.A", "-env.NUM", "env.NUM * 2", "env.NUM + 1",
    'join(["a","b"], "-")', "join([1, [2, 3]])", "join(null)", "len([1,2,3])", 'len("")', "string([1,2])",
    '"x" + [1,2]', "env.A < env.NUM", "env.NEG < 0", "1e3", "1.5e-7 * 1", "100000 * 100000",
    '1 / 0', "5 % 0", 'int("abc")', "len(5)", "trim(5)", 'join("a")', '"a" - 1', '"abc" < 1', "int(true)",
    "len(null)", 'bool(1, 2)', 'at(env.B, 2)', "at(env.B, 3)", 'at(["a", "b"], "1")',
    'at(["a", "b"], 2)', "at(5, 0)", 'at("abc", "x")', 'at(["a", "b"], -1)', '["x", "y"].1', "[].0", 'at(env, "A")', "at(env.B, 0)",
]  # fmt: skip


# What lib.sh cannot do (busybox awk has no math library): fractional powers.
LIMITS = {"2 ** 0.5"}


def engine(source: str, machine: Machine) -> str:
    """The tagged value the Python engine computes (or ``E`` for an error)."""
    try:
        node = compile_expression(source).resolve(machine, final=True)
        return encode_value(node.value())
    except (ExpressionError, RuntimeExpressionError):
        return "E"


def run_sh(shell: str, sources: list[str], tmp_path: Path, env: dict[str, str]) -> list[str]:
    """Evaluate expressions (parsed as written, no folding) with lib.sh; ``E`` marks an error."""
    functions = []
    for k, source in enumerate(sources):
        functions.append(sh_function(f"_sh_test{k}", parse(source), Scope(refs={})))
    calls = [
        f"if _sh_test{k}; then printf '%s\\000' \"$_sh_r\"; else printf 'E%s\\000' \"$_sh_err\"; fi"
        for k in range(len(sources))
    ]
    script = tmp_path / "expr.sh"
    script.write_text(f"_sh_sourced=1\n. {LIB_PATH}\n" + "".join(functions) + "\n".join(calls) + "\n")
    out = subprocess.run(
        [*SHELLS[shell], str(script)],
        env={"PATH": os.environ["PATH"], "SHOAL_BUSYBOX": BUSYBOX, **env},
        cwd=tmp_path,
        capture_output=True,
        check=True,
        timeout=60,
    )
    values = out.stdout.decode().split("\0")[:-1]
    assert len(values) == len(sources), out.stderr.decode()
    return values


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_expressions_evaluate_like_the_engine(shell: str, tmp_path: Path) -> None:
    got = run_sh(shell, EXPRESSIONS, tmp_path, ENV)
    environment = {**ENV, "UNSET": ""}
    machine = Machine(variables={"env": environment} | {f"env.{k}": v for k, v in environment.items()})
    mismatches = []
    for source, value in zip(EXPRESSIONS, got, strict=True):
        expected = "E" if source in LIMITS else engine(source, machine)
        actual = "E" if value.startswith("E") else value
        if actual != expected:
            mismatches.append(f"{source}: sh {value!r} engine {expected!r}")
    assert not mismatches, "\n".join(mismatches)


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_errors_carry_a_message(shell: str, tmp_path: Path) -> None:
    got = run_sh(shell, ["1 / 0", 'int("abc")', 'join("a")', "trim(5)"], tmp_path, {})
    assert got == [
        "Ecannot divide by zero",
        "Ecannot convert 'abc' to a number",
        "E\"join\" function expects a list as 1st argument, 'a' provided",
        'E"trim" function argument should be a string',
    ]


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_file_and_glob_read_the_working_directory(shell: str, tmp_path: Path) -> None:
    files = {
        "a.txt": "alpha\nbeta\n",
        "b.txt": "no newline",
        "reports/one.xml": "<x/>",
        "reports/skip/two.xml": "<y/>",
        "reports/deep/er/three.xml": "<z/>",
        "reports-x/four.xml": "<w/>",
    }
    for rel, content in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(content)
    sources = [
        'file("a.txt")',
        'file("b.txt")',
        'glob("*.txt")',
        'glob("**/*.xml", "!**/skip/*")',
        'glob("reports/*.xml", "reports-x/*")',
        'len(glob("nothing/*"))',
        'glob("./reports/{one,two}.xml")',
        'glob("**/t?o.xml")',
        'file("missing.txt")',
        'glob("!a.txt")',
    ]
    got = run_sh(shell, sources, tmp_path, {})
    root = str(tmp_path)
    machine = filesystem_machine({f"{root}/{rel}": content for rel, content in files.items()}, root)
    for source, value in zip(sources, got, strict=True):
        expected = engine(source, machine)
        assert ("E" if value.startswith("E") else value) == expected, source


def test_expressions_outside_the_runtime_set_are_rejected() -> None:
    for source in [
        "tojson(env.A)",
        "env",
        "config.x",
        "date()",
        "string(split(env.A)...)",
        "shellquote([1]...)",
        '{"a": 1}',
    ]:
        with pytest.raises(RuntimeExpressionError):
            sh_function("_f", parse(source), Scope(refs={}))


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_user_values_are_data_never_code(shell: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    nasty = f"'; touch {marker}; echo '$(touch {marker})`touch {marker}`\\"
    sources = [f"string({json.dumps(nasty)}, env.NASTY)", "shellquote(env.NASTY)", "env.NASTY == env.NASTY"]
    got = run_sh(shell, sources, tmp_path, {"NASTY": nasty})
    assert got[0] == "s" + nasty + nasty
    assert got[2] == "btrue"
    assert not marker.exists()


def test_every_function_the_compiler_leaves_for_run_time_is_translated() -> None:
    from shoal.execution._shexpr import RUNTIME_FUNCTIONS as TRANSLATED
    from shoal.workflow._runtime_names import RUNTIME_FUNCTIONS as LEFT_BY_COMPILER

    assert LEFT_BY_COMPILER <= TRANSLATED
    lib = LIB_PATH.read_text()
    assert all(f"_sh_fn_{name}() {{" in lib for name in TRANSLATED)


_LEAVES = [
    "0", "1", "2", "3", "7", "12", "-3", "0.5", "2.5", "-1.5", '""', '"a"', '"0"', '"off"', '"false"',
    '"abc"', '"5"', '" x "', "true", "false", "null", "env.A", "env.B", "env.EMPTY", "env.NUM", "env.ZERO",
    "env.NEG", "[]", '["a", "1"]',
]  # fmt: skip
_OPERATORS = ["==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "%", "&&", "||"]


def _random_expression(rng: random.Random, depth: int) -> str:
    if depth == 0 or rng.random() < 0.3:
        return rng.choice(_LEAVES)

    def sub() -> str:
        return _random_expression(rng, depth - 1)

    kind = rng.random()
    if kind < 0.5:
        return f"({sub()} {rng.choice(_OPERATORS)} {sub()})"
    if kind < 0.6:
        return f"!{sub()}"
    if kind < 0.65:
        return f"-({sub()})"
    if kind < 0.75:
        return f"({sub()} ? {sub()} : {sub()})"
    name = rng.choice(["string", "len", "trim", "int", "bool", "shellquote", "join", "at"])
    if name == "at":
        index = rng.choice(["0", "1", "-1", '"1"'])
        return f"at({sub()}, {index})"
    if name == "join":
        separator = rng.choice(['"-"', '","'])
        return f"join({sub()}, {separator})"
    if name in ("string", "shellquote"):
        return f"{name}({sub()}, {sub()})"
    return f"{name}({sub()})"


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_random_expressions_evaluate_like_the_engine(shell: str, tmp_path: Path) -> None:
    """Random trees, evaluated lazily by both (the compiler folds constants before the init sees them)."""
    rng = random.Random(20261124)
    sources = [_random_expression(rng, 3) for _ in range(300)]
    got = run_sh(shell, sources, tmp_path, ENV)
    environment = {**ENV, "UNSET": ""}
    machine = Machine(variables={"env": environment} | {f"env.{k}": v for k, v in environment.items()})
    mismatches = []
    for source, value in zip(sources, got, strict=True):
        try:
            expected = encode_value(parse(source).resolve(machine, final=True).value())
        except (ExpressionError, RuntimeExpressionError):
            expected = "E"
        if ("E" if value.startswith("E") else value) != expected:
            mismatches.append(f"{source}: sh {value!r} engine {expected!r}")
    assert not mismatches, "\n".join(mismatches)

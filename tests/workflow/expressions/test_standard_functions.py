"""The standard functions beyond what the conformance vectors cover."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from shoal.workflow._expressions import (
    STANDARD_FUNCTIONS,
    ExpressionError,
    Machine,
    compile_expression,
    filesystem_machine,
    format_go_time,
)


def value_of(source: str, *machines: Machine) -> Any:
    expr = compile_expression(source).resolve(*machines)
    assert expr.is_static(), expr.source()
    return expr.value()


def test_every_documented_function_exists() -> None:
    documented = (
        "string int float bool list join split trim len floor ceil round at chunk range map filter entries "
        "tojson json toyaml yaml shellquote shellparse jq eval any date relpath abspath makepath"
    )
    assert set(documented.split()) <= STANDARD_FUNCTIONS


@pytest.mark.parametrize(
    ("words", "quoted"),
    [
        (["plain"], "plain"),
        ([""], "''"),
        (["a$b"], "a\\$b"),
        (["~home"], "\\~home"),
        (["x~"], "x~"),
        (["a b"], "'a b'"),
        (["it's here"], "'it'\\''s here'"),
        (["'"], "\\'"),
        (["a\tb", "c"], "'a\tb' c"),
        (["(x)", "*"], "\\(x\\) \\*"),
    ],
)
def test_shellquote(words: list[str], quoted: str) -> None:
    assert value_of("shellquote(words...)", Machine(variables={"words": words})) == quoted


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("a  b\tc\nd", ["a", "b", "c", "d"]),
        ("'a b'\"c d\"e", ["a bc de"]),
        ('"a \\"q\\" \\$x \\n"', ['a "q" $x \\n']),
        ("a\\ b \\\nc", ["a b", "c"]),
        ("", []),
    ],
)
def test_shellparse(text: str, words: list[str]) -> None:
    assert value_of("shellparse(text)", Machine(variables={"text": text})) == words


@pytest.mark.parametrize("text", ["'open", '"open', "trailing\\"])
def test_shellparse_rejects_unterminated_input(text: str) -> None:
    with pytest.raises(ExpressionError, match="unterminated"):
        compile_expression("shellparse(text)").resolve(Machine(variables={"text": text}))


def test_shellquote_and_shellparse_round_trip() -> None:
    words = ["a b", "it's", "$HOME", "", "~", 'q"uote', "tab\there"]
    machine = Machine(variables={"words": words})
    assert value_of("shellparse(shellquote(words...))", machine) == words


def test_yaml_keeps_dates_as_text_and_toyaml_prints_whole_numbers() -> None:
    assert value_of("yaml('when: 2024-01-02')") == {"when": "2024-01-02"}
    assert value_of("toyaml({'n': 2.0, 'l': [1, 'x']})".replace("'", '"')) == "l:\n    - 1\n    - x\nn: 2\n"
    assert value_of('toyaml("text")') == "text\n"


def test_json_rejects_bad_input() -> None:
    with pytest.raises(ExpressionError):
        compile_expression('json("{bad")')
    with pytest.raises(ExpressionError, match="string"):
        compile_expression("json(5)")


def test_jq_errors_are_expression_errors() -> None:
    with pytest.raises(ExpressionError, match="jq"):
        compile_expression('jq([1], ".[")')
    assert value_of('jq({"a": [1, 2]}, ".a[]")') == [1, 2]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('split("a", "")', ["a"]),
        ('split("ab", "")', ["a", "b"]),
        ("join(null)", None),
        ("chunk([], 3)", []),
        ("range(3, 1)", []),
        ("round(-1.5)", -2),
        ("round(2.5)", 3),
        ("floor(-0.5)", -1),
        ("int(-1.9)", -1),
        ('int("  ")', None),
        ("entries(null)", []),
        ('filter([1, 2, 3, 4], "_.value % 2 == 0")', [2, 4]),
        ('map({"a": 1, "b": 2}, "_.key + _.value")', ["a1", "b2"]),
        ('map([[1, 2], [3]], "len(_.value)")', [2, 1]),
        ('makepath("/a/", "../b")', "/b"),
        ('abspath("/a/./b/../c")', "/a/c"),
        ('at([1, 2], "1")', 2),
    ],
)
def test_function_results(source: str, expected: Any) -> None:
    if expected is None and source.startswith("int"):
        with pytest.raises(ExpressionError):
            compile_expression(source)
        return
    assert value_of(source) == expected


def test_map_keeps_unknown_parts_of_each_item() -> None:
    expr = compile_expression('map([1, 2], "_.value * factor")')
    assert expr.source() == "list(1*factor,2*factor)"
    assert expr.resolve(Machine(variables={"factor": 10})).value() == [10, 20]


def test_filter_needs_a_decidable_condition() -> None:
    with pytest.raises(ExpressionError, match="filter"):
        compile_expression('filter([1], "_.value > x")')


@pytest.mark.parametrize(
    "source",
    [
        "range(0, 100000000)",
        "chunk([1], 0)",
        "at([1], 5)",
        "at(5, 0)",
        "len(5)",
        "trim(5)",
        "[1]...",
        "string([1]...x)",
    ],
)
def test_bad_calls_fail_with_expression_errors(source: str) -> None:
    with pytest.raises(ExpressionError):
        compile_expression(source)


def test_spread_needs_a_list() -> None:
    with pytest.raises(ExpressionError, match="spread"):
        compile_expression('string("x"...)')


MOMENT = datetime(2024, 3, 7, 15, 4, 5, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    ("layout", "text"),
    [
        ("2006-01-02T15:04:05.000Z07:00", "2024-03-07T15:04:05.123Z"),
        ("2006-01-02", "2024-03-07"),
        ("Mon Jan _2 15:04:05 MST 2006", "Thu Mar  7 15:04:05 UTC 2024"),
        ("Monday, January 2, 06", "Thursday, March 7, 24"),
        ("3:04PM", "3:04PM"),
        ("03:04:05pm", "03:04:05pm"),
        ("15h04m05.999999s", "15h04m05.123456s"),
        ("05.9", "05.1"),
        ("002 __2", "067  67"),
        ("-0700 -07:00 Z0700", "+0000 +00:00 Z"),
        ("20060102150405", "20240307150405"),
        ("_2006", "_2024"),
        ("Month 1", "Month 3"),
    ],
)
def test_go_layouts(layout: str, text: str) -> None:
    assert format_go_time(MOMENT, layout) == text


def test_go_layouts_with_an_offset() -> None:
    moment = MOMENT.astimezone(timezone(timedelta(hours=-5, minutes=-30)))
    assert format_go_time(moment, "Z07:00 -0700 -07") == "-05:30 -0530 -05"


def test_date_defaults_to_rfc3339_with_milliseconds() -> None:
    text = value_of("date()")
    parsed = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")
    assert abs(parsed.replace(tzinfo=UTC) - datetime.now(UTC)) < timedelta(minutes=5)


FILES = {
    "/data/a.txt": "A",
    "/data/b.json": "{}",
    "/data/.hidden": "",
    "/data/sub/c.txt": "C",
    "/data/sub/deep/d.txt": "D",
    "/data-x/e.txt": "E",
}


@pytest.mark.parametrize(
    ("patterns", "expected"),
    [
        (["*.txt"], ["/data/a.txt"]),
        (["**/*.txt"], ["/data/a.txt", "/data/sub/c.txt", "/data/sub/deep/d.txt"]),
        (["**/*.{txt,json}", "!sub/**"], ["/data/a.txt", "/data/b.json"]),
        (["?.txt"], ["/data/a.txt"]),
        (["[ab].*"], ["/data/a.txt", "/data/b.json"]),
        (["[!a].*"], ["/data/b.json"]),
        (["/data*/*.txt"], ["/data/a.txt", "/data-x/e.txt"]),  # walk order: "data" < "data-x"
        (["sub/**"], ["/data/sub/c.txt", "/data/sub/deep/d.txt"]),
        (["a.txt"], ["/data/a.txt"]),
        (["missing/*"], []),
    ],
)
def test_glob(patterns: list[str], expected: list[str]) -> None:
    machine = filesystem_machine(FILES, "/data")
    assert value_of("glob(patterns...)", machine, Machine(variables={"patterns": patterns})) == expected


def test_glob_needs_a_pattern_that_includes() -> None:
    with pytest.raises(ExpressionError, match="pattern"):
        compile_expression('glob("!x")').resolve(filesystem_machine(FILES, "/data"))


def test_file_reads_relative_to_the_working_directory() -> None:
    machine = filesystem_machine(FILES, "/data/sub")
    assert value_of('file("c.txt") + file("../a.txt") + file("/data-x/e.txt")', machine) == "CAE"
    with pytest.raises(ExpressionError, match="missing"):
        compile_expression('file("missing")').resolve(machine)


def test_file_and_glob_stay_symbolic_without_a_file_system() -> None:
    assert compile_expression('file("x") + glob("*")').resolve().source() == 'file("x")+glob("*")'

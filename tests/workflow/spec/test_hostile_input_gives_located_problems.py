"""Hostile or broken input never raises anything but WorkflowError, and every problem is located."""

from __future__ import annotations

from pathlib import Path

import pytest

from shoal.workflow import _yaml
from shoal.workflow._errors import WorkflowError
from shoal.workflow._yaml import load_documents, load_file


def _problems(text: str | bytes) -> list[str]:
    with pytest.raises(WorkflowError) as caught:
        load_documents(text, "bad.yaml")
    assert caught.value.problems
    return [str(p) for p in caught.value.problems]


def test_invalid_utf8_names_the_byte_and_its_position() -> None:
    assert _problems(b"kind: TestWorkflow\nname: caf\xe9\n") == [
        "bad.yaml:2:10: invalid UTF-8: byte 0xe9 cannot start or continue a character (the file must be UTF-8 text)"
    ]


def test_binary_junk_is_refused() -> None:
    # bytes 0..127 are ASCII (a newline at 10), so the first bad byte is 0x80 on line 2
    assert _problems(bytes(range(256)) * 4) == [
        "bad.yaml:2:118: invalid UTF-8: byte 0x80 cannot start or continue a character (the file must be UTF-8 text)"
    ]


def test_control_characters_are_refused_with_their_position() -> None:
    assert _problems("a: 1\nb: \x07\n") == [
        "bad.yaml:2:4: invalid character U+0007: control characters are not allowed"
    ]


def test_lone_surrogates_are_refused() -> None:
    assert _problems("a: 1\nb: x\ud800\n") == [
        "bad.yaml:2:5: invalid character U+D800 (a lone surrogate is not text)"
    ]


def test_syntax_errors_carry_the_libyaml_mark() -> None:
    assert _problems("spec:\n  steps: [a, b\n") == [
        "bad.yaml:3:1: invalid YAML: did not find expected ',' or ']' (while parsing a flow sequence)"
    ]
    assert _problems("a: b: c\n") == [
        "bad.yaml:1:5: invalid YAML: mapping values are not allowed in this context"
    ]


def test_tabs_used_for_indentation_get_a_hint() -> None:
    assert _problems("spec:\n\tsteps: []\n") == [
        "bad.yaml:2:1: invalid YAML: found character that cannot start any token (while scanning for the next "
        "token); tabs cannot be used for indentation, use spaces"
    ]


def test_billion_laughs_is_refused_at_the_alias_that_crosses_the_budget() -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for level in "bcdefgh":
        previous = chr(ord(level) - 1)
        lines.append(f"{level}: &{level} [" + ", ".join([f"*{previous}"] * 10) + "]")
    problems = _problems("\n".join(lines) + "\n")
    # a=11 values, b=111, c=1111, d=11111; aliases have produced 12330 values before line 5, whose
    # 8th *d takes the total past 100000
    assert problems == ["bad.yaml:5:36: aliases expand to more than 100000 values (a YAML bomb?)"]


def test_aliases_to_scalars_count_against_the_budget_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_yaml, "MAX_ALIAS_VALUES", 3)
    assert _problems("a: &x 1\nb: [*x, *x, *x, *x]\n") == [
        "bad.yaml:2:17: aliases expand to more than 3 values (a YAML bomb?)"
    ]


def test_recursive_and_unknown_aliases_are_refused() -> None:
    assert _problems("a: &x [1, *x]\n") == ["bad.yaml:1:11: alias *x refers to a collection that contains it"]
    assert _problems("a: *nowhere\n") == [
        "bad.yaml:1:4: unknown alias *nowhere (no anchor &nowhere before it)"
    ]


@pytest.mark.parametrize(
    ("text", "column"),
    [("[" * 100_000, 201), ("- " * 100_000 + "x", 401), ("a: " + "{b: " * 100_000, 4 + 200 * 4 - 4)],
    ids=["flow-sequences", "block-sequences", "flow-mappings"],
)
def test_deep_nesting_is_refused_without_crashing(text: str, column: int) -> None:
    assert _problems(text) == [f"bad.yaml:1:{column}: nesting deeper than 200 levels"]


def test_nesting_at_the_limit_is_accepted() -> None:
    docs = load_documents("a: " + "[" * 199 + "]" * 199)
    value = docs[0].data["a"]
    depth = 0
    while isinstance(value, list):
        depth += 1
        value = value[0] if value else None
    assert depth == 199


def test_huge_text_is_refused_before_parsing() -> None:
    big = "a: '" + "x" * (32 * 1024 * 1024) + "'\n"
    assert _problems(big) == [f"bad.yaml: file is too large: {len(big)} bytes (the limit is 32 MiB)"]
    assert _problems(big.encode()) == [f"bad.yaml: file is too large: {len(big)} bytes (the limit is 32 MiB)"]


def test_huge_file_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    with path.open("wb") as handle:
        handle.truncate(32 * 1024 * 1024 + 1)
    with pytest.raises(WorkflowError) as caught:
        load_file(path)
    assert str(caught.value) == f"{path}: file is too large: 33554433 bytes (the limit is 32 MiB)"


def test_unreadable_file_is_a_workflow_error(tmp_path: Path) -> None:
    with pytest.raises(WorkflowError) as caught:
        load_file(tmp_path / "missing.yaml")
    assert (
        str(caught.value) == f"{tmp_path / 'missing.yaml'}: cannot read the file: No such file or directory"
    )


def test_duplicate_keys_are_each_a_problem() -> None:
    assert _problems("kind: A\nmetadata:\n  name: x\n  name: y\nkind: B\n") == [
        "bad.yaml:4:3: duplicate key 'name' (first defined on line 3)",
        "bad.yaml:5:1: duplicate key 'kind' (first defined on line 1)",
    ]


def test_non_string_keys_are_problems() -> None:
    assert _problems("1: a\ntrue: b\n~: c\n? [x]\n: d\n") == [
        "bad.yaml:1:1: mapping keys must be strings, got 1 (put the key in quotes)",
        "bad.yaml:2:1: mapping keys must be strings, got true (put the key in quotes)",
        "bad.yaml:3:1: mapping keys must be strings, got null (put the key in quotes)",
        "bad.yaml:4:3: mapping keys must be strings, got a list",
    ]


@pytest.mark.parametrize(
    ("text", "got"),
    [("- a\n- b\n", "a list"), ("just text\n", "'just text'"), ("42\n", "42")],
)
def test_a_document_that_is_not_a_mapping_is_a_problem(text: str, got: str) -> None:
    assert _problems("kind: TestWorkflow\n---\n" + text) == [
        f"bad.yaml:3:1: expected a mapping with apiVersion, kind, metadata and spec, got {got}"
    ]


def test_unsupported_tags_are_problems() -> None:
    assert _problems("a: !shell echo\nb: !!binary aGk=\nc: !!set {x}\n") == [
        "bad.yaml:1:4: unsupported tag !shell (only !!str, !!int, !!float, !!bool and !!null are accepted)",
        "bad.yaml:2:4: unsupported tag !!binary (only !!str, !!int, !!float, !!bool and !!null are accepted)",
        "bad.yaml:3:4: unsupported tag !!set on a mapping",
    ]


def test_a_tag_that_does_not_fit_its_value_is_a_problem() -> None:
    assert _problems("a: !!int 1.5\nb: !!bool yes\n") == [
        "bad.yaml:1:4: expected an integer for !!int, got '1.5'",
        "bad.yaml:2:4: expected true or false for !!bool, got 'yes'",
    ]


def test_integers_too_long_to_convert_are_problems() -> None:
    assert _problems("a: " + "9" * 5000 + "\n") == [
        "bad.yaml:1:4: integer 99999999999999999999... has too many digits"
    ]


def test_problems_of_several_documents_are_all_reported_in_order() -> None:
    assert _problems("a: 1\na: 2\n---\n- x\n---\nb: 1\nb: 2\n") == [
        "bad.yaml:2:1: duplicate key 'a' (first defined on line 1)",
        "bad.yaml:4:1: expected a mapping with apiVersion, kind, metadata and spec, got a list",
        "bad.yaml:7:1: duplicate key 'b' (first defined on line 6)",
    ]


def test_reading_stops_after_too_many_problems() -> None:
    problems = _problems("a: 1\n" + "a: 2\n" * 10_000)
    assert len(problems) == 201
    assert problems[0] == "bad.yaml:2:1: duplicate key 'a' (first defined on line 1)"
    assert problems[-1] == "bad.yaml: more than 200 problems; stopped here"

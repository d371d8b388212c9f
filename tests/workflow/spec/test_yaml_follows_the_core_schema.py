"""Plain scalars resolve by the YAML 1.2 core schema, not YAML 1.1 (``yes`` is a string, ``0777`` decimal)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from shoal.workflow._yaml import load_documents


def _value(scalar: str) -> Any:
    return load_documents(f"v: {scalar}\n")[0].data["v"]


@pytest.mark.parametrize(
    ("scalar", "expected"),
    [
        # strings that YAML 1.1 would turn into something else
        ("yes", "yes"),
        ("no", "no"),
        ("on", "on"),
        ("off", "off"),
        ("Y", "Y"),
        ("1_000", "1_000"),
        ("1:30", "1:30"),
        ("190:20:30", "190:20:30"),
        ("2024-01-01", "2024-01-01"),
        ("0b101", "0b101"),
        ("0x", "0x"),
        ("0o", "0o"),
        ("0o18", "0o18"),
        ("-0o17", "-0o17"),
        ("nan", "nan"),
        ("inf", "inf"),
        ("1.2.3", "1.2.3"),
        ("'true'", "true"),
        ('"5"', "5"),
        ("!!str 5", "5"),
        ("! 5", "5"),
        # the core schema
        ("true", True),
        ("True", True),
        ("TRUE", True),
        ("false", False),
        ("FALSE", False),
        ("null", None),
        ("Null", None),
        ("~", None),
        ("", None),
        ("0", 0),
        ("0777", 777),
        ("-12", -12),
        ("+12", 12),
        ("0o17", 15),
        ("0x1F", 31),
        ("1.5", 1.5),
        ("-.5", -0.5),
        ("5.", 5.0),
        ("1e3", 1000.0),
        ("6.02E+23", 6.02e23),
        (".inf", math.inf),
        ("-.Inf", -math.inf),
        ("+.INF", math.inf),
        ("!!int '7'", 7),
        ("!!float 2", 2.0),
        ("!!bool 'false'", False),
        ("!!null ''", None),
    ],
)
def test_scalar_resolves(scalar: str, expected: Any) -> None:
    value = _value(scalar)
    assert value == expected
    assert type(value) is type(expected)


def test_nan_is_a_float() -> None:
    for spelling in (".nan", ".NaN", ".NAN"):
        value = _value(spelling)
        assert isinstance(value, float)
        assert math.isnan(value)


def test_block_and_quoted_scalars_stay_strings() -> None:
    data = load_documents("a: |\n  true\nb: >\n  12\nc: 'null'\n")[0].data
    assert data == {"a": "true\n", "b": "12\n", "c": "null"}


def test_merge_keys_fill_in_what_the_mapping_does_not_set() -> None:
    text = (
        "base: &b {image: alpine, shell: echo}\nother: &o {pure: true}\nstep:\n  <<: [*b, *o]\n  shell: ls\n"
    )
    data = load_documents(text)[0].data
    assert data["step"] == {"shell": "ls", "image": "alpine", "pure": True}


def test_a_quoted_merge_key_is_an_ordinary_key() -> None:
    assert load_documents("'<<': {a: 1}\n")[0].data == {"<<": {"a": 1}}


def test_aliases_share_the_anchored_value() -> None:
    data = load_documents("env: &e [{name: A, value: '1'}]\nother: *e\n")[0].data
    assert data["other"] == [{"name": "A", "value": "1"}]

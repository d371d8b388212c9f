from __future__ import annotations

import pytest

from shoal.store import LabelSelector, StoreError


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("", {}, True),
        ("a=1", {"a": "1"}, True),
        ("a==1", {"a": "2"}, False),
        ("a!=1", {}, True),
        ("a!=1", {"a": "1"}, False),
        ("a in (1, 2),b", {"a": "2", "b": "x"}, True),
        ("a in (1, 2),b", {"a": "2"}, False),
        ("a notin (1,2)", {"a": "3"}, True),
        ("!a", {"a": "3"}, False),
        ("!a", {"b": "3"}, True),
        ("cluster=pr-1,team in (qa,dev)", {"cluster": "pr-1", "team": "dev"}, True),
    ],
)
def test_selector_matches_like_kubernetes(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert LabelSelector.parse(selector).matches(labels) is expected


@pytest.mark.parametrize("bad", ["a in 1", "a=(", "=x", "a b"])
def test_bad_selector_says_what_is_expected(bad: str) -> None:
    with pytest.raises(StoreError, match="expected k=v"):
        LabelSelector.parse(bad)

from __future__ import annotations

import pytest

from shoal.execution._toolkit._artifacts import archive_name


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("a.tar", "a.tar.gz"),
        ("a.tgz", "a.tgz"),
        ("a.tar.gz", "a.tar.gz"),
        ("a", "a.tar.gz"),
        ("a.zip", "a.zip.tar.gz"),
    ],
)
def test_archive_name(given: str, expected: str) -> None:
    assert archive_name(given) == expected

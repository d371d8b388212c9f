from __future__ import annotations

from pathlib import Path

import pytest

from shoal.execution._toolkit._globs import matches, static_root, walk_files


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("/data/**/*.xml", "/data/a.xml", True),
        ("/data/**/*.xml", "/data/x/y/a.xml", True),
        ("/data/**/*.xml", "/data/x/y/a.xmlx", False),
        ("/data/*.xml", "/data/x/a.xml", False),
        ("/data/**", "/data/x/y/z", True),
        ("**/*.txt", "a/b/c.txt", True),
        ("**", "anything/at/all", True),
        ("/data/?.log", "/data/a.log", True),
        ("/data/?.log", "/data/ab.log", False),
        ("/data/[ab].log", "/data/b.log", True),
        ("/data/[!ab].log", "/data/b.log", False),
        ("/data/[!ab].log", "/data/c.log", True),
        ("/data/{junit,report}-*.xml", "/data/report-1.xml", True),
        ("/data/{junit,report}-*.xml", "/data/other-1.xml", False),
        ("/data/*", "/data/.hidden", True),
        ("/data/a\\*b", "/data/a*b", True),
        ("/data/a\\*b", "/data/axb", False),
        ("/data/**/x/*.js", "/data/x/a.js", True),
    ],
)
def test_pattern_matches_like_doublestar(pattern: str, path: str, expected: bool) -> None:
    assert matches(pattern, path) is expected


def test_static_root_stops_at_first_glob_component() -> None:
    assert static_root("/data/a/**/x") == "/data/a"
    assert static_root("/data/a/b.txt") == "/data/a/b.txt"
    assert static_root("/**/*.json") == "/"
    assert static_root("/data/a*/b") == "/data"


def test_walk_yields_each_matching_file_once_in_lexical_order_and_skips_dir_symlinks(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "one.txt").write_text("1")
    (tmp_path / "a" / "b" / "two.txt").write_text("2")
    (tmp_path / "a" / "b" / "skip.bin").write_text("x")
    (tmp_path / "a" / "loop").symlink_to(tmp_path / "a")
    root = str(tmp_path / "a")
    found = list(walk_files([f"{root}/**/*.txt", f"{root}/b/*.txt", f"!{root}/b/none"]))
    assert found == [tmp_path / "a" / "b" / "two.txt", tmp_path / "a" / "one.txt"]  # lexical walk


def test_negated_pattern_excludes(tmp_path: Path) -> None:
    (tmp_path / "k.txt").write_text("k")
    (tmp_path / "d.txt").write_text("d")
    found = list(walk_files([f"{tmp_path}/*.txt", f"!{tmp_path}/d.txt"]))
    assert found == [tmp_path / "k.txt"]

"""Doublestar globs over the real disk.

The matching rules are the expression engine's (``glob()`` of ``shoal.workflow``: ``**`` spans
directories, ``*``, ``?``, ``[...]``, ``{a,b}``, ``!`` excludes, no dot-file special case); this module
only supplies the disk: a lexical walk that never follows directory symlinks (no loops, no escaping a
tree through a link to a directory).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from shoal.workflow._expressions._files import compile_glob, glob_files, search_root

__all__ = ["DiskFileSystem", "matches", "static_root", "walk_files"]


class DiskFileSystem:
    """The ``FileSystem`` of the expression engine over the real disk."""

    def read_text(self, path: str) -> str:
        return Path(path).read_text(encoding="utf-8", errors="replace")

    def walk_files(self, root: str) -> Iterator[str]:
        """Files (and symlinks to files) at or under ``root``, in lexical order per path component."""
        if os.path.isfile(root):
            yield root
            return
        try:
            entries = sorted(os.scandir(root), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                yield from self.walk_files(entry.path)
            elif entry.is_file(follow_symlinks=True):
                yield entry.path


def static_root(pattern: str) -> str:
    """The directory (or file) a search for ``pattern`` starts from: its leading literal components."""
    return search_root(pattern)


def matches(pattern: str, path: str) -> bool:
    return compile_glob(pattern).fullmatch(path) is not None


def walk_files(patterns: Sequence[str]) -> list[Path]:
    """Every file matching one of the absolute ``patterns`` (``!`` excludes), each once."""
    if not any(not p.startswith("!") for p in patterns):
        return []
    return [Path(p) for p in glob_files(DiskFileSystem(), "/", list(patterns))]

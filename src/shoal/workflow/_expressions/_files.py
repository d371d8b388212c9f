"""``file()`` and ``glob()``: functions that only resolve when a machine provides a file system.

The engine stays pure: a ``FileSystem`` is anything that can read a file and list the files under
a directory. ``VirtualFileSystem`` holds a tree in memory (tests, previews); a runtime passes an
adapter over the real disk. Globs use doublestar rules (``**`` spans directories, ``{a,b}``,
``[abc]``, ``?``), patterns starting with ``!`` exclude, results are absolute paths in the order
a lexical directory walk finds them.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any, Protocol

from shoal.workflow._expressions._errors import ExpressionError
from shoal.workflow._expressions._machine import Machine
from shoal.workflow._expressions._values import to_string

_GLOB_META = frozenset("*?[{\\")


class FileSystem(Protocol):
    def read_text(self, path: str) -> str:
        """The content of the file at the absolute ``path``; raise ``OSError`` when unreadable."""
        ...

    def walk_files(self, root: str) -> Iterable[str]:
        """Absolute paths of the files at or under ``root``, in lexical walk order."""
        ...


class VirtualFileSystem:
    """A file tree in memory: absolute path -> content."""

    def __init__(self, files: Mapping[str, str]) -> None:
        self._files = {clean_path(path): content for path, content in files.items()}
        self._order = sorted(self._files, key=lambda path: path.split("/"))

    def read_text(self, path: str) -> str:
        try:
            return self._files[clean_path(path)]
        except KeyError:
            raise FileNotFoundError(path) from None

    def walk_files(self, root: str) -> Iterable[str]:
        root = clean_path(root) if root else "/"
        if root == "/":
            return list(self._order)
        prefix = root + "/"
        return [path for path in self._order if path == root or path.startswith(prefix)]


def clean_path(path: str) -> str:
    """Go's ``path.Clean``: no ``.``/``..``/double slashes, ``""`` becomes ``"."``."""
    if not path:
        return "."
    cleaned = posixpath.normpath(path)
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    return cleaned


def absolute_path(path: str, working_dir: str) -> str:
    if not path.startswith("/"):
        path = posixpath.join(working_dir, path)
    cleaned = clean_path(path).rstrip("/")
    return cleaned or "/"


@lru_cache(maxsize=1024)
def compile_glob(pattern: str) -> re.Pattern[str]:
    """A regular expression matching the paths that the doublestar ``pattern`` matches."""
    segments = pattern.split("/")
    out: list[str] = []
    last = len(segments) - 1
    for index, segment in enumerate(segments):
        if segment == "**":
            out.append(".*" if index == last else "(?:[^/]*/)*")
            continue
        out.append(_translate_segment(segment))
        if index != last:
            out.append("/")
    return re.compile("".join(out), re.DOTALL)


def _translate_segment(segment: str) -> str:
    out: list[str] = []
    i = 0
    end = len(segment)
    while i < end:
        char = segment[i]
        if char == "*":
            while i + 1 < end and segment[i + 1] == "*":
                i += 1
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "\\" and i + 1 < end:
            i += 1
            out.append(re.escape(segment[i]))
        elif char == "[":
            close = segment.find("]", i + 2)
            if close == -1:
                out.append(re.escape(char))
            else:
                body = segment[i + 1 : close]
                negate = body[:1] in ("!", "^")
                if negate:
                    body = body[1:]
                body = body.replace("\\", "\\\\").replace("^", "\\^")
                out.append(("[^/" if negate else "[") + body + "]")
                i = close
        elif char == "{":
            close = _matching_brace(segment, i)
            if close == -1:
                out.append(re.escape(char))
            else:
                alternatives = _split_alternatives(segment[i + 1 : close])
                out.append("(?:" + "|".join(_translate_segment(alt) for alt in alternatives) + ")")
                i = close
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def _matching_brace(text: str, start: int) -> int:
    depth = 0
    for index in range(start, len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return index
    return -1


def _split_alternatives(text: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        current.append(char)
    parts.append("".join(current))
    return parts


def search_root(pattern: str) -> str:
    """The directory below which ``pattern`` can match: its leading segments without metacharacters."""
    static: list[str] = []
    for segment in pattern.split("/"):
        if any(char in _GLOB_META for char in segment):
            break
        static.append(segment)
    root = "/".join(static)
    return root or "/"


def glob_files(fs: FileSystem, working_dir: str, patterns: Iterable[str]) -> list[str]:
    include: list[str] = []
    exclude: list[str] = []
    for pattern in patterns:
        if pattern.startswith("!"):
            exclude.append(absolute_path(pattern[1:], working_dir))
        else:
            include.append(absolute_path(pattern, working_dir))
    if not include:
        raise ExpressionError("glob() needs at least one pattern that is not an exclusion")
    include_res = [compile_glob(pattern) for pattern in include]
    exclude_res = [compile_glob(pattern) for pattern in exclude]
    roots = sorted({search_root(pattern) for pattern in include})
    roots = [
        root
        for root in roots
        if not any(other != root and (other == "/" or root.startswith(other + "/")) for other in roots)
    ]
    found: list[str] = []
    for root in roots:
        for path in fs.walk_files(root):
            if any(r.fullmatch(path) for r in include_res) and not any(
                r.fullmatch(path) for r in exclude_res
            ):
                found.append(path)
    return found


def filesystem_machine(fs: FileSystem | Mapping[str, str], working_dir: str = "/") -> Machine:
    """A machine providing ``file(path)``, ``glob(pattern, ...)`` and ``workingDir``."""
    files: FileSystem = VirtualFileSystem(fs) if isinstance(fs, Mapping) else fs
    working_dir = working_dir or "/"

    def read_file(*args: Any) -> str:
        if len(args) != 1:
            raise ExpressionError(f"file() takes one argument, {len(args)} given")
        if not isinstance(args[0], str):
            raise ExpressionError(f"file() expects a string, {to_string(args[0])!r} given")
        path = absolute_path(args[0], working_dir)
        try:
            return files.read_text(path)
        except OSError as exc:
            raise ExpressionError(f"opening file({args[0]}): {exc.strerror or exc}") from None

    def glob(*args: Any) -> list[str]:
        if not args:
            raise ExpressionError("glob() takes at least one argument")
        return glob_files(files, working_dir, [to_string(arg) for arg in args])

    return Machine(variables={"workingDir": working_dir}, functions={"file": read_file, "glob": glob})

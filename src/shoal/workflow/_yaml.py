"""YAML 1.2 loading that remembers where every value came from.

libyaml (through PyYAML's ``CParser``) produces the event stream; this module builds plain Python
data from the events itself, iteratively, resolving scalars with the YAML 1.2 core schema and
recording the line and column of every value. Building from events rather than from PyYAML's
composed nodes keeps hostile input in check: PyYAML's C composer recurses once per nesting level
and crashes the interpreter on a few tens of thousands of ``[``, while here depth, alias expansion
and size are bounded before anything deep or large is built.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import yaml
from yaml._yaml import CParser

from shoal.workflow._errors import Problem, WorkflowError

MAX_BYTES: Final = 32 * 1024 * 1024
"""Refuse documents above this size (in bytes) before parsing them."""

MAX_DEPTH: Final = 200
"""Refuse collections nested deeper than this."""

MAX_ALIAS_VALUES: Final = 100_000
"""Refuse a file once aliases (``*name``) have produced more values than this (YAML bombs)."""

MAX_PROBLEMS: Final = 200
"""Stop reading a file after this many problems."""

# Positions mirror the data: a mapping's table maps each key to (line, column, table, key line, key
# column), a sequence's table is a list of (line, column, table), a scalar's table is None.
# Lines and columns are 0-based until they leave this module.

_CORE = "tag:yaml.org,2002:"
_INT_RE: Final = re.compile(r"[-+]?[0-9]+")
_OCT_RE: Final = re.compile(r"0o[0-7]+")
_HEX_RE: Final = re.compile(r"0x[0-9a-fA-F]+")
_FLOAT_RE: Final = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_NUMBER_START: Final = frozenset("0123456789+-.")
_MISSING: Final = object()
_WORDS: Final[dict[str, Any]] = {
    "null": None,
    "Null": None,
    "NULL": None,
    "~": None,
    "true": True,
    "True": True,
    "TRUE": True,
    "false": False,
    "False": False,
    "FALSE": False,
}
_SPECIAL_FLOATS: Final[dict[str, float]] = {
    **{s + v: float(s + "inf") for s in ("", "+", "-") for v in (".inf", ".Inf", ".INF")},
    **{v: float("nan") for v in (".nan", ".NaN", ".NAN")},
}
_NULLS: Final = frozenset(("", "null", "Null", "NULL", "~"))
_BOOLS: Final = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}


class _ScalarError(ValueError):
    """A scalar that its tag (or its look) promises to be something it is not."""


def _resolve_plain(value: str) -> Any:
    """Resolve an untagged plain scalar with the YAML 1.2 core schema."""
    if not value:
        return None
    if value[0] in _NUMBER_START:
        if _INT_RE.fullmatch(value):
            try:
                return int(value)
            except ValueError:  # more digits than Python converts
                raise _ScalarError(f"integer {value[:20]}... has too many digits") from None
        if _FLOAT_RE.fullmatch(value):
            return float(value)
        if value[0] == "0" and len(value) > 2:
            if _OCT_RE.fullmatch(value):
                return _big_int(value[2:], 8)
            if _HEX_RE.fullmatch(value):
                return _big_int(value[2:], 16)
        special = _SPECIAL_FLOATS.get(value)
        return value if special is None else special
    word = _WORDS.get(value, _MISSING)
    return value if word is _MISSING else word


def _big_int(digits: str, base: int) -> int:
    try:
        return int(digits, base)
    except ValueError:
        raise _ScalarError(f"integer {digits[:20]}... has too many digits") from None


def _resolve_tagged(tag: str, value: str) -> Any:
    """Resolve a scalar with an explicit core tag (``!!str``, ``!!int``…)."""
    if tag == "!" or tag == _CORE + "str":
        return value
    if tag == _CORE + "int":
        resolved = _resolve_plain(value)
        if isinstance(resolved, int) and not isinstance(resolved, bool):
            return resolved
        raise _ScalarError(f"expected an integer for !!int, got {value!r}")
    if tag == _CORE + "float":
        resolved = _resolve_plain(value)
        if isinstance(resolved, (int, float)) and not isinstance(resolved, bool):
            return float(resolved)
        raise _ScalarError(f"expected a number for !!float, got {value!r}")
    if tag == _CORE + "bool":
        if value in _BOOLS:
            return _BOOLS[value]
        raise _ScalarError(f"expected true or false for !!bool, got {value!r}")
    if tag == _CORE + "null":
        if value in _NULLS:
            return None
        raise _ScalarError(f"expected null for !!null, got {value!r}")
    raise _ScalarError(
        f"unsupported tag {_short_tag(tag)} (only !!str, !!int, !!float, !!bool and !!null are accepted)"
    )


def _short_tag(tag: str) -> str:
    return "!!" + tag[len(_CORE) :] if tag.startswith(_CORE) else tag


def describe(value: Any) -> str:
    """A short human description of a value, for messages ("got ...")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        text = repr(value)
        return text if len(text) <= 40 else text[:37] + "..."
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return repr(text)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


_IDENT_RE: Final = re.compile(r"[A-Za-z_$][A-Za-z0-9_$-]*")


def format_path(path: Sequence[str | int]) -> str:
    """Format a field path: ``("spec", "steps", 2, "retry")`` -> ``spec.steps[2].retry``."""
    out: list[str] = []
    for part in path:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif _IDENT_RE.fullmatch(part):
            out.append(f".{part}" if out else part)
        else:
            escaped = part.replace("\\", "\\\\").replace('"', '\\"')
            out.append(f'["{escaped}"]')
    return "".join(out)


@dataclass(eq=False)
class Document:
    """One YAML document: its plain data and where each value sits in the file."""

    data: Any
    file: str
    index: int
    _position: tuple[int, int, Any] = field(default=(0, 0, None), repr=False)

    @property
    def kind(self) -> str | None:
        return _str_field(self.data, "kind")

    @property
    def api_version(self) -> str | None:
        return _str_field(self.data, "apiVersion")

    @property
    def name(self) -> str | None:
        metadata = self.data.get("metadata") if isinstance(self.data, dict) else None
        return _str_field(metadata, "name")

    def locate(self, path: Sequence[str | int]) -> tuple[int, int]:
        """1-based (line, column) of the value at ``path``, or of the nearest ancestor that exists."""
        line, column, _ = self._walk(path, key=False)
        return line + 1, column + 1

    def locate_key(self, path: Sequence[str | int]) -> tuple[int, int]:
        """Like :meth:`locate`, but for a mapping entry the position of its key."""
        line, column, _ = self._walk(path, key=True)
        return line + 1, column + 1

    def _walk(self, path: Sequence[str | int], key: bool) -> tuple[int, int, Any]:
        line, column, sub = self._position
        last = len(path) - 1
        for i, part in enumerate(path):
            if isinstance(sub, dict) and isinstance(part, str) and part in sub:
                entry = sub[part]
                if key and i == last:
                    return entry[3], entry[4], entry[2]
                line, column, sub = entry[0], entry[1], entry[2]
            elif isinstance(sub, list) and isinstance(part, int) and 0 <= part < len(sub):
                line, column, sub = sub[part]
            else:
                break
        return line, column, sub


def _str_field(data: Any, key: str) -> str | None:
    if isinstance(data, dict):
        value = data.get(key)
        if isinstance(value, str):
            return value
    return None


class _Frame:
    """A collection being built."""

    __slots__ = (
        "anchor",
        "container",
        "key",
        "key_column",
        "key_line",
        "merge_key",
        "merges",
        "positions",
        "size",
        "start",
    )

    def __init__(self, container: Any, positions: Any, anchor: str | None, start: tuple[int, int]) -> None:
        self.container = container
        self.positions = positions
        self.anchor = anchor
        self.start = start
        self.size = 1
        self.key: Any = _MISSING
        self.key_line = 0
        self.key_column = 0
        self.merge_key = False
        self.merges: list[tuple[dict[str, Any], dict[str, Any]]] | None = None


class _Fatal(Exception):
    """Stop building: the problem list already says why."""


class _Builder:
    """Turns one file's event stream into documents, collecting problems as it goes."""

    def __init__(self, text: str, file: str) -> None:
        self.text = text
        self.file = file
        self.problems: list[Problem] = []
        self.documents: list[Document] = []
        self.alias_values = 0

    def problem(self, message: str, line: int, column: int, path: str = "") -> None:
        if len(self.problems) >= MAX_PROBLEMS:
            self.problems.append(Problem(f"more than {MAX_PROBLEMS} problems; stopped here", "", self.file))
            raise _Fatal
        self.problems.append(Problem(message, path, self.file, line + 1, column + 1))

    def run(self) -> list[Document]:
        parser = CParser(self.text)
        try:
            try:
                self._stream(parser)
            except yaml.MarkedYAMLError as error:
                self._syntax_problem(error)
            except yaml.reader.ReaderError as error:
                self._reader_problem(error)
        except _Fatal:
            pass
        finally:
            parser.dispose()
        if self.problems:
            self.problems.sort(key=lambda p: (p.line or 1 << 62, p.column or 0))
            raise WorkflowError(self.problems)
        return self.documents

    def _syntax_problem(self, error: yaml.MarkedYAMLError) -> None:
        mark = error.problem_mark or error.context_mark
        line, column = (mark.line, mark.column) if mark is not None else (0, 0)
        message = f"invalid YAML: {error.problem or 'syntax error'}"
        if error.context:
            message += f" ({error.context})"
        if self._char_at(line, column) == "\t":
            message += "; tabs cannot be used for indentation, use spaces"
        self.problem(message, line, column)

    def _char_at(self, line: int, column: int) -> str:
        lines = self.text.split("\n", line + 1)
        if line < len(lines) and column < len(lines[line]):
            return lines[line][column]
        return ""

    def _reader_problem(self, error: yaml.reader.ReaderError) -> None:
        # libyaml reports a byte offset into the UTF-8 encoding of the text.
        before = self.text.encode("utf-8")[: error.position].decode("utf-8", errors="ignore")
        line = before.count("\n")
        column = len(before) - (before.rfind("\n") + 1)
        char = self.text[len(before)] if len(before) < len(self.text) else ""
        code = f" U+{ord(char):04X}" if char else ""
        self.problem(f"invalid character{code}: {error.reason}", line, column)

    def _stream(self, parser: CParser) -> None:
        index = -1
        get_event = parser.get_event
        event = get_event()
        while event is not None:
            if isinstance(event, yaml.DocumentStartEvent):
                index += 1
                self._document(get_event, index)
            event = get_event()

    def _document(self, get_event: Any, index: int) -> None:
        scalar_event = yaml.ScalarEvent
        mapping_start = yaml.MappingStartEvent
        sequence_start = yaml.SequenceStartEvent
        alias_event = yaml.AliasEvent
        stack: list[_Frame] = []
        anchors: dict[str, tuple[Any, Any, int]] = {}
        open_anchors: set[str] = set()
        root: tuple[Any, int, int, Any] | None = None
        resolve_plain = _resolve_plain

        while True:
            event = get_event()
            cls = type(event)
            mark = event.start_mark
            # Produce one complete value (scalar, alias, or a collection that just closed) ...
            if cls is scalar_event:
                tag = event.tag
                text = event.value
                plain_merge = False
                try:
                    if tag is None:
                        if event.implicit[0]:
                            value = resolve_plain(text)
                            plain_merge = text == "<<"
                        else:
                            value = text
                    else:
                        value = _resolve_tagged(tag, text)
                except _ScalarError as error:
                    self.problem(str(error), mark.line, mark.column)
                    value = text
                sub = None
                size = 1
                if event.anchor is not None:
                    anchors[event.anchor] = (value, None, 1)
            elif cls is mapping_start or cls is sequence_start:
                if len(stack) >= MAX_DEPTH:
                    self.problem(f"nesting deeper than {MAX_DEPTH} levels", mark.line, mark.column)
                    raise _Fatal
                tag = event.tag
                expected = "map" if cls is mapping_start else "seq"
                if tag is not None and tag != "!" and tag != _CORE + expected:
                    self.problem(
                        f"unsupported tag {_short_tag(tag)} on a {'mapping' if expected == 'map' else 'list'}",
                        mark.line,
                        mark.column,
                    )
                if event.anchor is not None:
                    open_anchors.add(event.anchor)
                if cls is mapping_start:
                    stack.append(_Frame({}, {}, event.anchor, (mark.line, mark.column)))
                else:
                    stack.append(_Frame([], [], event.anchor, (mark.line, mark.column)))
                continue
            elif cls is yaml.MappingEndEvent or cls is yaml.SequenceEndEvent:
                frame = stack.pop()
                if frame.merges is not None:
                    self._merge(frame)
                value = frame.container
                sub = frame.positions
                size = frame.size
                if frame.anchor is not None:
                    open_anchors.discard(frame.anchor)
                    anchors[frame.anchor] = (value, sub, size)
                mark_line, mark_column = frame.start
                if stack:
                    self._add(stack, value, sub, size, mark_line, mark_column, False)
                else:
                    root = (value, mark_line, mark_column, sub)
                continue
            elif cls is alias_event:
                name = event.anchor
                if name in open_anchors:
                    self.problem(
                        f"alias *{name} refers to a collection that contains it", mark.line, mark.column
                    )
                    raise _Fatal
                found = anchors.get(name)
                if found is None:
                    self.problem(
                        f"unknown alias *{name} (no anchor &{name} before it)", mark.line, mark.column
                    )
                    raise _Fatal
                value, sub, size = found
                self.alias_values += size
                if self.alias_values > MAX_ALIAS_VALUES:
                    self.problem(
                        f"aliases expand to more than {MAX_ALIAS_VALUES} values (a YAML bomb?)",
                        mark.line,
                        mark.column,
                    )
                    raise _Fatal
                plain_merge = False
            elif cls is yaml.DocumentEndEvent:
                break
            else:  # pragma: no cover - libyaml emits nothing else inside a document
                continue
            # ... and put it where it belongs. The common cases are inlined: this loop runs per value.
            if not stack:
                root = (value, mark.line, mark.column, sub)
                continue
            frame = stack[-1]
            container = frame.container
            if container.__class__ is list:
                frame.size += size
                container.append(value)
                frame.positions.append((mark.line, mark.column, sub))
            elif frame.key is _MISSING and value.__class__ is str and not plain_merge:
                frame.size += size
                frame.key = value
                frame.merge_key = False
                frame.key_line = mark.line
                frame.key_column = mark.column
            else:
                key = frame.key
                if key.__class__ is str and not frame.merge_key and key not in container:
                    frame.size += size
                    frame.key = _MISSING
                    container[key] = value
                    frame.positions[key] = (mark.line, mark.column, sub, frame.key_line, frame.key_column)
                else:
                    self._add(stack, value, sub, size, mark.line, mark.column, plain_merge)

        if root is None or root[0] is None:
            return  # an empty document
        data, line, column, sub = root
        if not isinstance(data, dict):
            self.problem(
                f"expected a mapping with apiVersion, kind, metadata and spec, got {describe(data)}",
                line,
                column,
            )
            return
        self.documents.append(Document(data, self.file, index, (line, column, sub)))

    def _add(
        self, stack: list[_Frame], value: Any, sub: Any, size: int, line: int, column: int, plain_merge: bool
    ) -> None:
        frame = stack[-1]
        frame.size += size
        container = frame.container
        if isinstance(container, list):
            container.append(value)
            frame.positions.append((line, column, sub))
            return
        key = frame.key
        if key is _MISSING:  # this value is a key
            if not isinstance(value, str):
                self.problem(_key_message(value), line, column)
                frame.key = None
            else:
                frame.key = value
                frame.merge_key = plain_merge
            frame.key_line = line
            frame.key_column = column
            return
        frame.key = _MISSING
        if key is None:  # the key was refused already
            return
        if frame.merge_key:
            self._merge_source(frame, value, sub, line, column)
            return
        positions = frame.positions
        if key in container:
            first = positions[key][3] + 1
            self.problem(
                f"duplicate key {describe(key)} (first defined on line {first})",
                frame.key_line,
                frame.key_column,
            )
            return
        container[key] = value
        positions[key] = (line, column, sub, frame.key_line, frame.key_column)

    def _merge_source(self, frame: _Frame, value: Any, sub: Any, line: int, column: int) -> None:
        sources: list[tuple[Any, Any]] = [(value, sub)]
        if isinstance(value, list):
            sources = [(item, sub[i][2]) for i, item in enumerate(value)]
        if frame.merges is None:
            frame.merges = []
        for source, source_positions in sources:
            if not isinstance(source, dict):
                self.problem("merge key '<<' expects a mapping or a list of mappings", line, column)
                return
            frame.merges.append((source, source_positions))

    @staticmethod
    def _merge(frame: _Frame) -> None:
        container: dict[str, Any] = frame.container
        positions: dict[str, Any] = frame.positions
        explicit = set(container)
        for source, source_positions in frame.merges or ():
            for key, item in source.items():
                if key not in explicit and key not in container:
                    container[key] = item
                    positions[key] = source_positions[key]


def _decode(data: bytes, file: str) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as error:
            raise WorkflowError.at(f"invalid UTF-16: {error.reason}", file=file, line=1, column=1) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        good = data[: error.start].decode("utf-8-sig", errors="replace")
        line = good.count("\n") + 1
        column = len(good) - (good.rfind("\n") + 1) + 1
        raise WorkflowError.at(
            f"invalid UTF-8: byte 0x{data[error.start]:02x} cannot start or continue a character "
            "(the file must be UTF-8 text)",
            file=file,
            line=line,
            column=column,
        ) from None


def load_documents(text: str | bytes, file: str = "<input>") -> list[Document]:
    """Parse every document of a YAML stream; empty documents are skipped.

    Raises :class:`WorkflowError` for anything that is not well-formed YAML 1.2 holding mappings.
    """
    if isinstance(text, (bytes, bytearray, memoryview)):
        raw = bytes(text)
        if len(raw) > MAX_BYTES:
            raise _too_large(len(raw), file)
        text = _decode(raw, file)
    elif len(text) > MAX_BYTES // 4 and len(text.encode("utf-8", errors="surrogatepass")) > MAX_BYTES:
        raise _too_large(len(text.encode("utf-8", errors="surrogatepass")), file)
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        before = text[: error.start]
        line = before.count("\n") + 1
        column = len(before) - (before.rfind("\n") + 1) + 1
        raise WorkflowError.at(
            f"invalid character U+{ord(text[error.start]):04X} (a lone surrogate is not text)",
            file=file,
            line=line,
            column=column,
        ) from None
    return _Builder(text, file).run()


def _too_large(size: int, file: str) -> WorkflowError:
    return WorkflowError.at(
        f"file is too large: {size} bytes (the limit is {MAX_BYTES // (1024 * 1024)} MiB)", file=file
    )


def load_file(path: str | os.PathLike[str]) -> list[Document]:
    """Read and parse a YAML file; the file name in problems is ``path`` as given."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > MAX_BYTES:
                raise _too_large(size, name)
            data = handle.read(MAX_BYTES + 1)
    except OSError as error:
        raise WorkflowError.at(f"cannot read the file: {error.strerror or error}", file=name) from None
    if len(data) > MAX_BYTES:
        raise _too_large(len(data), name)
    return load_documents(data, name)


def _key_message(key: Any) -> str:
    if isinstance(key, (dict, list)):
        return f"mapping keys must be strings, got {describe(key)}"
    return f"mapping keys must be strings, got {describe(key)} (put the key in quotes)"

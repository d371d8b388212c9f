"""Where each piece of a resolved spec came from, so problems point at the right file and line.

Template application copies and reshuffles dicts; ``Origins`` remembers, for every dict and list that
was copied from a document, the document and the path it came from. A field without a recorded
origin is located through its nearest ancestor that has one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from shoal.workflow._errors import Problem

PathItem = str | int
Path = tuple[PathItem, ...]


class Locatable(Protocol):
    file: str | None

    def locate(self, path: Any) -> Any: ...


class Origins:
    """id(dict or list) -> (document, path inside it). Keeps the objects alive so ids stay unique."""

    __slots__ = ("_keep", "_map")

    def __init__(self) -> None:
        self._map: dict[int, tuple[Locatable | None, Path]] = {}
        self._keep: list[Any] = []

    def register(self, obj: Any, doc: Locatable | None, path: Path) -> None:
        self._map[id(obj)] = (doc, path)
        self._keep.append(obj)

    def get(self, obj: Any) -> tuple[Locatable | None, Path] | None:
        return self._map.get(id(obj))

    def has(self, obj: Any) -> bool:
        return id(obj) in self._map

    @property
    def ids(self) -> Mapping[int, tuple[Locatable | None, Path]]:
        """The recorded objects by id (read-only use: membership tests in hot loops)."""
        return self._map

    def copy(self, value: Any, doc: Locatable | None = None, path: Path = ()) -> Any:
        """Deep copy of plain data; each copied dict/list gets its source's origin (or ``doc``/``path``)."""
        if isinstance(value, dict):
            known = self._map.get(id(value))
            if known is not None:
                doc, path = known
            copy = self.copy
            out_d: dict[str, Any] = {}
            for k, v in value.items():
                kind = type(v)
                if kind is str or kind is int or kind is bool or kind is float or v is None:
                    out_d[k] = v
                elif kind is dict or kind is list or isinstance(v, (dict, list)):
                    out_d[k] = copy(v, doc, (*path, k))
                else:
                    out_d[k] = v
            if doc is not None:
                self._map[id(out_d)] = (doc, path)
                self._keep.append(out_d)
            return out_d
        if isinstance(value, list):
            known = self._map.get(id(value))
            if known is not None:
                doc, path = known
            copy = self.copy
            out_l = [
                copy(v, doc, (*path, i)) if isinstance(v, (dict, list)) else v for i, v in enumerate(value)
            ]
            if doc is not None:
                self._map[id(out_l)] = (doc, path)
                self._keep.append(out_l)
            return out_l
        return value


class Locator:
    """Builds located ``Problem``s from an object with a known origin plus a relative path."""

    __slots__ = ("default_doc", "origins")

    def __init__(self, origins: Origins, default_doc: Locatable | None) -> None:
        self.origins = origins
        self.default_doc = default_doc

    def problem(self, message: str, anchor: Any, rel: Sequence[PathItem], shown: str = "") -> Problem:
        origin = self.origins.get(anchor) if anchor is not None else None
        doc, base = origin if origin is not None else (self.default_doc, ())
        path = (*base, *rel)
        line, column = locate(doc, path)
        return Problem(
            message=message,
            path=shown or format_path(path),
            file=getattr(doc, "file", None),
            line=line,
            column=column,
        )


def locate(doc: Locatable | None, path: Path) -> tuple[int | None, int | None]:
    """Line/column of ``path`` in ``doc``, falling back to the closest existing ancestor."""
    if doc is None:
        return None, None
    for end in range(len(path), -1, -1):
        try:
            found = doc.locate(path[:end])
        except (KeyError, IndexError, TypeError, ValueError, AttributeError):
            continue
        if found:
            line, column = found
            return line, column
    return None, None


def format_path(path: Sequence[PathItem]) -> str:
    """`("spec", "steps", 2, "retry")` -> `spec.steps[2].retry`."""
    out = ""
    for item in path:
        if isinstance(item, int):
            out += f"[{item}]"
        else:
            out += ("." if out else "") + str(item)
    return out

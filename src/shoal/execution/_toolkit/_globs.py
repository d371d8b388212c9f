"""Doublestar globs (``**`` spans directories; ``*``, ``?``, ``[...]``, ``{a,b}``; no dot-file special case).

Patterns are matched against absolute, ``/``-separated paths; ``static_root`` gives the directory a search
must start from, so a walk never scans more than a pattern can match.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path

_META = set("*?[{\\")


def has_meta(text: str) -> bool:
    return any(ch in _META for ch in text)


def static_root(pattern: str) -> str:
    """The longest leading run of path components without glob syntax (``/data/a/**/x`` -> ``/data/a``)."""
    parts = pattern.split("/")
    kept: list[str] = []
    for part in parts[:-1]:
        if has_meta(part):
            break
        kept.append(part)
    else:
        if not has_meta(parts[-1]):
            kept.append(parts[-1])
    root = "/".join(kept)
    if pattern.startswith("/") and not root:
        return "/"
    return root.rstrip("/") or ("/" if pattern.startswith("/") else "")


def _translate_segment(seg: str, i: int = 0, stop: str = "") -> tuple[str, int]:
    """Translate one component (no ``/``) starting at ``i``; stops at an unnested char of ``stop``."""
    out: list[str] = []
    n = len(seg)
    while i < n:
        ch = seg[i]
        if stop and ch in stop:
            return "".join(out), i
        if ch == "\\" and i + 1 < n:
            out.append(re.escape(seg[i + 1]))
            i += 2
        elif ch == "*":
            while i < n and seg[i] == "*":
                i += 1
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
            i += 1
        elif ch == "[":
            end = i + 1
            if end < n and seg[end] in "!^":
                end += 1
            if end < n and seg[end] == "]":
                end += 1
            while end < n and seg[end] != "]":
                end += 1
            if end >= n:
                out.append(re.escape("["))
                i += 1
                continue
            body = seg[i + 1 : end]
            negate = body[:1] in ("!", "^")
            if negate:
                body = body[1:]
            body = body.replace("\\", "\\\\").replace("]", "\\]")
            out.append(f"[^/{body}]" if negate else f"[{body}]")
            i = end + 1
        elif ch == "{":
            alts: list[str] = []
            j = i + 1
            while True:
                part, j = _translate_segment(seg, j, stop=",}")
                alts.append(part)
                if j >= n:
                    break
                if seg[j] == "}":
                    break
                j += 1  # skip ','
            if j >= n:  # unbalanced: literal brace
                out.append(re.escape("{"))
                i += 1
                continue
            out.append("(?:" + "|".join(alts) + ")")
            i = j + 1
        else:
            out.append(re.escape(ch))
            i += 1
    return "".join(out), i


@lru_cache(maxsize=512)
def compile_glob(pattern: str) -> re.Pattern[str]:
    parts = pattern.split("/")
    regex: list[str] = []
    last = len(parts) - 1
    for idx, part in enumerate(parts):
        if part == "**":
            if idx == last:
                # `a/**` matches everything below `a` (and `a` itself); a lone `**` matches anything.
                regex.append(".*" if idx == 0 else "(?:/.*)?")
            else:
                regex.append("(?:.*/)?" if idx == 0 else "/(?:.*/)?")
            continue
        body, _ = _translate_segment(part)
        prev_globstar = idx > 0 and parts[idx - 1] == "**"
        regex.append(body if idx == 0 or prev_globstar else "/" + body)
    return re.compile("".join(regex) + r"\Z", re.DOTALL)


def matches(pattern: str, path: str) -> bool:
    return compile_glob(pattern).match(path) is not None


def walk_files(patterns: Sequence[str]) -> Iterator[Path]:
    """Every regular file (or symlink to one) matching one of the absolute ``patterns``.

    Patterns starting with ``!`` exclude. Directory symlinks are not followed (no loops); each file is
    yielded once, in sorted order per search root.
    """
    include = [p for p in patterns if not p.startswith("!")]
    exclude = [p[1:] for p in patterns if p.startswith("!")]
    roots = sorted({static_root(p) for p in include})
    # A root below another root is searched as part of it.
    roots = [r for r in roots if not any(r != o and r.startswith(o.rstrip("/") + "/") for o in roots)]
    seen: set[str] = set()

    def wanted(path: str) -> bool:
        return any(matches(p, path) for p in include) and not any(matches(p, path) for p in exclude)

    for root in roots:
        if os.path.isfile(root):
            if root not in seen and wanted(root):
                seen.add(root)
                yield Path(root)
            continue
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            dirnames.sort()
            for name in sorted(filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]):
                full = os.path.join(dirpath, name)
                if full in seen or not os.path.isfile(full):
                    continue
                if wanted(full):
                    seen.add(full)
                    yield Path(full)

"""The ``artifacts`` operation: collect files matching doublestar globs into the execution's artifacts.

Only files inside the execution's mounted volumes count (never the toolkit's own state directory);
symlinks are resolved and anything that lands outside is refused. Files keep their path relative to
the common root of the working dir and the search roots (as Testkube names them); with
``compress.name`` they are packed into one gzipped tar instead. JUnit XML files become reports.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ._context import ToolkitError, ToolkitRun
from ._globs import static_root, walk_files
from ._junit import DEFAULT_MAX_BYTES, JUnitError, report_value, summarize


@dataclass(slots=True)
class Collected:
    source: Path  # resolved host path of the file
    name: str  # relative artifact name
    size: int


def archive_name(name: str) -> str:
    """``compress.name`` suffix rules: ``x.tar`` -> ``x.tar.gz``; other than ``.tgz``/``.tar.gz`` -> ``+.tar.gz``."""
    if name.endswith(".tar"):
        return name + ".gz"
    if name.endswith((".tgz", ".tar.gz")):
        return name
    return name + ".tar.gz"


def _is_within(path: str, root: str) -> bool:
    root = root.rstrip("/") or "/"
    return path == root or path.startswith(root if root == "/" else root + "/")


def _common_root(root: str, search_roots: Sequence[str]) -> str:
    parts = root.rstrip("/").split("/")
    for other in search_roots:
        o = other.rstrip("/").split("/")
        n = 0
        while n < len(parts) and n < len(o) and parts[n] == o[n]:
            n += 1
        parts = parts[:n]
    joined = "/".join(parts)
    return joined or "/"


def collect(
    patterns: Sequence[str],
    root: Path,
    allowed: Sequence[Path],
    excluded: Sequence[Path],
) -> tuple[list[Collected], list[str]]:
    """Resolve ``patterns`` (absolute host patterns or relative to ``root``) into files; also warnings."""
    warnings: list[str] = []
    allowed_real = [os.path.realpath(p) for p in allowed]
    excluded_real = [os.path.realpath(p) for p in excluded]
    absolute: list[str] = []
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        full = body if body.startswith("/") else os.path.join(str(root), body)
        full = os.path.normpath(full) + ("/" if body.endswith("/") else "")
        if full.endswith("/"):
            full += "**"
        if not negate and not any(_is_within(os.path.realpath(static_root(full)), a) for a in allowed_real):
            warnings.append(f"{pattern}: outside the execution's volumes, ignored")
            continue
        absolute.append(("!" if negate else "") + full)
    search_roots = [static_root(p) for p in absolute if not p.startswith("!")]
    name_root = _common_root(os.path.normpath(str(root)), search_roots)
    out: list[Collected] = []
    for path in walk_files(absolute):
        real = os.path.realpath(path)
        if any(_is_within(real, e) or _is_within(str(path), e) for e in excluded_real):
            continue  # the toolkit's own state and the artifacts already saved
        if not any(_is_within(real, a) for a in allowed_real):
            warnings.append(f"{path}: resolves outside the execution's volumes, ignored")
            continue
        rel = os.path.relpath(str(path), name_root)
        if rel == ".." or rel.startswith("../") or os.path.isabs(rel):
            warnings.append(f"{path}: cannot be named relative to {name_root}, ignored")
            continue
        out.append(Collected(source=Path(real), name=rel, size=os.stat(real).st_size))
    return out, warnings


def _copy_into(dest_root: Path, item: Collected) -> None:
    dest = dest_root / item.name
    dest_real = os.path.realpath(dest.parent)
    if not _is_within(dest_real, os.path.realpath(dest_root)):
        raise ToolkitError(f"{item.name}: would be written outside the artifacts directory")
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(item.source, dest)


def _pack(dest: Path, items: Sequence[Collected]) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(dest, "w:gz") as tar:
        for item in items:
            tar.add(str(item.source), arcname=item.name, recursive=False)


def run_artifacts(run: ToolkitRun) -> int:
    spec = run.resolved(run.spec)
    paths = spec.get("paths") or []
    if isinstance(paths, str):
        paths = [paths]
    working_dir = spec.get("workingDir") or spec.get("working_dir")
    root = run.host_path(str(working_dir)) if working_dir else run.cwd
    # Patterns name workflow paths (`/data/x/**`); map each onto the host before matching.
    host_patterns: list[str] = []
    for raw in paths:
        pattern = str(raw)
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        if body.startswith("/"):
            body = str(run.paths.to_host(body, root)) + ("/" if body.endswith("/") and body != "/" else "")
        host_patterns.append(("!" if negate else "") + body)
    excluded = [run.shoal_dir, run.artifacts_dir]
    items, warnings = collect(host_patterns, root, run.paths.host_roots(), excluded)
    for warning in warnings:
        run.log(f"warning: {warning}")
    max_bytes = int(run.env.get("SHOAL_JUNIT_MAX_BYTES", DEFAULT_MAX_BYTES))
    problems = 0
    compress = spec.get("compress") or {}
    archive = archive_name(str(compress["name"])) if compress.get("name") else None
    if archive is not None:
        dest = run.artifacts_dir / archive
        if (
            not _is_within(os.path.realpath(dest.parent), os.path.realpath(run.artifacts_dir))
            or ".." in Path(archive).parts
        ):
            raise ToolkitError(f"compress.name {archive!r} escapes the artifacts directory")
        _pack(dest, items)
        for item in items:
            run.log(f"{item.name} ({item.size} bytes) -> {archive}")
        run.emit("artifact", {"name": archive, "size": dest.stat().st_size})
    else:
        for item in items:
            try:
                _copy_into(run.artifacts_dir, item)
            except (OSError, ToolkitError) as exc:
                problems += 1
                run.log(f"{item.name}: failed: {exc}")
                continue
            run.log(f"{item.name} ({item.size} bytes)")
            run.emit("artifact", {"name": item.name, "size": item.size})
    for item in items:
        try:
            summary = summarize(item.source, max_bytes)
        except (JUnitError, OSError) as exc:
            run.log(f"warning: {item.name}: not summarised: {exc}")
            continue
        if summary is not None:
            run.log(f"JUnit report {item.name}: {summary.tests} tests, {summary.failed} failed")
            run.emit("report", report_value(item.name, summary))
    if not items:
        run.log("No artifacts found.")
    else:
        total = sum(i.size for i in items)
        run.log(f"Found and uploaded {len(items)} files ({total} bytes).")
    if problems:
        run.log(f"{problems} problems while saving files")
        return 1
    return 0

"""Loading workflows and templates from files and directories into one ``Bundle``.

This is the only part of the package that reads files (through ``_yaml.load_file``); everything
else works on the loaded documents.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from shoal.workflow._errors import Problem, WorkflowError
from shoal.workflow._templates import internal_template_name
from shoal.workflow._yaml import Document, load_file

_SUFFIXES = (".yaml", ".yml")


@dataclass(slots=True)
class Bundle:
    """Every TestWorkflow document, and every TestWorkflowTemplate by internal name (`a--b`)."""

    workflows: list[Document] = field(default_factory=list)
    templates: dict[str, Document] = field(default_factory=dict)
    documents: list[Document] = field(default_factory=list)

    def workflow(self, name: str | None = None) -> Document:
        """The workflow called ``name``, or the only one when ``name`` is None."""
        if name is None:
            if len(self.workflows) == 1:
                return self.workflows[0]
            if not self.workflows:
                raise WorkflowError.at("no TestWorkflow document found")
            names = ", ".join(sorted(str(w.name) for w in self.workflows))
            raise WorkflowError.at(f"several workflows found ({names}); choose one with --name")
        for doc in self.workflows:
            if doc.name == name:
                return doc
        names = ", ".join(sorted(str(w.name) for w in self.workflows)) or "none"
        files = ", ".join(dict.fromkeys(d.file for d in self.documents)) or None
        raise WorkflowError.at(f"no workflow named {name!r} (found: {names})", file=files)

    def add(self, docs: Iterable[Document]) -> None:
        for doc in docs:
            self.documents.append(doc)
            if doc.kind == "TestWorkflow":
                self.workflows.append(doc)
            elif doc.kind == "TestWorkflowTemplate" and doc.name:
                self.templates.setdefault(internal_template_name(doc.name), doc)


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        found: list[Path] = []
        for root, dirs, names in os.walk(path):
            dirs.sort()
            for name in sorted(names):
                if name.endswith(_SUFFIXES):
                    found.append(Path(root) / name)
        return found
    return [path]


def load_bundle(paths: Iterable[str | os.PathLike[str]]) -> Bundle:
    """Load files and directories (recursively, `*.yaml`/`*.yml`); templates indexed by name."""
    bundle = Bundle()
    problems: list[Problem] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            problems.append(Problem(f"no such file or directory: {path}", file=str(path)))
            continue
        for file in _files(path):
            try:
                bundle.add(load_file(file))
            except WorkflowError as exc:
                problems.extend(exc.problems)
            except OSError as exc:
                problems.append(Problem(f"cannot read: {exc.strerror or exc}", file=str(file)))
    if problems:
        raise WorkflowError(problems)
    return bundle

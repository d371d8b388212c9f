"""Errors of the workflow language: every problem carries the file, position and field path."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a document, located as precisely as we can.

    ``line`` and ``column`` are 1-based; ``path`` is a field path such as
    ``spec.steps[2].retry.count``; ``message`` says what was expected.
    """

    message: str
    path: str = ""
    file: str | None = None
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = self.file or "<input>"
        if self.line is not None:
            where += f":{self.line}:{self.column if self.column is not None else 1}"
        if self.path:
            return f"{where}: {self.path}: {self.message}"
        return f"{where}: {self.message}"


class WorkflowError(Exception):
    """Raised by the workflow language for bad input; holds one or more located problems."""

    def __init__(self, problems: Problem | Iterable[Problem]) -> None:
        self.problems: list[Problem] = [problems] if isinstance(problems, Problem) else list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    @classmethod
    def at(
        cls,
        message: str,
        path: str = "",
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> WorkflowError:
        return cls(Problem(message=message, path=path, file=file, line=line, column=column))

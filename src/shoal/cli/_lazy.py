"""What the command modules share without paying for it at start-up: Rich is imported by the first
command that prints through it, not by `shoal --help` or `shoal version`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


class LazyConsole:
    """A ``rich.console.Console`` made on first use; ``width`` may be a callable evaluated then."""

    def __init__(self, *, stderr: bool = False, width: Callable[[], int | None] | None = None) -> None:
        self._stderr = stderr
        self._width = width
        self._console: Console | None = None

    @property
    def console(self) -> Console:
        if self._console is None:
            from rich.console import Console

            width = self._width() if self._width is not None else None
            self._console = Console(stderr=self._stderr, width=width)
        return self._console

    def print(self, *objects: Any, **kwargs: Any) -> None:
        self.console.print(*objects, **kwargs)

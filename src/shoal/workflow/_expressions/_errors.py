"""The one exception of the expression engine: a message and, when known, a 0-based position."""

from __future__ import annotations


class ExpressionError(Exception):
    """A compile or resolution failure.

    ``position`` is a 0-based offset into the compiled source (for templates: into the template
    text), or ``None`` when the failure happened while resolving an already compiled tree.
    ``unknown`` is set when the failure is an unknown variable or function at the final stage,
    which ``any()`` skips instead of failing.
    """

    def __init__(self, message: str, position: int | None = None, *, unknown: bool = False) -> None:
        super().__init__(message if position is None else f"{message} (at {position})")
        self.message = message
        self.position = position
        self.unknown = unknown

    def shifted(self, offset: int) -> ExpressionError:
        """The same error with its position moved by ``offset`` (an island inside a template)."""
        if self.position is None:
            return self
        return ExpressionError(self.message, self.position + offset, unknown=self.unknown)

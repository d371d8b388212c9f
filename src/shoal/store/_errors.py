"""The store's exception family."""

from __future__ import annotations


class StoreError(Exception):
    """A store operation failed; the message is meant for the user."""


class NotFound(StoreError):
    pass


class Conflict(StoreError):
    pass

"""Watch streams: newline-delimited `{"type", "object"}` events from a resourceVersion.

Semantics follow the real watch cache: no resourceVersion (or "0") starts with synthetic ADDED events
for the current state; a resourceVersion resumes from the retained history and answers an `ERROR`
event carrying a 410 `Expired` Status when it is older than the window; selectors turn transitions
into ADDED/DELETED the way a filtered watch does; `allowWatchBookmarks` adds periodic BOOKMARKs;
`sendInitialEvents=true` ends the initial state with the `k8s.io/initial-events-end` bookmark;
`timeoutSeconds` ends the stream cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from ._errors import ApiError
from ._registry import ResourceType
from ._selectors import FieldSelector, LabelSelector
from ._store import Change, Obj, Store


@dataclass
class WatchRequest:
    rt: ResourceType
    namespace: str | None
    labels: LabelSelector
    fields: FieldSelector
    resource_version: str | None
    allow_bookmarks: bool
    send_initial_events: bool
    timeout_seconds: float | None


def _line(type_: str, obj: Obj) -> bytes:
    return json.dumps({"type": type_, "object": obj}, separators=(",", ":")).encode() + b"\n"


class Watcher:
    """One watch: filters store changes into events for its stream."""

    def __init__(self, req: WatchRequest) -> None:
        self.req = req
        self.queue: asyncio.Queue[Change | None] = asyncio.Queue()

    def matches(self, obj: Obj | None) -> bool:
        if obj is None:
            return False
        return self.req.labels.matches(obj["metadata"].get("labels")) and self.req.fields.matches(obj)

    def relevant(self, change: Change) -> bool:
        if change.rt.key != self.req.rt.key:
            return False
        return self.req.namespace is None or change.namespace == self.req.namespace

    def listener(self, change: Change) -> None:
        if self.relevant(change):
            self.queue.put_nowait(change)

    def event_for(self, change: Change) -> tuple[str, Obj] | None:
        if change.type == "ADDED":
            return ("ADDED", change.obj) if self.matches(change.obj) else None
        if change.type == "DELETED":
            return ("DELETED", change.obj) if self.matches(change.old) else None
        was, now_ = self.matches(change.old), self.matches(change.obj)
        if was and now_:
            return ("MODIFIED", change.obj)
        if now_:
            return ("ADDED", change.obj)
        if was:
            return ("DELETED", change.obj)
        return None


def _bookmark(rt: ResourceType, rv: int, annotations: dict[str, str] | None = None) -> Obj:
    meta: dict[str, Any] = {"resourceVersion": str(rv)}
    if annotations:
        meta["annotations"] = annotations
    return {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta}


def open_stream(store: Store, req: WatchRequest, closing: asyncio.Event,
                bookmark_interval: float) -> AsyncIterator[bytes]:
    """Subscribe now (raising ApiError for bad requests) and return the body of the watch response."""
    watcher = Watcher(req)
    initial: list[bytes] = []
    rv_text = req.resource_version
    if req.send_initial_events and not req.allow_bookmarks:
        raise ApiError(422, "Invalid", "ListOptions.meta.k8s.io \"\" is invalid: allowWatchBookmarks: Required "
                                       "value: allowWatchBookmarks must be set to true when sendInitialEvents "
                                       "is set to true")
    if rv_text is None or rv_text in ("", "0") or req.send_initial_events:
        objs, rv, unsubscribe = store.snapshot_and_subscribe(req.rt, req.namespace, watcher.listener)
        initial = [_line("ADDED", o) for o in objs if watcher.matches(o)]
        if req.send_initial_events:
            initial.append(_line("BOOKMARK", _bookmark(req.rt, rv, {"k8s.io/initial-events-end": "true"})))
    else:
        try:
            since = int(rv_text)
        except ValueError as e:
            raise ApiError.bad_request(f'invalid resource version "{rv_text}"') from e
        history, unsubscribe = store.subscribe_with_history(watcher.listener, since)
        if history is None:
            unsubscribe()
            expired = ApiError.gone(f"too old resource version: {since} ({store.compacted_rv})").status()
            return _single(_line("ERROR", expired))
        for change in history:
            if watcher.relevant(change):
                ev = watcher.event_for(change)
                if ev:
                    initial.append(_line(*ev))
    return _run(store, watcher, req, initial, unsubscribe, closing, bookmark_interval)


async def _single(line: bytes) -> AsyncIterator[bytes]:
    yield line


async def _run(store: Store, watcher: Watcher, req: WatchRequest, initial: list[bytes],
               unsubscribe: Callable[[], None], closing: asyncio.Event,
               bookmark_interval: float) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + req.timeout_seconds if req.timeout_seconds else None
    closer = asyncio.ensure_future(closing.wait())
    getter: asyncio.Future[Change | None] | None = None
    try:
        for line in initial:
            yield line
        last_bookmark = loop.time()
        while True:
            waits: list[float] = []
            if deadline is not None:
                waits.append(deadline - loop.time())
            if req.allow_bookmarks:
                waits.append(last_bookmark + bookmark_interval - loop.time())
            timeout = max(0.0, min(waits)) if waits else None
            getter = asyncio.ensure_future(watcher.queue.get())
            done, _ = await asyncio.wait({getter, closer}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await getter
            if closer in done:
                return
            if getter in done:
                change = getter.result()
                if change is None:
                    return
                ev = watcher.event_for(change)
                if ev:
                    yield _line(*ev)
                continue
            now_ = loop.time()
            if deadline is not None and now_ >= deadline:
                return
            if req.allow_bookmarks and now_ >= last_bookmark + bookmark_interval:
                last_bookmark = now_
                yield _line("BOOKMARK", _bookmark(req.rt, store.resource_version))
    finally:
        unsubscribe()
        closer.cancel()
        if getter is not None:
            getter.cancel()

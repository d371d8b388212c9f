"""The simulator's etcd: objects by resource type, one global resourceVersion, a bounded event history.

Every write gets the next resourceVersion and produces exactly one event (ADDED, MODIFIED, DELETED),
kept in a bounded history (watches resume from it; older versions answer 410) and handed to the
subscribers (watches, controllers) in resourceVersion order. Writes happen on the simulator's event
loop; reads are safe from any thread (tests assert on `sim.store`).
"""

from __future__ import annotations

import builtins
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ._registry import ResourceType

Obj = dict[str, Any]
log = logging.getLogger("kubesim")


def clone(value: Any) -> Any:
    """Deep copy of JSON-shaped data (dicts, lists, scalars): several times faster than copy.deepcopy."""
    if type(value) is dict:
        return {k: clone(v) for k, v in value.items()}
    if type(value) is list:
        return [clone(v) for v in value]
    return value


@dataclass(frozen=True)
class Change:
    """One committed write. `old` is the previous state (None for ADDED); `obj` the new (or last) state."""

    type: str  # ADDED | MODIFIED | DELETED
    rt: ResourceType
    obj: Obj
    old: Obj | None
    rv: int

    @property
    def namespace(self) -> str:
        return str(self.obj["metadata"].get("namespace") or "")

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])


Listener = Callable[[Change], None]


class Store:
    def __init__(self, history_size: int = 10_000) -> None:
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._objects: dict[str, dict[tuple[str, str], Obj]] = {}
        self._rv = 1000
        self._history: deque[Change] = deque(maxlen=max(1, history_size))
        # the oldest resourceVersion a watch may resume from (everything after it is in the history)
        self._compacted_rv = self._rv
        self._listeners: builtins.list[Listener] = []
        self._dispatching = False
        self._pending: deque[tuple[Change, builtins.list[Listener]]] = deque()

    # -- reads (any thread) ---------------------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        with self._lock:
            return self._rv

    def get(self, rt: ResourceType, namespace: str, name: str) -> Obj | None:
        with self._lock:
            obj = self._objects.get(rt.key, {}).get((namespace if rt.namespaced else "", name))
            return clone(obj) if obj is not None else None

    def list(self, rt: ResourceType, namespace: str | None = None) -> builtins.list[Obj]:
        """Objects of `rt`, sorted by namespace then name; `namespace=None` means all namespaces."""
        with self._lock:
            items = self._objects.get(rt.key, {})
            keys = sorted(k for k in items if namespace is None or k[0] == namespace)
            return [clone(items[k]) for k in keys]

    def uid_of(self, rt: ResourceType, namespace: str, name: str) -> str | None:
        """The uid of an object, without copying it (None when absent)."""
        with self._lock:
            obj = self._objects.get(rt.key, {}).get((namespace if rt.namespaced else "", name))
            return None if obj is None else str(obj["metadata"]["uid"])

    def select(self, rt: ResourceType, namespace: str | None,
               predicate: Callable[[Obj], bool]) -> builtins.list[Obj]:
        """Like `list`, but only copies the objects matching `predicate`."""
        with self._lock:
            items = self._objects.get(rt.key, {})
            keys = sorted(k for k in items if namespace is None or k[0] == namespace)
            return [clone(items[k]) for k in keys if predicate(items[k])]

    def all_in_namespace(self, namespace: str) -> Iterator[tuple[ResourceType, Obj]]:
        yield from self.scan(lambda _: True, namespace)

    def scan(self, predicate: Callable[[Obj], bool],
             namespace: str | None = None) -> builtins.list[tuple[ResourceType, Obj]]:
        """Copies of the objects of every type matching `predicate` (only namespaced ones in `namespace`)."""
        from ._registry import by_key

        out: builtins.list[tuple[ResourceType, Obj]] = []
        with self._lock:
            for key, bucket in self._objects.items():
                rt = by_key(key)
                if namespace is not None and not rt.namespaced:
                    continue
                for (ns, _), obj in sorted(bucket.items()):
                    if (namespace is None or ns == namespace) and predicate(obj):
                        out.append((rt, clone(obj)))
        return out

    def is_namespace_empty(self, namespace: str) -> bool:
        with self._lock:
            return not any(ns == namespace for bucket in self._objects.values() for (ns, _) in bucket)

    def history_since(self, rv: int) -> builtins.list[Change] | None:
        """Events after `rv`, or None when `rv` is older than the retained window (→ 410 Gone)."""
        with self._lock:
            if rv < self._compacted_rv:
                return None
            return [c for c in self._history if c.rv > rv]

    @property
    def compacted_rv(self) -> int:
        with self._lock:
            return self._compacted_rv

    def wait_until(self, predicate: Callable[[Store], bool], timeout: float) -> bool:
        """Block (any thread but the loop's) until `predicate(store)` holds after some write, or timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    # -- writes (the simulator's loop) -----------------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def subscribe_with_history(self, listener: Listener, since_rv: int) -> tuple[builtins.list[Change] | None, Callable[[], None]]:
        """Atomically: the events after `since_rv` and a subscription for everything after them."""
        with self._lock:
            history = self.history_since(since_rv)
            unsubscribe = self.subscribe(listener)
            return history, unsubscribe

    def snapshot_and_subscribe(
        self, rt: ResourceType, namespace: str | None, listener: Listener
    ) -> tuple[builtins.list[Obj], int, Callable[[], None]]:
        """Atomically: the current objects, the current resourceVersion and a subscription after it."""
        with self._lock:
            return self.list(rt, namespace), self._rv, self.subscribe(listener)

    def commit(self, rt: ResourceType, obj: Obj, *, expect_new: bool = False) -> Obj:
        """Write `obj` (ADDED if new, MODIFIED otherwise) under the next resourceVersion; return a copy."""
        with self._lock:
            meta = obj["metadata"]
            key = (meta.get("namespace", "") if rt.namespaced else "", meta["name"])
            bucket = self._objects.setdefault(rt.key, {})
            old = bucket.get(key)
            if expect_new and old is not None:
                raise KeyError(key)
            self._rv += 1
            stored = clone(obj)
            stored["metadata"]["resourceVersion"] = str(self._rv)
            bucket[key] = stored
            change = Change("ADDED" if old is None else "MODIFIED", rt, clone(stored), old, self._rv)
            self._record(change)
            out: Obj = clone(stored)
            return out

    def remove(self, rt: ResourceType, namespace: str, name: str) -> Obj | None:
        with self._lock:
            bucket = self._objects.get(rt.key, {})
            old = bucket.pop((namespace if rt.namespaced else "", name), None)
            if old is None:
                return None
            self._rv += 1
            last = clone(old)
            last["metadata"]["resourceVersion"] = str(self._rv)
            self._record(Change("DELETED", rt, last, old, self._rv))
            gone: Obj = clone(last)
            return gone

    def _record(self, change: Change) -> None:
        if len(self._history) == self._history.maxlen:
            self._compacted_rv = self._history[0].rv
        self._history.append(change)
        self._pending.append((change, list(self._listeners)))
        self._cond.notify_all()
        if self._dispatching:
            return  # a write made by a listener: delivered after the current event, in order
        self._dispatching = True
        try:
            while self._pending:
                ch, listeners = self._pending.popleft()
                for listener in listeners:
                    try:
                        listener(ch)
                    except Exception:  # a broken controller must not break the write that woke it
                        log.exception("kubesim listener failed on %s %s", ch.type, ch.rt.key)
        finally:
            self._dispatching = False

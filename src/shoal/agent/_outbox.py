"""The agent's durable outbox: every event is written here before it is sent, and dropped only once
the server acknowledged it. Also the agent's small memory across restarts (held executions, the
resource cache and its revision). One SQLite file in WAL mode; a process crash loses nothing
that was committed (``synchronous=NORMAL``: only a power loss can drop the last commits).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS executions (
    id TEXT PRIMARY KEY,
    meta TEXT NOT NULL,          -- assignment without secrets, plan, workspace
    state TEXT NOT NULL,         -- running | finished | uploaded
    next_seq INTEGER NOT NULL DEFAULT 1,
    acked_seq INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS events (
    execution_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (execution_id, seq)
);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS resources (
    kind TEXT NOT NULL, name TEXT NOT NULL, document TEXT NOT NULL, PRIMARY KEY (kind, name)
);
"""


@dataclass(slots=True)
class HeldExecution:
    id: str
    meta: dict[str, Any]
    state: str
    next_seq: int
    acked_seq: int


class Outbox:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ---------------------------------------------------------------- executions

    def hold(self, execution_id: str, meta: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO executions (id, meta, state) VALUES (?, ?, 'running')",
                (execution_id, json.dumps(meta)),
            )

    def update_meta(self, execution_id: str, meta: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute("UPDATE executions SET meta = ? WHERE id = ?", (json.dumps(meta), execution_id))

    def set_state(self, execution_id: str, state: str) -> None:
        with self._lock:
            self._db.execute("UPDATE executions SET state = ? WHERE id = ?", (state, execution_id))

    def held(self) -> list[HeldExecution]:
        with self._lock:
            rows = self._db.execute("SELECT id, meta, state, next_seq, acked_seq FROM executions").fetchall()
        return [HeldExecution(r[0], json.loads(r[1]), r[2], int(r[3]), int(r[4])) for r in rows]

    def get(self, execution_id: str) -> HeldExecution | None:
        with self._lock:
            r = self._db.execute(
                "SELECT id, meta, state, next_seq, acked_seq FROM executions WHERE id = ?", (execution_id,)
            ).fetchone()
        return None if r is None else HeldExecution(r[0], json.loads(r[1]), r[2], int(r[3]), int(r[4]))

    def forget(self, execution_id: str) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM events WHERE execution_id = ?", (execution_id,))
            self._db.execute("DELETE FROM executions WHERE id = ?", (execution_id,))
            self._db.execute("COMMIT")

    # ---------------------------------------------------------------- events

    def append(self, execution_id: str, events: Iterable[dict[str, Any]]) -> int:
        """Store events (idempotent on seq); returns the next seq expected after them."""
        rows = [(execution_id, int(e["seq"]), json.dumps(e, separators=(",", ":"))) for e in events]
        if not rows:
            return self.next_seq(execution_id)
        top = max(r[1] for r in rows)
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR IGNORE INTO events (execution_id, seq, data) VALUES (?, ?, ?)", rows
            )
            self._db.execute(
                "UPDATE executions SET next_seq = MAX(next_seq, ?) WHERE id = ?", (top + 1, execution_id)
            )
            self._db.execute("COMMIT")
        return top + 1

    def next_seq(self, execution_id: str) -> int:
        with self._lock:
            r = self._db.execute("SELECT next_seq FROM executions WHERE id = ?", (execution_id,)).fetchone()
        return int(r[0]) if r else 1

    def pending(self, execution_id: str, after_seq: int, limit: int = 500) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT data FROM events WHERE execution_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                (execution_id, after_seq, limit),
            ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def ack(self, execution_id: str, seq: int) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM events WHERE execution_id = ? AND seq <= ?", (execution_id, seq))
            self._db.execute(
                "UPDATE executions SET acked_seq = MAX(acked_seq, ?) WHERE id = ?", (seq, execution_id)
            )
            self._db.execute("COMMIT")

    def unacked_count(self, execution_id: str) -> int:
        with self._lock:
            r = self._db.execute(
                "SELECT COUNT(*) FROM events WHERE execution_id = ?", (execution_id,)
            ).fetchone()
        return int(r[0])

    # ---------------------------------------------------------------- resource cache

    def get_value(self, key: str, default: str = "") -> str:
        with self._lock:
            r = self._db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return str(r[0]) if r else default

    def set_value(self, key: str, value: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (key, value))

    def sync_resources(self, changes: Iterable[dict[str, Any]], revision: int) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            for change in changes:
                if change.get("deleted"):
                    self._db.execute(
                        "DELETE FROM resources WHERE kind = ? AND name = ?", (change["kind"], change["name"])
                    )
                else:
                    self._db.execute(
                        "INSERT OR REPLACE INTO resources (kind, name, document) VALUES (?, ?, ?)",
                        (change["kind"], change["name"], json.dumps(change["document"])),
                    )
            self._db.execute(
                "INSERT OR REPLACE INTO kv (key, value) VALUES ('revision', ?)", (str(revision),)
            )
            self._db.execute("COMMIT")

    def resources(self, kind: str) -> dict[str, dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT name, document FROM resources WHERE kind = ?", (kind,)).fetchall()
        return {r[0]: json.loads(r[1]) for r in rows}

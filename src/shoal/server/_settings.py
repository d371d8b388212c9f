"""Server settings, read from the environment (SHOAL_*) with sensible embedded defaults."""

from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from shoal.store import database_url, shoal_home


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw else default


@dataclass(slots=True)
class ServerSettings:
    home: Path = field(default_factory=shoal_home)
    database_url: str = ""
    server_id: str = field(default_factory=lambda: "srv-" + secrets.token_hex(4))
    heartbeat_interval_s: float = field(default_factory=lambda: _float("SHOAL_HEARTBEAT_S", 5.0))
    agent_timeout_s: float = field(default_factory=lambda: _float("SHOAL_AGENT_TIMEOUT_S", 15.0))
    agent_grace_s: float = field(default_factory=lambda: _float("SHOAL_AGENT_GRACE_S", 60.0))
    sweep_interval_s: float = field(default_factory=lambda: _float("SHOAL_SWEEP_S", 2.0))
    prune_interval_s: float = field(default_factory=lambda: _float("SHOAL_PRUNE_INTERVAL_S", 300.0))
    public_url: str = field(default_factory=lambda: os.environ.get("SHOAL_PUBLIC_URL", ""))
    print_admin_token: bool = True

    def __post_init__(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        # The database, blobs and keys live here: only the server's user may look inside.
        with contextlib.suppress(OSError):
            os.chmod(self.home, 0o700)
        if not self.database_url:
            self.database_url = database_url(self.home)

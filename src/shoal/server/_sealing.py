"""Encryption at rest for values that must never be stored in clear (sensitive config, kubeconfigs).

The key comes from SHOAL_SECRET_KEY (required when several servers share one database) or from
``$SHOAL_HOME/secret.key`` (created with mode 0600 on first use).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken


class Sealer:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    @classmethod
    def from_home(cls, home: Path) -> Sealer:
        env_key = os.environ.get("SHOAL_SECRET_KEY")
        if env_key:
            return cls(env_key.encode())
        path = home / "secret.key"
        if not path.exists():
            key = Fernet.generate_key()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(key)
        return cls(path.read_bytes().strip())

    def seal(self, value: Any) -> str:
        return self._fernet.encrypt(json.dumps(value).encode()).decode()

    def unseal(self, token: str) -> Any:
        try:
            return json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken as exc:
            raise ValueError("sealed value cannot be decrypted with this server's key") from exc

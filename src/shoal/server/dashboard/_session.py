"""Browser sessions of the dashboard: signed cookies, CSRF tokens and one-time sign-in link secrets.

A session cookie carries no secret: ``{token id, nonce, expiry}`` signed with HMAC-SHA256 under a key
derived from the server's secret key (``SHOAL_SECRET_KEY`` or ``$SHOAL_HOME/secret.key``, the same one
that seals sensitive values, so several servers sharing a database agree). Every request re-reads the
token by id, so revoking the API token ends its browser sessions. The CSRF token is an HMAC of the
session nonce: a form posted from another site cannot know it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

SESSION_COOKIE = "shoal_session"
LOGIN_COOKIE = "shoal_login"  # pre-session CSRF nonce of the sign-in form
SESSION_TTL_S = 12 * 3600
LINK_TTL_S = 300


def server_key(home: Path) -> bytes:
    """The server's secret key material (created by the server at start when it is a file)."""
    env_key = os.environ.get("SHOAL_SECRET_KEY")
    if env_key:
        return env_key.encode()
    path = home / "secret.key"
    if not path.exists():
        key = base64.urlsafe_b64encode(secrets.token_bytes(32))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key)
    return path.read_bytes().strip()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class Session:
    token_id: str
    nonce: str
    expires: int  # epoch seconds


class Signer:
    """HMAC signing with purpose-separated keys derived from the server key."""

    def __init__(self, key_material: bytes) -> None:
        self._root = hashlib.sha256(b"shoal-dashboard\x00" + key_material).digest()

    def _mac(self, purpose: str, data: bytes) -> bytes:
        return hmac.new(self._root, purpose.encode() + b"\x00" + data, hashlib.sha256).digest()

    # --------------------------------------------------------------- sessions

    def new_session(self, token_id: str, ttl_s: int = SESSION_TTL_S) -> tuple[Session, str]:
        session = Session(token_id, secrets.token_urlsafe(16), int(time.time()) + ttl_s)
        payload = json.dumps(
            {"t": session.token_id, "n": session.nonce, "e": session.expires}, separators=(",", ":")
        ).encode()
        return session, f"{_b64(payload)}.{_b64(self._mac('session', payload))}"

    def read_session(self, cookie: str | None) -> Session | None:
        if not cookie or "." not in cookie:
            return None
        body, _, mac = cookie.partition(".")
        try:
            payload = _unb64(body)
            given = _unb64(mac)
        except (ValueError, TypeError):
            return None
        if not hmac.compare_digest(given, self._mac("session", payload)):
            return None
        try:
            data = json.loads(payload)
            session = Session(str(data["t"]), str(data["n"]), int(data["e"]))
        except (ValueError, KeyError, TypeError):
            return None
        return session if session.expires > time.time() else None

    # --------------------------------------------------------------- CSRF

    def csrf_token(self, nonce: str) -> str:
        return _b64(self._mac("csrf", nonce.encode()))

    def check_csrf(self, nonce: str, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(self.csrf_token(nonce), str(given))

    # --------------------------------------------------------------- login form nonce

    def new_login_nonce(self) -> tuple[str, str]:
        """(nonce, cookie value): the sign-in form posts ``csrf_token(nonce)`` back with the cookie."""
        nonce = secrets.token_urlsafe(16)
        return nonce, f"{nonce}.{_b64(self._mac('login', nonce.encode()))}"

    def read_login_nonce(self, cookie: str | None) -> str | None:
        if not cookie or "." not in cookie:
            return None
        nonce, _, mac = cookie.partition(".")
        try:
            given = _unb64(mac)
        except (ValueError, TypeError):
            return None
        return nonce if hmac.compare_digest(given, self._mac("login", nonce.encode())) else None

    # --------------------------------------------------------------- one-time links

    def new_link_secret(self) -> tuple[str, str]:
        """(secret for the URL, digest to store). The digest is keyed: it never works as a bearer token."""
        secret = secrets.token_urlsafe(32)
        return secret, self.link_digest(secret)

    def link_digest(self, secret: str) -> str:
        return self._mac("link", secret.encode()).hex()


__all__ = [
    "LINK_TTL_S",
    "LOGIN_COOKIE",
    "SESSION_COOKIE",
    "SESSION_TTL_S",
    "Session",
    "Signer",
    "server_key",
]

"""The ``git`` operation: clone ``content.git`` with the git CLI.

Credentials never reach a command line, a log line or ``.git/config``: they travel in the git child's
environment and are handed to git through ``GIT_CONFIG_*`` (a credential helper that reads the env,
or an ``http.extraHeader`` for ``authType: header``) and a private key file for SSH. Transient
failures (network, 5xx) are retried with exponential back-off; anything else fails at once.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ._context import ToolkitError, ToolkitRun

DEFAULT_MOUNT = "/data/repo"
DEFAULT_RETRIES = 5
DEFAULT_DELAY_S = 1.0
MAX_DELAY_S = 60.0

_TRANSIENT = re.compile(
    r"could not resolve host|temporary failure in name resolution|connection (timed out|refused|reset)"
    r"|operation timed out|timed out|early eof|remote end hung up|rpc failed|returned error: 5\d\d"
    r"|http/2 stream|gnutls|ssl_|tls|internal server error|bad gateway|service unavailable"
    r"|gateway time-?out|unexpected disconnect|broken pipe|network is unreachable",
    re.IGNORECASE,
)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}

# The helper reads the credentials from its environment when git asks for them.
_CREDENTIAL_HELPER = (
    '!f() { test "$1" = get || exit 0; '
    'test -n "$SHOAL_GIT_USERNAME" && echo "username=$SHOAL_GIT_USERNAME"; '
    'test -n "$SHOAL_GIT_PASSWORD" && echo "password=$SHOAL_GIT_PASSWORD"; }; f'
)


def parse_duration(text: str | int | float | None, default: float) -> float:
    """Go-style duration (``1s``, ``500ms``, ``1m30s``) in seconds; a bare number is seconds."""
    if text is None or text == "":
        return default
    if isinstance(text, int | float):
        return float(text)
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    total = 0.0
    pos = 0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            raise ToolkitError(f"bad duration {text!r}")
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text):
        raise ToolkitError(f"bad duration {text!r}")
    return total


def redact_uri(uri: str) -> str:
    """The URI without any password or token embedded in it."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return uri
    if not parts.netloc or "@" not in parts.netloc:
        return uri
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    shown = f"{user}:****@{host}" if ":" in userinfo else f"****@{host}"
    return urlunsplit((parts.scheme, shown, parts.path, parts.query, parts.fragment))


@dataclass(slots=True)
class CloneOptions:
    uri: str
    dest: Path
    revision: str = ""
    username: str = ""
    token: str = ""
    ssh_key: str = ""
    auth_type: str = "basic"
    paths: list[str] = field(default_factory=list)
    cone: bool = False
    verbosity: str = "verbose"
    attempts: int = DEFAULT_RETRIES
    delay_s: float = DEFAULT_DELAY_S


class GitFailed(ToolkitError):
    def __init__(self, message: str, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


def options_from(spec: Mapping[str, Any], env: Mapping[str, str], dest: Path) -> CloneOptions:
    uri = str(spec.get("uri") or "")
    if not uri:
        raise ToolkitError("content.git.uri is required")
    retry = spec.get("retry") or {}
    attempts = int(retry.get("count", DEFAULT_RETRIES))
    if not 1 <= attempts <= 20:
        raise ToolkitError(f"content.git.retry.count must be between 1 and 20, not {attempts}")
    paths = spec.get("paths") or []
    auth_type = str(spec.get("authType") or "basic")
    if auth_type not in ("basic", "header"):
        raise ToolkitError(f"content.git.authType must be basic or header, not {auth_type!r}")
    return CloneOptions(
        uri=uri,
        dest=dest,
        revision=str(spec.get("revision") or ""),
        username=str(spec.get("username") or env.get("TK_GIT_USERNAME", "")),
        token=str(spec.get("token") or env.get("TK_GIT_TOKEN", "")),
        ssh_key=str(spec.get("sshKey") or env.get("TK_SSH_KEY", "")),
        auth_type=auth_type,
        paths=[str(p) for p in ([paths] if isinstance(paths, str) else paths)],
        cone=bool(spec.get("cone", False)),
        verbosity=str(spec.get("verbosity") or "verbose"),
        attempts=attempts,
        delay_s=parse_duration(retry.get("delay"), DEFAULT_DELAY_S),
    )


@dataclass(slots=True)
class _Git:
    env: dict[str, str]
    secrets: list[str]
    log: Callable[[str], None]

    def mask(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            if len(secret) >= 4:
                text = text.replace(secret, "****")
        return text

    def __call__(self, args: Sequence[str], cwd: Path | None = None) -> str:
        shown = " ".join(redact_uri(a) for a in args)
        self.log(self.mask(f"$ git {shown}"))
        proc = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            check=False,
        )
        out = self.mask(proc.stdout)
        for line in out.splitlines():
            if line.strip():
                self.log(line)
        if proc.returncode != 0:
            raise GitFailed(
                f"git {args[0]} failed with exit code {proc.returncode}", bool(_TRANSIENT.search(out))
            )
        return out


def _git_env(base: Mapping[str, str], opts: CloneOptions, key_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in base.items() if not k.startswith("GIT_CONFIG_")}
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["GIT_ASKPASS"] = "true"
    config: list[tuple[str, str]] = [("advice.detachedHead", "false")]
    if opts.token and opts.auth_type == "header":
        config.append(("http.extraHeader", f"Authorization: Bearer {opts.token}"))
    elif opts.username or opts.token:
        env["SHOAL_GIT_USERNAME"] = opts.username or ("oauth2" if opts.token else "")
        env["SHOAL_GIT_PASSWORD"] = opts.token
        config.append(("credential.helper", ""))
        config.append(("credential.helper", _CREDENTIAL_HELPER))
    if opts.ssh_key:
        key = key_dir / "id"
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(opts.ssh_key if opts.ssh_key.endswith("\n") else opts.ssh_key + "\n")
        known = key_dir / "known_hosts"
        env["GIT_SSH_COMMAND"] = (
            f"ssh -i '{key}' -o IdentitiesOnly=yes -o StrictHostKeyChecking=accept-new"
            f" -o UserKnownHostsFile='{known}'"
        )
    for i, (k, v) in enumerate(config):
        env[f"GIT_CONFIG_KEY_{i}"] = k
        env[f"GIT_CONFIG_VALUE_{i}"] = v
    env["GIT_CONFIG_COUNT"] = str(len(config))
    return env


def _clear(dest: Path) -> None:
    for child in dest.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _attempt(git: _Git, opts: CloneOptions, work: Path) -> None:
    quiet = ["-q"] if opts.verbosity == "quiet" else (["-v"] if opts.verbosity == "verbose" else [])
    dest = str(work)
    clone = ["clone", *quiet, "--no-checkout"]
    branch = ["--branch", opts.revision] if opts.revision else []
    try:
        # A branch, a tag or the default branch: one shallow fetch of just that ref.
        git([*clone, "--depth", "1", *branch, opts.uri, dest])
    except GitFailed as exc:
        if exc.transient:
            raise
        # A commit sha (or a server without shallow support): full history, then check it out.
        _clear(work)
        git([*clone, opts.uri, dest])
    if opts.paths:
        git(["-C", dest, "sparse-checkout", "set", "--cone" if opts.cone else "--no-cone", *opts.paths])
    target = opts.revision or "HEAD"
    git(["-C", dest, "checkout", *(["-q"] if opts.verbosity != "verbose" else []), target])


def clone(
    opts: CloneOptions,
    env: Mapping[str, str],
    log: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Clone with retries; raises ``ToolkitError`` when it finally fails.

    The clone happens in a scratch directory beside the destination and is then copied in (as
    Testkube does), so the destination may already exist and hold other files (mounted content).
    """
    opts.dest.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="shoal-git-") as key_dir,
        tempfile.TemporaryDirectory(prefix=".shoal-clone-", dir=opts.dest.parent) as scratch,
    ):
        work = Path(scratch)
        git = _Git(_git_env(env, opts, Path(key_dir)), [opts.token, opts.ssh_key], log)
        delay = opts.delay_s
        for attempt in range(1, opts.attempts + 1):
            try:
                _attempt(git, opts, work)
                break
            except GitFailed as exc:
                _clear(work)
                if not exc.transient or attempt == opts.attempts:
                    raise ToolkitError(f"{exc} (attempt {attempt} of {opts.attempts})") from exc
                log(f"transient failure, retrying in {delay:g}s (attempt {attempt} of {opts.attempts})")
                sleep(delay)
                delay = min(delay * 2, MAX_DELAY_S)
        shutil.copytree(work, opts.dest, symlinks=True, dirs_exist_ok=True)


def run_git(run: ToolkitRun) -> int:
    spec = run.resolved(run.spec)
    dest = run.host_path(str(spec.get("mountPath") or DEFAULT_MOUNT))
    opts = options_from(spec, run.env, dest)
    run.log(
        f"Cloning {redact_uri(opts.uri)} into {opts.dest}" + (f" at {opts.revision}" if opts.revision else "")
    )
    clone(opts, run.env, run.log)
    run.log("Repository cloned.")
    return 0

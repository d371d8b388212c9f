"""Local git repositories and a dumb-HTTP git server for the clone tests (no network)."""

from __future__ import annotations

import base64
import http.server
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
    "PATH": "/usr/local/bin:/usr/bin:/bin",
}


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, env=GIT_ENV, check=True, capture_output=True, text=True
    ).stdout.strip()


@dataclass
class Repo:
    path: Path
    first_sha: str

    @property
    def uri(self) -> str:
        return f"file://{self.path}"


def make_repo(root: Path) -> Repo:
    """main: a.txt, docs/readme.md, src/app/x.py; feature branch adds f.txt; tag v1 at the first commit."""
    src = root / "src-repo"
    src.mkdir()
    git(src, "init", "-q", "-b", "main")
    (src / "a.txt").write_text("first")
    git(src, "add", ".")
    git(src, "commit", "-q", "-m", "one")
    first = git(src, "rev-parse", "HEAD")
    git(src, "tag", "v1")
    (src / "a.txt").write_text("second")
    (src / "docs").mkdir()
    (src / "docs" / "readme.md").write_text("docs")
    (src / "src" / "app").mkdir(parents=True)
    (src / "src" / "app" / "x.py").write_text("x = 1")
    git(src, "add", ".")
    git(src, "commit", "-q", "-m", "two")
    git(src, "checkout", "-q", "-b", "feature")
    (src / "f.txt").write_text("feature")
    git(src, "add", ".")
    git(src, "commit", "-q", "-m", "feature")
    git(src, "checkout", "-q", "main")
    bare = root / "repo.git"
    git(root, "clone", "-q", "--bare", str(src), str(bare))
    git(bare, "update-server-info")
    return Repo(bare, first)


@dataclass
class Server:
    url: str
    requests: list[str] = field(default_factory=list)
    auth_headers: list[str] = field(default_factory=list)


@contextmanager
def dumb_http(
    root: Path,
    fail_first: int = 0,
    status: int = 503,
    basic: tuple[str, str] | None = None,
    bearer: str | None = None,
) -> Iterator[Server]:
    """Serve ``root`` read-only; the first ``fail_first`` requests get ``status``; optional auth."""
    state = {"left": fail_first}
    server_info = Server(url="")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: object, **kw: object) -> None:
            super().__init__(*a, directory=str(root), **kw)  # type: ignore[arg-type]

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            server_info.requests.append(self.path)
            auth = self.headers.get("Authorization", "")
            server_info.auth_headers.append(auth)
            if state["left"] > 0:
                state["left"] -= 1
                self.send_error(status)
                return
            if basic is not None:
                token = base64.b64encode(f"{basic[0]}:{basic[1]}".encode()).decode()
                if auth != f"Basic {token}":
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="git"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
            if bearer is not None and auth != f"Bearer {bearer}":
                self.send_error(403)
                return
            super().do_GET()

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server_info.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield server_info
    finally:
        httpd.shutdown()
        httpd.server_close()

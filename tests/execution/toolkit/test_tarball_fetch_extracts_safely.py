from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from tests.execution.toolkit.git_fixtures import dumb_http
from tests.execution.toolkit.toolkit_helpers import Execution


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], mode: str = "w:gz") -> None:
    with tarfile.open(path, mode) as tar:  # type: ignore[call-overload]
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)


def _file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


def test_gzip_tarball_is_extracted_into_the_path(execution: Execution, tmp_path: Path) -> None:
    served = tmp_path / "srv"
    served.mkdir()
    _tar(
        served / "a.tgz", [_file("dir/one.txt", b"one"), _file("two.txt", b"two"), _link("dir/l", "one.txt")]
    )
    _tar(served / "b.tar", [_file("plain.txt", b"plain")], mode="w")
    with dumb_http(served) as server:
        res = execution.run(
            "tarball",
            {
                "tarball": [
                    {"url": f"{server.url}/a.tgz", "path": "/data/x"},
                    {"url": f"{server.url}/b.tar", "path": "/data/y"},
                ]
            },
        )
    assert res.code == 0, res.output
    assert (execution.data / "x" / "dir" / "one.txt").read_text() == "one"
    assert (execution.data / "x" / "dir" / "l").read_text() == "one"
    assert (execution.data / "y" / "plain.txt").read_text() == "plain"


@pytest.mark.parametrize(
    ("member", "why"),
    [
        (_file("../escape.txt"), "'..'"),
        (_file("a/../../escape.txt"), "'..'"),
        (_file("/etc/evil"), "absolute name"),
        (_link("evil", "/etc/passwd"), "absolute path"),
        (_link("d/evil", "../../outside"), "outside the target"),
        (_link("hard", "../outside", tarfile.LNKTYPE), "outside the target"),
    ],
)
def test_hostile_members_are_refused(
    execution: Execution, tmp_path: Path, member: tuple[tarfile.TarInfo, bytes | None], why: str
) -> None:
    served = tmp_path / "srv"
    served.mkdir()
    _tar(served / "bad.tgz", [_file("ok.txt"), member])
    with dumb_http(served) as server:
        res = execution.run("tarball", {"url": f"{server.url}/bad.tgz", "path": "/data/t"})
    assert res.code == 1
    assert why in res.text
    assert not (execution.data / "t" / "ok.txt").exists()
    assert not (tmp_path / "escape.txt").exists()


def test_http_error_fails_the_stage(execution: Execution, tmp_path: Path) -> None:
    with dumb_http(tmp_path) as server:
        res = execution.run("tarball", {"url": f"{server.url}/missing.tgz", "path": "/data/t"})
    assert res.code == 1
    assert "HTTP 404" in res.text


def test_only_http_urls_are_fetched(execution: Execution) -> None:
    res = execution.run("tarball", {"url": "file:///etc/passwd", "path": "/data/t"})
    assert res.code == 1
    assert "only http(s)" in res.text

"""The blob stores: a local directory and a real S3-compatible server (moto in server mode)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from shoal.store import BlobStore, LocalBlobStore, NotFound, S3BlobStore, StoreError, normalize_key


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(params=["local", "s3"])
async def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BlobStore]:
    if request.param == "local":
        yield LocalBlobStore(tmp_path / "blobs")
    else:
        endpoint = request.getfixturevalue("moto_endpoint")
        yield S3BlobStore(f"b-{os.urandom(4).hex()}", endpoint_url=endpoint, prefix="shoal")


async def _stream(n: int, size: int) -> AsyncIterator[bytes]:
    for i in range(n):
        yield bytes([i % 256]) * size


async def test_put_get_list_delete(blobs: BlobStore) -> None:
    assert await blobs.put("executions/e1/artifacts/a.txt", b"hello") == 5
    size = await blobs.put("executions/e1/artifacts/big.bin", _stream(10, 100_000))
    assert size == 1_000_000
    assert await blobs.read("executions/e1/artifacts/a.txt") == b"hello"
    got = b"".join([c async for c in blobs.get("executions/e1/artifacts/big.bin")])
    assert len(got) == 1_000_000 and got[:1] == b"\x00" and got[-1:] == b"\x09"
    assert await blobs.exists("executions/e1/artifacts/a.txt")
    await blobs.put("executions/e2/events.jsonl.gz", b"x")
    assert [k for k, _ in await blobs.list("executions/e1/")] == [
        "executions/e1/artifacts/a.txt",
        "executions/e1/artifacts/big.bin",
    ]
    assert await blobs.delete_prefix("executions/e1/") == 2
    assert [k for k, _ in await blobs.list("executions/")] == ["executions/e2/events.jsonl.gz"]
    await blobs.delete("executions/e2/events.jsonl.gz")
    assert not await blobs.exists("executions/e2/events.jsonl.gz")
    with pytest.raises(NotFound):
        await blobs.read("executions/e2/events.jsonl.gz")


@pytest.mark.parametrize("key", ["../x", "/etc/passwd", "a//b", "a/./b", "a/../../b", "", "a\\b"])
def test_keys_cannot_escape(key: str) -> None:
    with pytest.raises(StoreError):
        normalize_key(key)


async def test_local_store_never_writes_outside_its_root(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "root")
    with pytest.raises(StoreError):
        await store.put("../outside", b"x")
    assert not (tmp_path / "outside").exists()

"""Blob stores for logs and artifacts: a local directory by default, S3-compatible when configured.

Keys are relative POSIX paths (``executions/<id>/artifacts/report.xml``); they are normalised and
may never escape the store (no ``..``, no absolute paths, no empty segments).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import posixpath
import tempfile
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import Any, Protocol

from shoal.store._errors import NotFound, StoreError

CHUNK = 256 * 1024


def normalize_key(key: str) -> str:
    """Return the canonical form of a blob key or raise StoreError when it could escape."""
    if not key or "\x00" in key or "\\" in key:
        raise StoreError(f"invalid blob key {key!r}")
    if key.startswith("/"):
        raise StoreError(f"invalid blob key {key!r}: absolute paths are not allowed")
    parts = key.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise StoreError(f"invalid blob key {key!r}: empty, '.' or '..' segments are not allowed")
    return posixpath.join(*parts)


class BlobStore(Protocol):
    async def put(self, key: str, data: bytes | AsyncIterable[bytes]) -> int: ...
    def get(self, key: str) -> AsyncIterator[bytes]: ...
    async def read(self, key: str) -> bytes: ...
    async def exists(self, key: str) -> bool: ...
    async def delete(self, key: str) -> None: ...
    async def delete_prefix(self, prefix: str) -> int: ...
    async def list(self, prefix: str = "") -> list[tuple[str, int]]: ...


async def _chunks_of(data: bytes | AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    if isinstance(data, bytes | bytearray | memoryview):
        view = memoryview(data)
        for i in range(0, len(view), CHUNK):
            yield bytes(view[i : i + CHUNK])
        return
    async for chunk in data:
        if chunk:
            yield chunk


class LocalBlobStore:
    """Files under a root directory; writes go to a temporary file renamed into place (atomic)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / normalize_key(key)

    async def put(self, key: str, data: bytes | AsyncIterable[bytes]) -> int:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        size = 0
        try:
            with os.fdopen(fd, "wb") as fh:
                async for chunk in _chunks_of(data):
                    await asyncio.to_thread(fh.write, chunk)
                    size += len(chunk)
                fh.flush()
                await asyncio.to_thread(os.fsync, fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return size

    async def get(self, key: str) -> AsyncIterator[bytes]:
        path = self._path(key)
        try:
            fh = open(path, "rb")  # noqa: SIM115 - closed in finally, across awaits
        except FileNotFoundError:
            raise NotFound(f"blob {key!r} not found") from None
        try:
            while chunk := await asyncio.to_thread(fh.read, CHUNK):
                yield chunk
        finally:
            fh.close()

    async def read(self, key: str) -> bytes:
        try:
            return await asyncio.to_thread(self._path(key).read_bytes)
        except FileNotFoundError:
            raise NotFound(f"blob {key!r} not found") from None

    async def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    async def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    async def delete_prefix(self, prefix: str) -> int:
        items = await self.list(prefix)
        for key, _size in items:
            self._path(key).unlink(missing_ok=True)
        base = self.root / normalize_key(prefix.rstrip("/")) if prefix.strip("/") else None
        if base is not None and base.is_dir():
            for d in sorted((p for p in base.rglob("*") if p.is_dir()), reverse=True):
                _rmdir_quiet(d)
            _rmdir_quiet(base)
        return len(items)

    async def list(self, prefix: str = "") -> list[tuple[str, int]]:
        def scan() -> list[tuple[str, int]]:
            out: list[tuple[str, int]] = []
            for dirpath, _dirs, files in os.walk(self.root):
                for name in files:
                    if name.startswith(".tmp-"):
                        continue
                    full = Path(dirpath) / name
                    key = full.relative_to(self.root).as_posix()
                    if key.startswith(prefix):
                        out.append((key, full.stat().st_size))
            return sorted(out)

        return await asyncio.to_thread(scan)


def _rmdir_quiet(path: Path) -> None:
    with contextlib.suppress(OSError):  # not empty: something was written meanwhile
        path.rmdir()


class S3BlobStore:
    """An S3-compatible bucket (AWS, MinIO, moto) through boto3 run in worker threads."""

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        prefix: str = "",
        create_bucket: bool = True,
    ) -> None:
        import boto3

        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.client: Any = boto3.client("s3", endpoint_url=endpoint_url, region_name=region or "us-east-1")
        self._create_bucket = create_bucket
        self._ready = False

    async def _ensure(self) -> None:
        if self._ready:
            return
        if self._create_bucket:
            from botocore.exceptions import ClientError

            try:
                await asyncio.to_thread(self.client.head_bucket, Bucket=self.bucket)
            except ClientError:
                await asyncio.to_thread(self.client.create_bucket, Bucket=self.bucket)
        self._ready = True

    def _key(self, key: str) -> str:
        return self.prefix + normalize_key(key)

    async def put(self, key: str, data: bytes | AsyncIterable[bytes]) -> int:
        await self._ensure()
        full = self._key(key)
        if isinstance(data, bytes | bytearray | memoryview):
            body = bytes(data)
            await asyncio.to_thread(self.client.put_object, Bucket=self.bucket, Key=full, Body=body)
            return len(body)
        # Stream through a spooled temporary file so memory stays bounded, then one upload call.
        size = 0
        with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as tmp:
            async for chunk in _chunks_of(data):
                tmp.write(chunk)
                size += len(chunk)
            tmp.seek(0)
            await asyncio.to_thread(self.client.upload_fileobj, tmp, self.bucket, full)
        return size

    async def get(self, key: str) -> AsyncIterator[bytes]:
        await self._ensure()
        from botocore.exceptions import ClientError

        try:
            obj = await asyncio.to_thread(self.client.get_object, Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            raise NotFound(f"blob {key!r} not found") from exc
        body = obj["Body"]
        try:
            while chunk := await asyncio.to_thread(body.read, CHUNK):
                yield chunk
        finally:
            body.close()

    async def read(self, key: str) -> bytes:
        return b"".join([c async for c in self.get(key)])

    async def exists(self, key: str) -> bool:
        await self._ensure()
        from botocore.exceptions import ClientError

        try:
            await asyncio.to_thread(self.client.head_object, Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError:
            return False

    async def delete(self, key: str) -> None:
        await self._ensure()
        await asyncio.to_thread(self.client.delete_object, Bucket=self.bucket, Key=self._key(key))

    async def delete_prefix(self, prefix: str) -> int:
        items = await self.list(prefix)
        for i in range(0, len(items), 1000):
            batch = [{"Key": self.prefix + k} for k, _ in items[i : i + 1000]]
            await asyncio.to_thread(self.client.delete_objects, Bucket=self.bucket, Delete={"Objects": batch})
        return len(items)

    async def list(self, prefix: str = "") -> list[tuple[str, int]]:
        await self._ensure()

        def scan() -> list[tuple[str, int]]:
            out: list[tuple[str, int]] = []
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for obj in page.get("Contents", []):
                    out.append((obj["Key"][len(self.prefix) :], int(obj["Size"])))
            return sorted(out)

        return await asyncio.to_thread(scan)


def blob_store_from_env(home: Path) -> BlobStore:
    """S3 when SHOAL_S3_BUCKET is set (SHOAL_S3_ENDPOINT for MinIO/moto), else ``home/blobs``."""
    bucket = os.environ.get("SHOAL_S3_BUCKET")
    if bucket:
        return S3BlobStore(
            bucket,
            endpoint_url=os.environ.get("SHOAL_S3_ENDPOINT") or None,
            region=os.environ.get("SHOAL_S3_REGION") or None,
            prefix=os.environ.get("SHOAL_S3_PREFIX", ""),
        )
    return LocalBlobStore(home / "blobs")

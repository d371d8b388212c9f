"""Image configs are read over the OCI distribution API: bearer challenge, pull-secret credentials,
manifest lists resolved to the platform, cached by digest, and clear errors naming the image."""

from __future__ import annotations

import base64
import json

import pytest

from shoal.kube import (
    ImageInspector,
    ImageMetadataError,
    ImageRef,
    credentials_from_dockerconfig,
    dockerconfig_from_secret,
)
from tests.kube.registry import serve_registry


async def test_anonymous_bearer_challenge_and_manifest_list_pick_the_platform() -> None:
    with serve_registry(bearer=True) as reg:
        reg.add_image("team/tool", "1.0", entrypoint=["/bin/tool"], cmd=["--help"], workdir="/work", user="1000",
                      platforms=("linux/arm64", "linux/amd64"))
        config = await ImageInspector().inspect(f"{reg.host}/team/tool:1.0")
        assert config.entrypoint == ["/bin/tool"]
        assert config.cmd == ["--help"]
        assert config.working_dir == "/work"
        assert config.user == "1000"
        assert any(p.startswith("/token") for p in reg.requests)
        arm = await ImageInspector(platform="linux/arm64").inspect(f"{reg.host}/team/tool:1.0")
        assert arm.digest != config.digest


async def test_configs_are_cached_by_digest() -> None:
    with serve_registry() as reg:
        digest = reg.add_image("app", "v1", entrypoint=["/app"])
        inspector = ImageInspector()
        first = await inspector.inspect(f"{reg.host}/app:v1")
        count = len(reg.requests)
        again = await inspector.inspect(f"{reg.host}/app:v1")
        by_digest = await inspector.inspect(f"{reg.host}/app@{digest}")
        assert again == first == by_digest
        assert len(reg.requests) == count  # no request for a known tag or digest


async def test_private_registry_uses_dockerconfigjson_credentials() -> None:
    with serve_registry(bearer=True, users={"robot": "s3cret"}) as reg:
        reg.add_image("private/app", "v2", entrypoint=["/run.sh"])
        image = f"{reg.host}/private/app:v2"
        with pytest.raises(ImageMetadataError) as info:
            await ImageInspector().inspect(image)
        assert image in str(info.value) and "imagePullSecret" in str(info.value)
        doc = {"auths": {f"http://{reg.host}": {"auth": base64.b64encode(b"robot:s3cret").decode()}}}
        secret = {"type": "kubernetes.io/dockerconfigjson",
                  "data": {".dockerconfigjson": base64.b64encode(json.dumps(doc).encode()).decode()}}
        parsed = dockerconfig_from_secret(secret)
        assert parsed is not None
        creds = credentials_from_dockerconfig([parsed])
        config = await ImageInspector().inspect(image, creds)
        assert config.entrypoint == ["/run.sh"]


async def test_unknown_images_and_unreachable_registries_name_the_image() -> None:
    with serve_registry() as reg:
        with pytest.raises(ImageMetadataError) as info:
            await ImageInspector().inspect(f"{reg.host}/missing:1")
        assert "not found" in str(info.value) and "missing:1" in str(info.value)
        host = reg.host
    with pytest.raises(ImageMetadataError) as info:
        await ImageInspector(timeout=2).inspect(f"{host}/gone:1")
    assert f"{host}/gone:1" in str(info.value) and "cannot reach the registry" in str(info.value)


def test_image_references_default_to_docker_hub_library() -> None:
    assert ImageRef.parse("busybox") == ImageRef("registry-1.docker.io", "library/busybox", "latest")
    assert ImageRef.parse("docker.io/grafana/k6:0.49") == ImageRef("registry-1.docker.io", "grafana/k6", "0.49")
    assert ImageRef.parse("localhost:5000/a/b@sha256:" + "0" * 64).reference == "sha256:" + "0" * 64
    with pytest.raises(ImageMetadataError):
        ImageRef.parse("Bad Image")


async def test_the_node_platform_picks_the_manifest_and_is_part_of_the_cache_key() -> None:
    with serve_registry() as reg:
        reg.add_image("multi", "1", entrypoint=["/x"], platforms=("linux/amd64", "linux/arm64"))
        inspector = ImageInspector()
        amd = await inspector.inspect(f"{reg.host}/multi:1")
        arm = await inspector.inspect(f"{reg.host}/multi:1", platform="linux/arm64")
        assert amd.digest != arm.digest
        count = len(reg.requests)
        assert await inspector.inspect(f"{reg.host}/multi:1", platform="linux/arm64") == arm
        assert len(reg.requests) == count
        with pytest.raises(ImageMetadataError) as info:
            await inspector.inspect(f"{reg.host}/multi:1", platform="linux/s390x")
        assert "linux/s390x" in str(info.value) and "linux/arm64" in str(info.value)

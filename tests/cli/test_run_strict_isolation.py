"""`shoal run --isolation strict`: steps still write the workspace paths, but the host is read-only
and there is no network (loopback only)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .run_helpers import execution, shoal_run, write_workflow


def test_strict_run_cannot_touch_the_host_or_the_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host_file = tmp_path / "host-file"
    wf = write_workflow(
        tmp_path / "wf.yaml",
        "  - name: workspace is writable\n    shell: echo ok > /data/ok && echo ok > /tmp/ok\n"
        f"  - name: host is not\n    shell: '! touch {host_file}'\n"
        "  - name: loopback only\n    shell: |\n      test \"$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ')\" = lo\n",
    )
    code, out, err = shoal_run([str(wf), "-o", "json", "--isolation", "strict"], tmp_path / "h", monkeypatch)
    assert code == 0, err
    assert execution(out)["result"]["status"] == "passed"
    assert not host_file.exists()

"""content.files are written before the first container (mode honoured), pod volumes are mounted at
their volumeMounts (emptyDir shared by steps, hostPath from the host), and what cannot exist locally
fails the execution at initialization with a clear message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .local_helpers import logs, run, steps_by_name


def test_files_land_where_steps_look_with_their_mode(tmp_path: Path) -> None:
    outcome, events = run(
        {
            "content": {
                "files": [
                    {"path": "/data/tool.sh", "content": "#!/bin/sh\necho tool ran\n", "mode": 0o755},
                    {"path": "/shoal-config/app.json", "content": '{"a": 1}'},
                ]
            },
            "steps": [{"name": "use", "shell": "/data/tool.sh && cat /shoal-config/app.json && echo"}],
        },
        tmp_path,
    )
    assert outcome.status == "passed", outcome.execution["result"]
    assert logs(events) == ["tool ran", '{"a": 1}']
    assert not Path("/shoal-config").exists()


def test_empty_dir_and_host_path_volumes(tmp_path: Path) -> None:
    host = tmp_path / "host-dir"
    outcome, _ = run(
        {
            "pod": {
                "volumes": [
                    {"name": "scratch", "emptyDir": {}},
                    {"name": "host", "hostPath": {"path": str(host)}},
                ]
            },
            "container": {
                "volumeMounts": [
                    {"name": "scratch", "mountPath": "/scratch"},
                    {"name": "host", "mountPath": "/from-host"},
                ]
            },
            "steps": [
                {"name": "write", "shell": "echo shared > /scratch/f && echo out > /from-host/g"},
                {"name": "read", "container": {"image": "debian"}, "shell": "grep -qx shared /scratch/f"},
            ],
        },
        tmp_path,
    )
    assert outcome.status == "passed", outcome.execution["result"]
    assert (host / "g").read_text() == "out\n"


def _init_failure(spec: dict[str, Any], tmp_path: Path) -> str:
    outcome, _ = run(spec, tmp_path)
    assert outcome.status == "failed"
    init = outcome.execution["result"]["initialization"]
    assert init["status"] == "failed"
    assert all(s["status"] == "skipped" for s in steps_by_name(outcome).values())
    return str(init["errorMessage"])


def test_a_config_map_volume_fails_at_initialization_unless_optional(tmp_path: Path) -> None:
    def spec(optional: bool) -> dict[str, Any]:
        return {
            "pod": {"volumes": [{"name": "cfg", "configMap": {"name": "app-config", "optional": optional}}]},
            "container": {"volumeMounts": [{"name": "cfg", "mountPath": "/cfg"}]},
            "steps": [{"name": "look", "shell": 'test -d /cfg && test -z "$(ls -A /cfg)"'}],
        }

    message = _init_failure(spec(False), tmp_path / "a")
    assert "app-config" in message and "optional" in message
    outcome, _ = run(spec(True), tmp_path / "b")
    assert outcome.status == "passed", outcome.execution["result"]


def test_a_file_the_host_cannot_take_fails_at_initialization(tmp_path: Path) -> None:
    message = _init_failure(
        {
            "content": {"files": [{"path": "/usr/shoal-no-such-dir/x.txt", "content": "x"}]},
            "steps": [{"name": "s", "shell": "true"}],
        },
        tmp_path,
    )
    assert "/usr/shoal-no-such-dir/x.txt" in message
    assert not Path("/usr/shoal-no-such-dir").exists()

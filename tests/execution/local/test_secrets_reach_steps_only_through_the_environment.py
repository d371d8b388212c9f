"""A sensitive config value reaches the step (through the environment), is masked in its output,
and is written nowhere in the workspace in clear."""

from __future__ import annotations

import hashlib
from pathlib import Path

from .local_helpers import logs, run

SECRET = "s3cr3t-value-for-shoal"


def test_sensitive_config_is_never_stored_in_clear(tmp_path: Path) -> None:
    outcome, events = run(
        {
            "config": {"token": {"type": "string", "sensitive": True}},
            "steps": [
                {
                    "name": "use",
                    "shell": 'printf %s "{{ config.token }}" | sha256sum | cut -c1-64 > /data/hash\n'
                    'echo "token={{ config.token }}"',
                }
            ],
        },
        tmp_path,
        config={"token": SECRET},
    )
    assert outcome.status == "passed", outcome.execution["result"]
    assert any("token=" in line for line in logs(events))
    assert not any(SECRET in line for line in logs(events))
    workspace = Path(outcome.execution["workspace"])
    assert (workspace / "data" / "hash").read_text().strip() == hashlib.sha256(SECRET.encode()).hexdigest()
    for path in workspace.rglob("*"):
        if path.is_file() and not path.is_symlink() and path.name != "busybox":
            assert SECRET.encode() not in path.read_bytes(), path

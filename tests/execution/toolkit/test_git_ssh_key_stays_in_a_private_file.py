from __future__ import annotations

import os
from pathlib import Path

from tests.execution.toolkit.toolkit_helpers import Execution

# Stands for ssh: records how git called it and what the key file looked like, then fails like an
# unreachable host would not (a plain refusal), so the clone fails without retries.
FAKE_SSH = """#!/bin/sh
key=""
while [ $# -gt 0 ]; do
  case "$1" in -i) key="$2"; shift;; esac
  shift
done
{ echo "key=$key"; stat -c "mode=%a" "$key"; cat "$key"; } > "$SSH_RECORD"
echo "Permission denied (publickey)." >&2
exit 255
"""


def test_ssh_key_is_written_0600_used_with_identities_only_and_removed(
    execution: Execution, tmp_path: Path
) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    ssh = bindir / "ssh"
    ssh.write_text(FAKE_SSH)
    ssh.chmod(0o755)
    record = tmp_path / "record"
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----"
    res = execution.run(
        "git",
        {"uri": "ssh://git@example.invalid/repo.git", "retry": {"count": 1}},
        env={"TK_SSH_KEY": key, "PATH": f"{bindir}:{os.environ['PATH']}", "SSH_RECORD": str(record)},
    )
    assert res.code == 1
    lines = record.read_text().splitlines()
    key_file = lines[0].removeprefix("key=")
    assert lines[1] == "mode=600"
    assert "\n".join(lines[2:]) == key
    assert not Path(key_file).exists()
    assert "abc" not in res.output

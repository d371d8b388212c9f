"""Reading results back: logs as text, SSE resumable from a seq, WebSocket, artifacts one by one and
as a tar.gz archive."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import httpx
from websockets.sync.client import connect

from tests.agent.fakes import ScriptedRuntime
from tests.agent.fleet import Fleet, call, eventually, finished
from tests.harness import RunningServer

WF = """\
apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata: {name: smoke}
spec:
  steps:
  - {name: first, shell: "echo one"}
"""


async def test_sse_resumes_after_a_seq_and_websocket_streams_to_the_end(
    server: RunningServer, fleet: Fleet, tmp_path: Path
) -> None:
    client = server.client()
    await call(client.apply, WF)
    fleet.start("solo", {}, ScriptedRuntime(lines=5, artifacts_root=tmp_path / "arts"))
    ex = (await call(client.run, "smoke"))[0]
    await eventually(lambda: finished(client, [ex["id"]]), what="the run")
    everything = [e for e in await call(lambda: list(client.follow(ex["id"])))]
    assert everything[-1] == {"type": "end", "status": "passed"}
    seqs = [e["seq"] for e in everything[:-1]]
    assert seqs == list(range(1, len(seqs) + 1))
    later = await call(lambda: list(client.follow(ex["id"], after=seqs[3])))
    assert [e["seq"] for e in later[:-1]] == seqs[4:]

    def sse_with_last_event_id() -> list[int]:
        headers = {"Authorization": f"Bearer {server.admin_token}", "Last-Event-ID": str(seqs[-2])}
        with httpx.stream(
            "GET", f"{server.url}/v1/test-workflow-executions/{ex['id']}/notifications", headers=headers
        ) as r:
            return [int(line[4:]) for line in r.iter_lines() if line.startswith("id: ")]

    assert await call(sse_with_last_event_id) == [seqs[-1]]

    def websocket_frames() -> list[dict[str, object]]:
        url = (
            server.url.replace("http://", "ws://")
            + f"/v1/test-workflow-executions/{ex['id']}/notifications/stream"
        )
        frames = []
        with connect(
            url + "?after=2", additional_headers={"Authorization": f"Bearer {server.admin_token}"}
        ) as ws:
            for text in ws:
                frames.append(json.loads(text))
        return frames

    frames = await call(websocket_frames)
    assert frames[0]["seq"] == 3 and frames[-1] == {"type": "end", "status": "passed"}
    text = await call(client.logs, ex["id"])
    assert text.splitlines() == [f"first line {i}" for i in range(1, 6)]

    await eventually(lambda: client.artifacts(ex["id"]), what="the artifact upload")
    dest = tmp_path / "dl"
    assert await call(client.download_artifact, ex["id"], "report.txt", dest / "report.txt") > 0
    assert (dest / "report.txt").read_text() == f"report of {ex['id']}\n"
    size = await call(client.download_archive, ex["id"], dest / "all.tar.gz")
    assert size > 0
    with tarfile.open(fileobj=io.BytesIO((dest / "all.tar.gz").read_bytes())) as tar:
        member = tar.extractfile("report.txt")
        assert member is not None and member.read() == f"report of {ex['id']}\n".encode()
    client.close()


async def test_a_websocket_without_a_valid_token_is_refused(server: RunningServer) -> None:
    def attempt() -> int | None:
        url = server.url.replace("http://", "ws://") + "/v1/test-workflow-executions/x/notifications/stream"
        try:
            with connect(url, additional_headers={"Authorization": "Bearer nope"}) as ws:
                ws.recv()
        except Exception as exc:  # closed by the server before or right after the handshake
            return getattr(getattr(exc, "rcvd", None), "code", None) or getattr(
                getattr(exc, "response", None), "status_code", None
            )
        return None

    assert await call(attempt) in (403, 4401, 4403, 4404)

"""Every page renders what the store holds: agents with labels, runs that pass and fail, queued runs."""

from __future__ import annotations

import json

from tests.agent.fakes import ScriptedRuntime
from tests.agent.fleet import Fleet, call, eventually, finished
from tests.dashboard.conftest import FAILING_WF, WF, csrf_of, sign_in
from tests.harness import RunningServer


async def test_environment_workflows_and_execution_pages_show_agents_runs_and_steps(
    server: RunningServer, fleet: Fleet
) -> None:
    api = server.client()
    await call(api.apply, WF)
    await call(api.apply, FAILING_WF)
    for name in ("a", "b", "c"):
        fleet.start(f"agent-{name}", {"cluster": f"pr-{name}"}, ScriptedRuntime(lines=3))
    await eventually(lambda: len([a for a in api.agents() if a["status"] == "online"]) == 3, what="3 agents")
    group = await call(api.run, "smoke", replicate=["cluster"], config={"password": "hunter2"})
    failed = await call(api.run, "broken")
    queued = await call(api.run, "smoke", match={"cluster": ["nowhere"]})
    ids = [e["id"] for e in group + failed]
    await eventually(lambda: finished(api, ids), what="runs to finish")

    web = await call(sign_in, server.url, server.admin_token)
    env = (await call(web.get, "/dashboard/envs/default")).text
    for name in ("agent-a", "agent-b", "agent-c"):
        assert f'data-agent="{name}"' in env
    assert "pr-b" in env and "no online agent matches cluster=nowhere" in env
    assert queued[0]["name"] in env

    wfs = (await call(web.get, "/dashboard/envs/default/workflows")).text
    assert 'data-workflow="smoke"' in wfs and 'data-workflow="broken"' in wfs
    assert "Latest per cluster" in wfs and '<svg class="trend"' in wfs
    only_failed = (await call(web.get, "/dashboard/envs/default/workflows", params={"status": "failed"})).text
    assert 'data-workflow="broken"' in only_failed and 'data-workflow="smoke"' not in only_failed
    by_label = (
        await call(web.get, "/dashboard/envs/default/workflows", params={"label": "cluster=pr-a"})
    ).text
    assert "pr-a" in by_label and "pr-b" not in by_label

    page = (await call(web.get, f"/dashboard/envs/default/executions/{group[0]['id']}")).text
    assert "hunter2" not in page and "password" in page and "eu-west-1" in page
    for step in ("checkout", "unit", "integration"):
        assert step in page
    for sibling in group:
        assert sibling["name"] in page  # the replicated runs side by side

    bad = (await call(web.get, f"/dashboard/envs/default/executions/{failed[0]['id']}")).text
    assert 'data-status="failed"' in bad
    detail = await call(web.get, "/dashboard/envs/default/workflows/smoke")
    assert detail.status_code == 200 and "pr-c" in detail.text
    web.close()
    api.close()


async def test_the_event_stream_replays_logs_and_step_changes_then_ends(
    server: RunningServer, fleet: Fleet
) -> None:
    api = server.client()
    await call(api.apply, FAILING_WF)
    fleet.start("solo", {"cluster": "pr-1"}, ScriptedRuntime(lines=4))
    ex = (await call(api.run, "broken"))[0]
    await eventually(lambda: finished(api, [ex["id"]]), what="the run")
    web = await call(sign_in, server.url, server.admin_token)
    url = f"/dashboard/envs/default/executions/{ex['id']}/events"

    def read(headers: dict[str, str]) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        with web.stream("GET", url, headers=headers) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            kind = ""
            for line in r.iter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    out.append((kind, line[6:]))
        return out

    every = await call(read, {})
    lines = [row[2] for kind, data in every if kind == "log" for row in json.loads(data)]
    assert lines == [f"{s} line {i}" for s in ("prepare", "fail-on-purpose") for i in range(1, 5)]
    steps = [json.loads(data)["status"] for kind, data in every if kind == "step"]
    assert "failed" in steps and every[-1] == ("end", '{"status": "failed"}')
    last_log_seq = max(row[0] for kind, data in every if kind == "log" for row in json.loads(data))
    resumed = await call(read, {"Last-Event-ID": str(last_log_seq)})
    assert [k for k, _ in resumed if k == "log"] == [] and resumed[-1][0] == "end"
    web.close()
    api.close()


async def test_run_again_creates_a_new_execution_and_opens_it(server: RunningServer, fleet: Fleet) -> None:
    api = server.client()
    await call(api.apply, WF)
    fleet.start("solo", {"cluster": "pr-1"}, ScriptedRuntime(lines=1))
    first = (await call(api.run, "smoke", config={"region": "us-east-2"}))[0]
    await eventually(lambda: finished(api, [first["id"]]), what="the first run")
    web = await call(sign_in, server.url, server.admin_token)
    page = await call(web.get, f"/dashboard/envs/default/executions/{first['id']}")
    r = await call(
        web.post, f"/dashboard/envs/default/executions/{first['id']}/rerun", data={"csrf": csrf_of(page.text)}
    )
    assert r.status_code == 303
    new_id = r.headers["location"].rsplit("/", 1)[-1]
    assert new_id != first["id"]
    again = await eventually(lambda: finished(api, [new_id]), what="the rerun")
    assert again[0]["name"] == "smoke-2" and again[0]["configParams"]["region"]["value"] == "us-east-2"
    web.close()
    api.close()

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import httpx

from shoal.execution._toolkit._probes import free_port
from shoal.execution._toolkit._services import run_services_start, run_services_stop, supervise
from shoal.workflow._plan import Plan, Stage
from tests.execution.toolkit.fake_subplans import ScriptInstances, ShellRunner
from tests.execution.toolkit.toolkit_helpers import Execution, Result, parse_markers

FAST = {"SHOAL_SERVICE_GRACE": "0.3", "SHOAL_SERVICE_STOP_WAIT": "10"}
HTTP_SERVER = f"exec {sys.executable} -m http.server $SERVICE_PORT --bind $SERVICE_IP"


def services_plan(services: dict[str, Any], stop: dict[str, Any] | None = None) -> Plan:
    return Plan(
        workflow="wf",
        root="root",
        stages={
            "root": Stage(ref="root", kind="group", children=["rstart", "rstop"]),
            "rstart": Stage(ref="rstart", kind="services-start", parent="root", spec={"services": services}),
            "rstop": Stage(ref="rstop", kind="services-stop", parent="root", spec=stop or {}),
        },
        signature=[],
        containers=[],
    )


class Harness:
    def __init__(
        self,
        execution: Execution,
        services: dict[str, Any],
        scripts: dict[str, list[tuple[str, dict[str, Any]]]],
        stop: dict[str, Any] | None = None,
    ):
        self.execution = execution
        self.plan = services_plan(services, stop)
        self.source = ScriptInstances(services_=scripts)
        self.runner = ShellRunner()
        self.threads: list[threading.Thread] = []

    def launch(self, directory: Path) -> None:
        t = threading.Thread(
            target=supervise, args=(directory, self.runner, self.execution.env(FAST)), daemon=True
        )
        t.start()
        self.threads.append(t)

    def start(self) -> Result:
        run, out = self.execution.load_plan(self.plan, "services-start", "rstart", env=FAST)
        code = run_services_start(run, self.source, self.runner, self.launch)
        return Result(code, out.getvalue(), parse_markers(out.getvalue()))

    def stop(self) -> Result:
        run, out = self.execution.load_plan(self.plan, "services-stop", "rstop", env=FAST)
        code = run_services_stop(run)
        for t in self.threads:
            t.join(10)
        return Result(code, out.getvalue(), parse_markers(out.getvalue()))


def test_http_probe_waits_then_publishes_ip_and_port(execution: Execution) -> None:
    probe = {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 0.05, "failureThreshold": 200}
    h = Harness(execution, {"web": {"readinessProbe": probe}}, {"web": [(HTTP_SERVER, {})]})
    started = h.start()
    assert started.code == 0, started.output
    [marker] = started.named("service")
    assert marker["status"] == "ready"
    assert marker["ip"].startswith("127.") and marker["ip"] != "127.0.0.1"
    published = execution.shoal_dir / "state" / "services" / "web" / "0"
    assert (published / "ip").read_text() == marker["ip"]
    assert int((published / "port").read_text()) == marker["port"]
    stopped = h.stop()
    assert stopped.code == 0, stopped.output
    assert stopped.named("artifact") == []  # logs are not kept by default


def test_instances_get_distinct_addresses(execution: Execution) -> None:
    probe = {"tcpSocket": {"port": "service"}, "periodSeconds": 0.05, "failureThreshold": 200}
    h = Harness(execution, {"db": {"readinessProbe": probe}}, {"db": [(HTTP_SERVER, {}), (HTTP_SERVER, {})]})
    started = h.start()
    assert started.code == 0, started.output
    ips = {m["index"]: m["ip"] for m in started.named("service")}
    assert len(ips) == 2 and ips[0] != ips[1]
    assert h.stop().code == 0


def test_probe_failures_reaching_the_threshold_fail_start(execution: Execution) -> None:
    closed = free_port()
    probe = {"tcpSocket": {"port": closed}, "periodSeconds": 0.01, "failureThreshold": 2}
    h = Harness(execution, {"broken": {"readinessProbe": probe}}, {"broken": [("sleep 30", {})]})
    started = h.start()
    assert started.code == 1
    assert "readiness probe failed 2 times" in started.text
    assert started.named("service")[0]["status"] == "failed"
    for t in h.threads:
        t.join(10)
        assert not t.is_alive()  # the failed start stopped the instance


def test_exec_probe_runs_in_the_service_data_dir(execution: Execution) -> None:
    probe = {"exec": {"command": ["test", "-f", "ready"]}, "periodSeconds": 0.02, "failureThreshold": 500}
    h = Harness(
        execution, {"svc": {"readinessProbe": probe}}, {"svc": [("sleep 0.1; touch ready; sleep 30", {})]}
    )
    started = h.start()
    assert started.code == 0, started.output
    assert h.stop().code == 0


def test_service_exiting_non_zero_before_ready_fails_start(execution: Execution) -> None:
    h = Harness(execution, {"bad": {"logs": "always"}}, {"bad": [("echo expected failure; exit 1", {})]})
    started = h.start()
    assert started.code == 1
    assert "exited (failed) before it was ready" in started.text
    assert "expected failure" in started.text


def test_without_probe_alive_after_grace_is_ready_and_logs_always_are_kept(execution: Execution) -> None:
    h = Harness(execution, {"s": {"logs": "always"}}, {"s": [("echo started; sleep 30", {})]})
    assert h.start().code == 0
    stopped = h.stop()
    assert stopped.code == 0, stopped.output
    assert [a["name"] for a in stopped.named("artifact")] == ["logs/services/s-0.log"]
    assert "started" in (execution.artifacts / "logs" / "services" / "s-0.log").read_text()


def test_stop_fails_when_a_service_died_with_an_error(execution: Execution) -> None:
    script = "touch ready; while [ ! -e die ]; do sleep 0.01; done; exit 2"
    probe = {"exec": {"command": ["test", "-f", "ready"]}, "periodSeconds": 0.02, "failureThreshold": 500}
    h = Harness(execution, {"s": {"readinessProbe": probe}}, {"s": [(script, {})]})
    started = h.start()
    assert started.code == 0, started.output
    data = h.runner.jobs[0].workspace / "data"
    (data / "die").write_text("")
    status = execution.shoal_dir / "state" / "supervisors" / "rstart" / "s-0.status.json"
    for _ in range(500):
        if '"failed"' in (status.read_text() if status.exists() else ""):
            break
        threading.Event().wait(0.01)
    stopped = h.stop()
    assert stopped.code == 1
    assert "had already ended: failed" in stopped.text


def test_restart_policy_on_failure_restarts_until_it_stays_up(execution: Execution) -> None:
    script = (
        "c=$DATA/../../count; echo x >> $c; [ $(wc -l < $c) -ge 3 ] || exit 1; touch $DATA/../../ok; sleep 30"
    )
    probe = {"exec": {"command": ["test", "-f", "../../ok"]}, "periodSeconds": 0.02, "failureThreshold": 1000}
    h = Harness(
        execution, {"s": {"readinessProbe": probe, "restartPolicy": "OnFailure"}}, {"s": [(script, {})]}
    )
    started = h.start()
    assert started.code == 0, started.output
    assert h.stop().code == 0
    status = execution.shoal_dir / "state" / "supervisors" / "rstart" / "s-0.status.json"
    assert '"restarts": 2' in status.read_text()


def test_transfer_copies_files_into_each_instance_before_start(execution: Execution) -> None:
    (execution.data / "fixtures").mkdir()
    (execution.data / "fixtures" / "seed.sql").write_text("select 1")
    spec = {"transfer": [{"from": "/data/fixtures", "to": "/data/init"}]}
    h = Harness(execution, {"db": spec}, {"db": [("test -f init/seed.sql || exit 1; sleep 30", {})]})
    assert h.start().code == 0
    assert h.stop().code == 0


def test_logs_condition_of_the_stop_stage_decides(execution: Execution) -> None:
    h = Harness(
        execution,
        {"s": {}},
        {"s": [("echo hi; sleep 30", {})]},
        stop={"services": ["s"], "logs": {"s": "passed"}},
    )
    assert h.start().code == 0
    stopped = h.stop()
    assert [a["name"] for a in stopped.named("artifact")] == ["logs/services/s-0.log"]


def test_a_service_on_its_usual_port_is_reached_at_its_own_address(execution: Execution) -> None:
    usual = free_port()  # stands for nginx's 80: fixed, all interfaces
    server = f"exec {sys.executable} -m http.server {usual}"
    probe = {"tcpSocket": {"port": usual}, "periodSeconds": 0.05, "failureThreshold": 200}
    h = Harness(execution, {"nginx": {"readinessProbe": probe}}, {"nginx": [(server, {})]})
    started = h.start()
    assert started.code == 0, started.output
    ip = started.named("service")[0]["ip"]
    assert httpx.get(f"http://{ip}:{usual}/").status_code == 200
    assert h.stop().code == 0


def test_a_supervisor_that_dies_fails_start_at_once(execution: Execution) -> None:
    from shoal.execution._toolkit._services import spawn_supervisor

    h = Harness(execution, {"s": {}}, {"s": [("sleep 30", {})]})
    run, out = execution.load_plan(
        h.plan, "services-start", "rstart", env={**FAST, "SHOAL_SERVICE_GRACE": "30"}
    )
    # A supervisor that cannot even start: python without its standard library.
    launcher = spawn_supervisor({**run.env, "PYTHONHOME": "/nonexistent"})
    code = run_services_start(run, h.source, h.runner, launcher)
    assert code == 1
    assert "supervisor exited" in out.getvalue()


def test_a_retried_start_replaces_the_earlier_attempt(execution: Execution) -> None:
    h = Harness(execution, {"s": {}}, {"s": [("echo attempt; sleep 30", {})]})
    assert h.start().code == 0
    first = h.threads[0]
    assert h.start().code == 0  # the stage again (retry): the first supervisor is stopped
    first.join(10)
    assert not first.is_alive()
    assert h.stop().code == 0

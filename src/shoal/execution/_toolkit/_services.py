"""``services-start`` / ``services-stop``: background service instances around a step.

Start and stop are two toolkit invocations, so the instances are owned by a **supervisor** that
outlives ``services-start``: a detached process (``python -m shoal.execution._toolkit._services
<dir>``) that runs every instance as a sub-plan and records each one's state in its directory
``$SHOAL_DIR/state/supervisors/<start ref>/``. It stops everything on SIGTERM, on a ``stop`` file,
or when the execution is over (``$SHOAL_WORKSPACE/execution.json`` exists).

Locally, each instance gets a loopback address of its own (``SERVICE_IP``, in 127.0.0.0/8) and a free
port on it (``SERVICE_PORT``) in its environment. A service listening on its usual port on all interfaces is
reached at ``SERVICE_IP:<usual port>`` (so ``http://{{ services.web.0.ip }}/`` works as in a cluster
when one instance listens); several instances should bind ``$SERVICE_IP`` (or ``$SERVICE_PORT``).
Once ready, ``services.<name>.<index>.ip`` and ``.port`` are published as files ``$SHOAL_DIR/state/services/<name>/<index>/{ip,port,description}`` (and in
``$SHOAL_DIR/state/services.json``) for later steps.

Inside a Kubernetes execution (``SHOAL_RUNTIME=kubernetes``) every instance is a Job and Pod of its own
(``KubernetesSubPlans``): its address is its pod's IP (reported by the runner as an ``address`` record),
probes go from this pod to that IP (``httpGet`` and ``tcpSocket`` with a numeric port; ``exec`` probes
would have to run inside the service's container and are refused), and no ``SERVICE_IP``/``SERVICE_PORT``
is set. The supervisor lives in the container that started the services: when that container ends first,
the Jobs run on, and ``services-stop`` finds each one by its labels, stops it and collects its whole log.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from shoal.execution._local import process_start_time
from shoal.workflow._plan import EnvVar, Plan

from ._context import SERVICE, ToolkitError, ToolkitRun
from ._git import parse_duration
from ._probes import ProbeTiming, free_port, loopback_ip, run_probe
from ._subplans import (
    InstanceSource,
    LineSink,
    SubJob,
    SubPlanRunner,
    children_root,
    condition_holds,
    default_subplans,
    secrets_for,
    sub_execution_id,
    transfer_into,
)

DEFAULT_GRACE_S = 3.0  # no probe: alive this long after start counts as ready (SHOAL_SERVICE_GRACE)
DEFAULT_TIMEOUT_S = 600.0
STOP_WAIT_S = 30.0
POLL_S = 0.02
RESTART_BACKOFF_S = 0.1  # restartPolicy OnFailure: first delay, doubled up to the cap
RESTART_BACKOFF_MAX_S = 10.0

Launcher = Callable[[Path], None]


class Reclaimer(Protocol):
    def reclaim(self, execution_id: str, workspace: Path, on_line: LineSink) -> tuple[str, bool]:
        """Find an instance left running by a supervisor that is gone, stop it if it still runs and
        replay its whole log into ``on_line``: ``(final status, whether it was still running)``."""
        ...


def pod_addresses(runner: SubPlanRunner) -> bool:
    """Whether the runner gives each instance an address of its own (a pod IP) that it reports."""
    return bool(getattr(runner, "pod_addresses", False))


def supervisor_dir(shoal_dir: Path, start_ref: str) -> Path:
    return shoal_dir / "state" / "supervisors" / start_ref


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@dataclass(slots=True)
class Slot:
    """One service instance as the supervisor and the two stages see it."""

    name: str
    index: int
    ip: str
    port: int
    execution_id: str
    workspace: str
    data: str
    description: str

    @property
    def key(self) -> str:
        return f"{self.name}-{self.index}"


# ------------------------------------------------------------------------------------------ supervisor


def supervise(directory: Path, runner: SubPlanRunner, env: Mapping[str, str]) -> None:
    """Run every instance listed in ``directory/instances.json`` until each ends or a stop is asked."""
    spec = json.loads((directory / "instances.json").read_text())
    cancel = threading.Event()
    workspace_done = Path(env["SHOAL_WORKSPACE"]) / "execution.json" if env.get("SHOAL_WORKSPACE") else None
    secrets = {k: v for k, v in env.items() if k in set(spec.get("secret_names", []))}

    def one(item: dict[str, Any]) -> None:
        slot = Slot(**item["slot"])
        status_file = directory / f"{slot.key}.status.json"
        restart = item.get("restartPolicy") == "OnFailure"
        plan = Plan.from_dict(item["plan"])
        attempt = 0
        backoff = RESTART_BACKOFF_S
        with (directory / f"{slot.key}.log").open("w", encoding="utf-8") as log:

            def on_line(line: str) -> None:
                log.write(line + "\n")
                log.flush()

            known: dict[str, Any] = {}  # what this attempt reported: its address, that it started

            def on_record(kind: str, value: dict[str, Any]) -> None:
                if kind == "started":  # the service's own process runs: probes may start
                    known["started"] = True
                elif kind == "address":  # its pod's IP (Kubernetes)
                    known["ip"] = str(value.get("ip") or "")
                else:
                    return
                _write_json(status_file, {"status": "running", "restarts": attempt, **known})

            while True:
                known.clear()
                _write_json(status_file, {"status": "running", "restarts": attempt})
                # A restart is a fresh execution (its own id and workspace), as a restarted container is.
                suffix = f"-r{attempt}" if attempt else ""
                job = SubJob(slot.execution_id + suffix, plan, Path(slot.workspace + suffix), secrets)
                try:
                    if attempt:
                        runner.prepare(job)
                    status = runner.run(job, on_line, cancel, on_record)
                except Exception as exc:  # recorded; the other instances go on
                    log.write(f"runtime error: {exc}\n")
                    status = "failed"
                if not restart or status == "passed" or cancel.is_set():
                    break
                attempt += 1
                log.write(f"--- restarting after {status} (restart {attempt}) ---\n")
                if cancel.wait(backoff):
                    break
                backoff = min(backoff * 2, RESTART_BACKOFF_MAX_S)
        _write_json(status_file, {"status": status, "stopped": cancel.is_set(), "restarts": attempt})

    def watch() -> None:
        while not cancel.is_set():
            if (directory / "stop").exists() or (workspace_done is not None and workspace_done.exists()):
                cancel.set()
            cancel.wait(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    items = spec["instances"]
    with ThreadPoolExecutor(max_workers=max(1, len(items))) as pool:
        for future in [pool.submit(one, item) for item in items]:
            future.result()
    cancel.set()
    (directory / "done").write_text("")


def spawn_supervisor(env: Mapping[str, str]) -> Launcher:
    """Production launcher: a detached process, in its own session, logging into its directory."""

    def launch(directory: Path) -> None:
        with (directory / "supervisor.log").open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "shoal.execution._toolkit._services", str(directory)],
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        _write_json(directory / "pid.json", {"pid": proc.pid, "start": process_start_time(proc.pid)})

    return launch


# ------------------------------------------------------------------------------------------ start


def _with_address(plan: Plan, ip: str, port: int) -> Plan:
    for stage in plan.stages.values():
        if stage.kind != "group":
            stage.env = [e for e in stage.env if e.name not in ("SERVICE_IP", "SERVICE_PORT")]
            stage.env.append(EnvVar(name="SERVICE_IP", value=ip))
            stage.env.append(EnvVar(name="SERVICE_PORT", value=str(port)))
    return plan


def _publish(run: ToolkitRun, slot: Slot) -> None:
    base = run.state_dir / "services" / slot.name / str(slot.index)
    base.mkdir(parents=True, exist_ok=True)
    (base / "ip").write_text(slot.ip)
    if slot.port:
        (base / "port").write_text(str(slot.port))
    (base / "description").write_text(slot.description)
    index_file = run.state_dir / "services.json"
    data = _read_json(index_file) or {}
    entries = data.setdefault(slot.name, [])
    while len(entries) <= slot.index:
        entries.append(None)
    entry: dict[str, Any] = {"ip": slot.ip, "description": slot.description}
    if slot.port:
        entry["port"] = slot.port
    entries[slot.index] = entry
    _write_json(index_file, data)


def _instance_state(directory: Path, slot: Slot) -> dict[str, Any]:
    return _read_json(directory / f"{slot.key}.status.json") or {"status": "queued"}


def _await_ready(
    run: ToolkitRun, directory: Path, slot: Slot, spec: Mapping[str, Any], pods: bool = False
) -> tuple[bool, str]:
    """Wait for one instance: probe success, or alive after the grace window without a probe.
    With ``pods``, the instance's address is its pod's IP, known once the supervisor heard it."""
    timeout_s = parse_duration(spec.get("timeout"), DEFAULT_TIMEOUT_S)
    deadline = time.monotonic() + timeout_s
    probe = spec.get("readinessProbe")
    env = {**run.env, "SERVICE_IP": slot.ip, "SERVICE_PORT": str(slot.port)}

    def ended() -> str | None:
        state = _instance_state(directory, slot)
        status = str(state.get("status"))
        return status if status not in ("queued", "running") else None

    def started() -> bool:
        state = _instance_state(directory, slot)
        if pods and state.get("ip"):
            slot.ip = str(state["ip"])
        return bool(state.get("started")) and (bool(slot.ip) or not pods)

    def pause(seconds: float) -> str | None:
        until = min(deadline, time.monotonic() + seconds)
        while time.monotonic() < until:
            status = ended()
            if status is not None:
                return status
            time.sleep(POLL_S)
        return ended()

    # Like a pod's probes, the clock starts when the service's process does, not when it is requested.
    while not started():
        status = ended()
        if status is not None:
            return (
                (True, "finished")
                if status == "passed"
                else (False, f"exited ({status}) before it was ready")
            )
        if time.monotonic() >= deadline:
            return False, f"not started after {timeout_s:g}s"
        if _supervisor_gone(directory):
            return False, f"its supervisor exited (see {directory / 'supervisor.log'})"
        time.sleep(POLL_S)

    if not probe:
        grace = float(run.env.get("SHOAL_SERVICE_GRACE", DEFAULT_GRACE_S))
        status = pause(grace)
        if status is None or status == "passed":
            return True, "" if status is None else "finished"
        return False, f"exited ({status}) before it was ready"
    timing = ProbeTiming.of(probe)
    status = pause(timing.initial_delay_s)
    failures = 0
    why = ""
    while True:
        if status is not None and status != "passed":
            return False, f"exited ({status}) before it was ready"
        if time.monotonic() >= deadline:
            return False, f"not ready after {timeout_s:g}s: {why}"
        ok, why = run_probe(probe, slot.port, env, Path(slot.data), slot.ip)
        if ok:
            return True, ""
        failures += 1
        if failures >= timing.failure_threshold:
            return False, f"readiness probe failed {failures} times: {why}"
        status = pause(timing.period_s)


def _check_remote_probe(name: str, probe: Any) -> None:
    """From this pod, a probe can only reach the service's pod over the network."""
    if not probe:
        return
    if "exec" in probe:
        raise ToolkitError(
            f"services.{name}.readinessProbe.exec: an exec probe runs inside the service's container, "
            "which the toolkit cannot do on Kubernetes; use httpGet or tcpSocket (they reach the pod's IP)"
        )
    for kind in ("httpGet", "tcpSocket"):
        port = (probe.get(kind) or {}).get("port") if kind in probe else None
        if kind in probe and not str(port if port is not None else "").strip().isdigit():
            raise ToolkitError(
                f"services.{name}.readinessProbe.{kind}.port: expected the port number the service listens "
                f"on, got {port!r} (on Kubernetes there is no SERVICE_PORT a name could stand for)"
            )


def run_services_start(
    run: ToolkitRun,
    source: InstanceSource | None = None,
    runner: SubPlanRunner | None = None,
    launcher: Launcher | None = None,
) -> int:
    from ._subplans import CompilerInstances

    source = source or CompilerInstances()
    runner = runner or default_subplans(run.env)
    launcher = launcher or spawn_supervisor(run.env)
    services: dict[str, Any] = run.spec.get("services") or {}
    pods = pod_addresses(runner)
    if pods:
        for name, spec in services.items():
            _check_remote_probe(name, (spec or {}).get("readinessProbe"))
    directory = supervisor_dir(run.shoal_dir, run.ref)
    if directory.exists():  # an earlier attempt of this stage (retry): its services go first
        _stop(run, directory)
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    root = children_root(run)
    slots: list[tuple[Slot, dict[str, Any]]] = []
    items: list[dict[str, Any]] = []
    for name in services:
        for inst in source.services(run, name):
            if pods:  # known once its pod has one
                ip, port = "", 0
            else:
                ip = loopback_ip(f"{run.env.get('SHOAL_EXECUTION_ID', '')}/{run.ref}/{name}", inst.index)
                port = free_port(ip)
            slot = Slot(
                name=name,
                index=inst.index,
                ip=ip,
                port=port,
                execution_id=sub_execution_id(run, f"{name}-", inst.index),
                workspace=str(root / f"{run.ref}-{name}-{inst.index}"),
                data="",
                description=inst.description,
            )
            plan = inst.plan if pods else _with_address(inst.plan, ip, port)
            job = SubJob(slot.execution_id, plan, Path(slot.workspace))
            mounts = runner.prepare(job)
            slot.data = str(mounts.host("/data"))
            transfer_into(run, inst.spec, mounts, f"{name} #{inst.index}:")
            slots.append((slot, inst.spec))
            items.append(
                {
                    "slot": _slot_dict(slot),
                    "plan": job.plan.to_dict(),
                    "restartPolicy": inst.spec.get("restartPolicy") or "Never",
                }
            )
            where = "in a pod of its own" if pods else f"on {ip} (SERVICE_PORT {port})"
            run.log(f"Starting service {name} #{inst.index} {where}")
    _write_json(
        directory / "instances.json",
        {"instances": items, "secret_names": sorted(secrets_for(run))},
    )
    launcher(directory)
    with ThreadPoolExecutor(max_workers=max(1, len(slots))) as pool:
        results = list(pool.map(lambda s: _await_ready(run, directory, s[0], s[1], pods), slots))
    failed = False
    for (slot, _spec), (ok, why) in zip(slots, results, strict=True):
        if ok:
            _publish(run, slot)
            run.log(f"Service {slot.name} #{slot.index} is ready at {slot.ip}")
        else:
            failed = True
            run.log(f"Service {slot.name} #{slot.index} failed: {why}")
            _print_log(run, directory, slot)
        _emit_service(run, slot, "ready" if ok else "failed")
    if failed:
        _stop(run, directory)
        return 1
    return 0


def _emit_service(run: ToolkitRun, slot: Slot, status: str) -> None:
    run.emit(
        SERVICE, {"name": slot.name, "index": slot.index, "ip": slot.ip, "port": slot.port, "status": status}
    )


def _slot_dict(slot: Slot) -> dict[str, Any]:
    return {f: getattr(slot, f) for f in Slot.__slots__}


def _print_log(run: ToolkitRun, directory: Path, slot: Slot) -> None:
    log = directory / f"{slot.key}.log"
    with contextlib.suppress(OSError):
        for line in log.read_text(errors="replace").splitlines()[-50:]:
            run.log(f"[{slot.name} #{slot.index}] {line}")


# ------------------------------------------------------------------------------------------ stop


def _supervisor_pid(directory: Path) -> int | None:
    """The supervisor's pid if that process still runs (same pid *and* start time: pids are reused,
    and a later container may live in another pid namespace)."""
    info = _read_json(directory / "pid.json")
    if not isinstance(info, dict) or not isinstance(info.get("pid"), int):
        return None
    pid = int(info["pid"])
    if info.get("start") is None or process_start_time(pid) != info.get("start") or _is_zombie(pid):
        return None
    return pid


def _is_zombie(pid: int) -> bool:
    """Exited but not reaped yet (the launching toolkit is its parent and never waits for it)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return True
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] in (b"Z", b"X")


def _supervisor_gone(directory: Path) -> bool:
    """A supervisor process was launched and is no longer there, without having finished."""
    return (
        (directory / "pid.json").exists()
        and not (directory / "done").exists()
        and _supervisor_pid(directory) is None
    )


def _stop(run: ToolkitRun, directory: Path) -> None:
    """Ask the supervisor to stop every instance (TERM then KILL by the runtime) and wait for it."""
    (directory / "stop").write_text("")
    pid = _supervisor_pid(directory)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    in_process = not (directory / "pid.json").exists()  # an in-process supervisor (tests, embedding)
    deadline = time.monotonic() + float(run.env.get("SHOAL_SERVICE_STOP_WAIT", STOP_WAIT_S))
    while not (directory / "done").exists() and time.monotonic() < deadline:
        if not in_process and _supervisor_pid(directory) is None:
            break  # gone (finished, killed, or in a pid namespace that no longer exists)
        time.sleep(POLL_S)
    if not (directory / "done").exists() and pid is not None and _supervisor_pid(directory) == pid:
        run.log("services did not stop in time: killing them")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


def _start_ref(run: ToolkitRun) -> str:
    explicit = run.spec.get("start")
    if explicit:
        return str(explicit)
    parent = run.stage.parent
    candidates = [
        s.ref for s in run.plan.stages.values() if s.kind == "services-start" and s.parent == parent
    ]
    if len(candidates) != 1:
        raise ToolkitError(f"cannot tell which services stage {run.ref} stops (found {candidates})")
    return candidates[0]


def run_services_stop(run: ToolkitRun) -> int:
    start_ref = _start_ref(run)
    directory = supervisor_dir(run.shoal_dir, start_ref)
    listing = _read_json(directory / "instances.json")
    if listing is None:
        run.log("No services were started.")
        return 0
    start_stage = run.plan.stages.get(start_ref)
    specs: dict[str, Any] = (start_stage.spec.get("services") if start_stage else None) or {}
    logs: dict[str, Any] = {n: (s or {}).get("logs") for n, s in specs.items()}
    logs.update(run.spec.get("logs") or {})
    _stop(run, directory)
    orphans = _reclaimer(run, directory)
    failed = False
    for item in listing["instances"]:
        slot = Slot(**item["slot"])
        state = _instance_state(directory, slot)
        status = str(state.get("status"))
        if orphans is not None and status in ("queued", "running"):
            run.log(f"Service {slot.name} #{slot.index} outlived its supervisor: stopping it where it runs")
            status, stopped = _reclaim(orphans, directory, slot, state)
            state = {"status": status, "stopped": stopped}
        died = status not in ("passed", "queued", "running") and not state.get("stopped")
        final = "failed" if died else "passed"
        if died:
            failed = True
            run.log(f"Service {slot.name} #{slot.index} had already ended: {status}")
        else:
            run.log(f"Service {slot.name} #{slot.index} stopped")
        _emit_service(run, slot, final)
        # Service logs are not kept unless the `logs` condition says so.
        if condition_holds(logs.get(slot.name) or "never", final):
            log = directory / f"{slot.key}.log"
            name = f"logs/services/{slot.key}.log"
            dest = run.artifacts_dir / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            if log.exists():
                dest.write_bytes(log.read_bytes())
                run.emit("artifact", {"name": name, "size": dest.stat().st_size})
    return 1 if failed else 0


def _reclaimer(run: ToolkitRun, directory: Path) -> Reclaimer | None:
    """The runner that can take over instances whose supervisor ended before stopping them (its
    container ended: the instances' Jobs run on), when there are such instances."""
    if (directory / "done").exists():
        return None
    runner = default_subplans(run.env)
    return runner if hasattr(runner, "reclaim") else None  # type: ignore[return-value]


def _reclaim(runner: Reclaimer, directory: Path, slot: Slot, state: Mapping[str, Any]) -> tuple[str, bool]:
    """Stop one orphaned instance (its latest attempt) and put its whole log where the supervisor
    kept it: ``(status, stopped by us)``."""
    attempt = int(state.get("restarts") or 0)
    suffix = f"-r{attempt}" if attempt else ""
    with (directory / f"{slot.key}.log").open("w", encoding="utf-8") as log:

        def on_line(line: str) -> None:
            log.write(line + "\n")

        try:
            status, running = runner.reclaim(slot.execution_id + suffix, Path(slot.workspace + suffix), on_line)
        except Exception as exc:  # said in the log and the result; the other instances go on
            log.write(f"cannot stop this instance: {exc}\n")
            return f"unknown ({exc})", False
    return ("passed" if running else status), running


def _main(argv: list[str]) -> int:
    directory = Path(argv[0])
    env = dict(os.environ)

    def on_term(signum: int, frame: Any) -> None:
        del signum, frame
        (directory / "stop").write_text("")

    signal.signal(signal.SIGTERM, on_term)
    supervise(directory, default_subplans(env), env)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))

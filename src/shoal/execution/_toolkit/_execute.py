"""The ``execute`` operation: run other workflows as child executions and wait for them.

Each ``workflows[]`` entry (by ``name``, or ``selector.matchLabels``) expands into instances with the
compiler's ``expand_instances``; its ``config`` is bound to the instance variables. At most
``parallelism`` children run at once; the stage fails if any child does not pass. With ``async`` the
children are started detached and the stage passes at once.

Starting a child and waiting for it goes through ``ChildRunner``; locally the children are compiled
from the workflow bundle named by ``SHOAL_BUNDLE`` (files or directories, ``os.pathsep``-separated;
default ``$SHOAL_DIR/bundle``) and run by the local runtime. A control-plane implementation can
replace it.
"""

from __future__ import annotations

import base64
import contextlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ._context import ARTIFACT, EXECUTE, ToolkitError, ToolkitRun, bind
from ._parallel import abort_on_sigterm
from ._subplans import children_root, copy_tree, file_globs, instance_variables

DEFAULT_PARALLELISM = 100


@dataclass(slots=True)
class ChildRequest:
    workflow: str
    config: dict[str, str] = field(default_factory=dict)
    execution_id: str = ""
    execution_name: str = ""
    workspace: str = ""
    parent_id: str = ""  # the calling execution (running context actor: testworkflowexecution)
    parent_workflow: str = ""
    environment: str = ""  # another environment of the organisation (control plane only)
    target: dict[str, Any] = field(default_factory=dict)  # {match, not, replicate} (control plane only)


class TarballServer:
    """Serves packed ``tarball`` files to the children over HTTP on 127.0.0.1 while the stage runs
    (Testkube serves them from the parent pod the same way)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        served = str(directory)

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=served, **kwargs)

            def log_message(self, format: str, *args: Any) -> None:
                del format, args

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def pack(self, name: str, source: Path, patterns: list[str]) -> str:
        """Pack the files of ``source`` matching ``patterns`` as ``name``.tar.gz; its URL."""
        staging = self.directory / f".{name}"
        copy_tree(source, patterns, staging)
        archive = self.directory / f"{name}.tar.gz"
        with tarfile.open(archive, "w:gz") as tar:
            for path in sorted(staging.rglob("*")):
                if path.is_file():
                    tar.add(str(path), arcname=str(path.relative_to(staging)), recursive=False)
        shutil.rmtree(staging, ignore_errors=True)
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{archive.name}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


StatusSink = Callable[[str], None]


class ChildRunner(Protocol):
    def workflows(self, selector: Mapping[str, str], environment: str = "") -> list[str]:
        """Names of the workflows whose labels match ``selector`` (matchLabels)."""
        ...

    def run(self, request: ChildRequest, on_status: StatusSink, cancel: threading.Event) -> str:
        """Run the child to its end; report status changes; the final status."""
        ...

    def detach(self, request: ChildRequest) -> None:
        """Start the child and return at once (``async``)."""
        ...


class LocalChildren:
    """Children compiled from the bundle ``SHOAL_BUNDLE`` and run by the local runtime."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)

    def _bundle(self) -> Any:
        from shoal.workflow import WorkflowError, load_bundle

        paths = [p for p in self.env.get("SHOAL_BUNDLE", "").split(os.pathsep) if p]
        if not paths and self.env.get("SHOAL_DIR"):
            default = Path(self.env["SHOAL_DIR"]) / "bundle"
            paths = [str(default)] if default.is_dir() else []
        if not paths:
            raise ToolkitError(
                "execute needs the workflow bundle: set SHOAL_BUNDLE or fill $SHOAL_DIR/bundle"
            )
        try:
            return load_bundle(paths)
        except WorkflowError as exc:
            raise ToolkitError(str(exc)) from exc

    def workflows(self, selector: Mapping[str, str], environment: str = "") -> list[str]:
        if environment:
            raise ToolkitError(
                f"execute: environment {environment!r} needs the control plane (run this workflow through an agent)"
            )
        found: list[str] = []
        for doc in self._bundle().workflows:
            labels = ((doc.data or {}).get("metadata") or {}).get("labels") or {}
            if all(str(labels.get(k)) == str(v) for k, v in selector.items()) and doc.name:
                found.append(str(doc.name))
        return sorted(found)

    def run(self, request: ChildRequest, on_status: StatusSink, cancel: threading.Event) -> str:
        if request.environment:
            raise ToolkitError(
                f"{request.workflow}: environment {request.environment!r} needs the control plane "
                "(run this workflow through an agent)"
            )
        from shoal.execution._local import LocalRuntime, run_plan
        from shoal.execution._runtime import ExecutionJob
        from shoal.workflow import ExecutionContext, WorkflowError, compile_workflow

        bundle = self._bundle()
        try:
            doc = bundle.workflow(request.workflow)
            actor = {
                "type": "testworkflowexecution",
                "name": request.parent_workflow,
                "executionId": request.parent_id,
                "executionPath": request.parent_id,
            }
            context = ExecutionContext(
                id=request.execution_id,
                name=request.execution_name,
                running_context={"actor": actor, "interface": {"type": "internal"}},
            )
            compiled = compile_workflow(doc, bundle.templates, request.config, context)
        except WorkflowError as exc:
            on_status("failed")
            raise ToolkitError(f"{request.workflow}: {exc}") from exc
        last = [""]

        def on_event(event: Any) -> None:
            if event.type == "status" and event.status and event.status != last[0]:
                last[0] = str(event.status)
                on_status(last[0])

        outcome = run_plan(
            ExecutionJob(
                execution_id=request.execution_id,
                plan=compiled.plan,
                secrets=compiled.secrets,
                workspace=Path(request.workspace) if request.workspace else None,
                name=request.execution_name or None,
            ),
            runtime=LocalRuntime.from_env(self.env),
            on_event=on_event,
            cancel=cancel,
        )
        return outcome.status

    def detach(self, request: ChildRequest) -> None:
        subprocess.Popen(
            [sys.executable, "-m", "shoal.execution._toolkit._execute", json.dumps(asdict(request))],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )


def requests_for(
    run: ToolkitRun, children: ChildRunner, tarballs: Callable[[], TarballServer] | None = None
) -> list[ChildRequest]:
    """Every child execution of the stage, in order, with its config bound to its instance.

    ``tarballs`` gives the server that packs and serves ``workflows[].tarball`` entries.
    """
    from shoal.workflow import WorkflowError, expand_instances

    base = instance_variables(run)
    parent = run.env.get("SHOAL_EXECUTION_ID") or run.plan.workflow
    root = children_root(run)
    out: list[ChildRequest] = []
    for n, entry in enumerate(run.spec.get("workflows") or []):
        if entry.get("name"):
            names = [str(entry["name"])]
        else:
            selector = (entry.get("selector") or {}).get("matchLabels") or {}
            if not selector:
                raise ToolkitError(f"execute.workflows[{n}] needs a name or selector.matchLabels")
            names = children.workflows(selector, str(entry.get("environment") or ""))
        try:
            instances = expand_instances(entry, base)
        except WorkflowError as exc:
            raise ToolkitError(str(exc)) from exc
        for name in names:
            for variables in instances:
                scope = {**base, **variables}
                packed: dict[str, dict[str, str]] = {}
                for key, item in (entry.get("tarball") or {}).items():
                    if tarballs is None:
                        raise ToolkitError("execute.workflows[].tarball needs the children to be awaited")
                    item = bind(item, scope)
                    source = str(item.get("from") or "")
                    if not source:
                        raise ToolkitError(f"execute.workflows[{n}].tarball.{key}.from is required")
                    url = tarballs().pack(f"{len(out)}-{key}", run.host_path(source), file_globs(item))
                    packed[str(key)] = {"url": url}
                    scope[f"tarball.{key}.url"] = url
                if packed:
                    scope["tarball"] = packed
                config = {str(k): str(bind(v, scope)) for k, v in (entry.get("config") or {}).items()}
                k = len(out)
                out.append(
                    ChildRequest(
                        workflow=name,
                        config=config,
                        execution_id=f"{parent}-{run.ref}-{k}",
                        execution_name=str(bind(entry.get("executionName") or "", scope)),
                        workspace=str(root / f"{run.ref}-execute-{k}"),
                        parent_id=parent,
                        parent_workflow=run.plan.workflow,
                        environment=str(entry.get("environment") or ""),
                        target=dict(entry.get("target") or {}),
                    )
                )
    return out


class RemoteChildren:
    """Children started through the control plane, when the execution runs under an agent.

    Uses the execution token the server handed to the agent (the rights of whoever started the parent,
    at most a runner's): the child runs in its own environment on the agents its target picks, its log
    lines stream into this step as they come, and its artifacts are copied into this execution under
    ``<child name>/`` — so the results survive the child environment's deletion.
    """

    def __init__(self, run: ToolkitRun) -> None:
        self.run_ = run
        data = control_plane_of(run.env)
        if data is None:
            raise ToolkitError("execute through the control plane: SHOAL_CONTROL_PLANE is missing or invalid")
        self.server = str(data["server"])
        self.token = str(data["token"])
        self.environment = str(data.get("environment") or "default")
        self.parents = [str(p) for p in data.get("parents") or []]

    def _client(self, environment: str) -> Any:
        from shoal.client import Client

        return Client(self.server, self.token, environment or self.environment)

    def workflows(self, selector: Mapping[str, str], environment: str = "") -> list[str]:
        from shoal.client import ClientError

        text = ",".join(f"{k}={v}" for k, v in selector.items())
        try:
            with self._client(environment) as c:
                return sorted(str(w["metadata"]["name"]) for w in c.workflows(text))
        except ClientError as exc:
            raise ToolkitError(f"cannot list workflows in {environment or self.environment}: {exc}") from exc

    def run(self, request: ChildRequest, on_status: StatusSink, cancel: threading.Event) -> str:
        from shoal.client import ClientError

        environment = request.environment or self.environment
        target = request.target or {}
        try:
            with self._client(environment) as c:
                created = c.run(
                    request.workflow,
                    config=request.config,
                    match=target.get("match") or None,
                    not_=target.get("not") or None,
                    replicate=target.get("replicate") or (),
                    running_context={
                        "interface": {"type": "internal"},
                        "actor": {
                            "type": "testworkflowexecution",
                            "name": request.parent_workflow,
                            "executionId": request.parent_id,
                            "executionPath": "/".join(self.parents),
                        },
                    },
                    parent_ids=self.parents,
                    name=request.execution_name or None,
                )
                statuses = [self._follow(c, child, on_status, cancel) for child in created]
                for child in created:
                    self._copy_artifacts(c, child)
        except ClientError as exc:
            raise ToolkitError(f"{request.workflow} in {environment}: {exc}") from exc
        return (
            "passed"
            if statuses and all(s == "passed" for s in statuses)
            else (statuses[-1] if statuses else "failed")
        )

    def detach(self, request: ChildRequest) -> None:
        """``async``: create the child executions and return; the control plane runs them."""
        from shoal.client import ClientError

        target = request.target or {}
        try:
            with self._client(request.environment) as c:
                c.run(
                    request.workflow,
                    config=request.config,
                    match=target.get("match") or None,
                    not_=target.get("not") or None,
                    replicate=target.get("replicate") or (),
                    parent_ids=self.parents,
                    name=request.execution_name or None,
                )
        except ClientError as exc:
            raise ToolkitError(
                f"{request.workflow} in {request.environment or self.environment}: {exc}"
            ) from exc

    def _follow(self, c: Any, child: dict[str, Any], on_status: StatusSink, cancel: threading.Event) -> str:
        name = str(child["name"])
        watcher = threading.Thread(target=self._abort_on_cancel, args=(c, child["id"], cancel), daemon=True)
        watcher.start()
        on_status("queued")
        last = ""
        for event in c.follow(child["id"]):
            kind = event.get("type")
            if kind == "log":
                self.run_.log(f"[{name}] {event.get('line', '')}")
            elif kind == "status" and event.get("status") and event.get("status") != last:
                last = str(event["status"])
                on_status(last)
            elif kind == "end":
                return str(event.get("status"))
        return str(c.execution(child["id"])["result"]["status"])

    def _abort_on_cancel(self, c: Any, execution_id: str, cancel: threading.Event) -> None:
        from shoal.client import Client, ClientError

        if cancel.wait():
            with Client(self.server, self.token, c.environment) as other, contextlib.suppress(ClientError):
                other.control(execution_id, "abort")

    def _copy_artifacts(self, c: Any, child: dict[str, Any]) -> None:
        name = str(child["name"])
        for art in c.artifacts(child["id"]):
            relative = f"{name}/{art['name']}"
            dest = (self.run_.artifacts_dir / relative).resolve()
            if not dest.is_relative_to(self.run_.artifacts_dir.resolve()):
                self.run_.log(f"skipping artifact {art['name']!r} of {name}: its name escapes the directory")
                continue
            size = c.download_artifact(child["id"], art["name"], dest)
            self.run_.emit(ARTIFACT, {"name": relative, "size": size})


def control_plane_of(env: Mapping[str, str]) -> dict[str, Any] | None:
    """The agent's hand-over (``SHOAL_CONTROL_PLANE``: base64 JSON of server, token, environment,
    parent ids), or None when the execution does not run under an agent."""
    raw = env.get("SHOAL_CONTROL_PLANE")
    if not raw:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(raw.encode()))
    except (ValueError, TypeError):
        return None
    return data if isinstance(data, dict) and data.get("server") and data.get("token") else None


def default_children(run: ToolkitRun) -> ChildRunner:
    """Through the control plane under an agent (it handed over a token), else the local bundle."""
    if control_plane_of(run.env) is not None:
        return RemoteChildren(run)
    return LocalChildren(run.env)


def run_execute(run: ToolkitRun, children: ChildRunner | None = None) -> int:
    children = children or default_children(run)
    is_async = bool(run.spec.get("async"))
    server: list[TarballServer] = []

    def tarballs() -> TarballServer:
        if not server:
            server.append(TarballServer(children_root(run) / f"{run.ref}-tarballs"))
        return server[0]

    try:
        requests = requests_for(run, children, None if is_async else tarballs)
        if not requests:
            run.log("No workflows to execute.")
            return 0
        if is_async:
            for i, req in enumerate(requests):
                children.detach(req)
                run.log(f"{req.workflow} ({req.execution_id}) started")
                run.emit(
                    EXECUTE,
                    {"index": i, "workflow": req.workflow, "id": req.execution_id, "status": "queued"},
                )
            return 0
        return _await_children(run, children, requests)
    finally:
        for s in server:
            s.close()


def _await_children(run: ToolkitRun, children: ChildRunner, requests: list[ChildRequest]) -> int:
    parallelism = max(1, int(run.spec.get("parallelism") or DEFAULT_PARALLELISM))
    cancel = threading.Event()
    statuses: dict[int, str] = {}

    def one(i: int, req: ChildRequest) -> None:
        def on_status(status: str) -> None:
            run.log(f"{req.workflow} ({req.execution_id}): {status}")
            run.emit(
                EXECUTE, {"index": i, "workflow": req.workflow, "id": req.execution_id, "status": status}
            )

        try:
            status = children.run(req, on_status, cancel)
        except ToolkitError as exc:
            run.log(f"{req.workflow}: {exc}")
            status = "failed"
        statuses[i] = status
        run.log(f"{req.workflow} ({req.execution_id}) finished: {status}")

    with abort_on_sigterm(cancel), ThreadPoolExecutor(max_workers=min(parallelism, len(requests))) as pool:
        for future in [pool.submit(one, i, r) for i, r in enumerate(requests)]:
            future.result()
    passed = sum(1 for s in statuses.values() if s == "passed")
    run.log(f"{passed}/{len(requests)} executions passed")
    return 0 if passed == len(requests) else 1


def _main(argv: list[str]) -> int:
    request = ChildRequest(**json.loads(argv[0]))
    status = LocalChildren(os.environ).run(request, lambda s: None, threading.Event())
    return 0 if status == "passed" else 1


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))

"""The Kubernetes runtime: a Plan becomes a Job (one Pod: a setup init container, then one container
per Plan container, all but the last as init containers) plus a ConfigMap (init program, Plan, files)
and a Secret (sensitive values); the runtime creates them, watches the Pod, follows each container's
log in order through the marker parser, turns pod-level failures into step errors, deletes everything
at the end, and picks executions up again after a restart from their labels.

Rendering (``prepare_plan``, ``render_execution``) is pure; ``KubernetesRuntime`` does the I/O.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import dataclasses
import gzip
import io
import json
import logging
import os
import posixpath
import re
import shlex
import tarfile
import threading
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shoal.execution._initgen import init_files
from shoal.execution._local import (
    ABORT_DETAILS,
    EventLog,
    Workspace,
    _job_record_base,
    _octal_mode,
    execution_document,
    read_events,
    shoal_home,
    tail_events,
)
from shoal.execution._logparse import MarkerParser
from shoal.execution._runtime import ExecutionError, ExecutionHandle, ExecutionJob, ExecutionOutcome
from shoal.kube import (
    LABEL_AGENT,
    LABEL_EXECUTION,
    LABEL_MANAGED_BY,
    LABEL_RESOURCE,
    LABEL_ROLE,
    LABEL_WORKFLOW,
    MANAGED_BY,
    Credentials,
    ImageConfig,
    ImageInspector,
    ImageMetadataError,
    KubeClient,
    KubeError,
    PodProblem,
    container_state,
    credentials_from_dockerconfig,
    dns_label,
    dockerconfig_from_secret,
    exit_code,
    is_scheduled,
    is_terminal,
    job_failure,
    label_value,
    merge_labels,
    merge_named,
    pod_problem,
    prune,
    termination_problem,
)
from shoal.workflow._compiler import TOOLKIT_IMAGE
from shoal.workflow._plan import TOOLKIT_KINDS, Action, Container, Plan, Stage
from shoal.workflow._status import INIT_REF, ExecutionEvent, ExecutionState, StepStatus

if TYPE_CHECKING:  # the toolkit imports this module lazily; its types only matter to the checker
    from shoal.execution._toolkit._subplans import LineSink, Mounts, RecordSink, SubJob

DEFAULT_IMAGE = "ghcr.io/shoal-dev/shoal:latest"
SHOAL_DIR = "/.shoal"
CONFIG_DIR = "/.shoal-config"
FILES_DIR = "/.shoal-files"
RUN_DIR = "/.shoal-run"
SHARED_VOLUMES: tuple[tuple[str, str], ...] = (
    ("shoal", SHOAL_DIR),
    ("data", "/data"),
    ("tmp", "/tmp"),
    ("testkube", "/testkube"),
    ("shoal-run", RUN_DIR),
)
SETUP_CONTAINER = "shoal-setup"
INIT_BUNDLE = "init.tar.gz"  # ConfigMap binaryData key: lib.sh, plan.sh, c<N>.sh, plan.json, mask
CONFIG_MAP_LIMIT = 1_000_000  # bytes of data a ConfigMap may hold (etcd's object limit is ~1.5 MiB)
log = logging.getLogger("shoal.execution.kubernetes")
_LOG_LINGER = 3.0  # seconds a log stream may outlive its container before it is cut
VANISHED = "the pod of this execution is gone; what had not finished cannot continue"
_K8S_VALUE_FROM = ("configMapKeyRef", "secretKeyRef", "fieldRef", "resourceFieldRef")
# spec.pod keys that are not PodSpec fields, or that the renderer sets itself
_POD_META_KEYS = frozenset({"labels", "annotations", "volumes", "disableFsGroupDefaulting", "securityContext"})


class PreparationError(ExecutionError):
    """The execution cannot be rendered: it fails at initialization with this message."""


@dataclass(slots=True)
class KubernetesOptions:
    """How executions are rendered. ``image`` is the shoal image (setup, toolkit operations); inside it
    ``setup_busybox`` is a static busybox and ``toolkit`` the command that runs toolkit operations."""

    namespace: str = "default"
    agent: str = ""
    image: str = DEFAULT_IMAGE
    image_pull_policy: str | None = None
    setup_busybox: str = "/usr/bin/busybox"
    toolkit: str = "python3 -m shoal.execution._toolkit"
    kill_grace: int = 5
    fs_group: int | None = 1001
    # Where collected artifacts go: a volume source ({"hostPath": ...}, {"persistentVolumeClaim": ...});
    # None: an emptyDir (names and sizes are reported, the files go with the pod).
    artifacts_volume: dict[str, Any] | None = None
    # Or a directory on the node (single-node and kind clusters, the stand-in): <path>/<resource id>,
    # so the files land where the agent can read them (<path>/<resource id>/artifacts).
    artifacts_host_path: str | None = None
    # Where this process sees the root of ``artifacts_volume`` (the agent mounts the same claim).
    artifacts_local_root: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)  # every container (e.g. PYTHONPATH)
    # The service account of execution pods when the workflow sets none (the toolkit inside them
    # creates the Jobs of parallel workers and services).
    service_account: str | None = None
    labels: dict[str, str] = field(default_factory=dict)  # added to every object


def options_to_json(options: KubernetesOptions, namespace: str) -> str:
    """``SHOAL_KUBE_OPTIONS``: what a sub-plan started from inside a pod needs to render like its parent."""
    data = dataclasses.asdict(options)
    data["namespace"] = namespace
    data.pop("labels", None)
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def options_from_json(text: str) -> KubernetesOptions:
    data = json.loads(text)
    known = {f.name for f in dataclasses.fields(KubernetesOptions)}
    return KubernetesOptions(**{k: v for k, v in data.items() if k in known})


# ------------------------------------------------------------------------------------------ plan


def _is_toolkit_image(image: str, options: KubernetesOptions) -> bool:
    return image in (TOOLKIT_IMAGE, options.image)


def images_needing_metadata(plan: Plan) -> dict[str, list[Stage]]:
    """Image -> the `run` stages without ``command`` that need its ENTRYPOINT/CMD."""
    out: dict[str, list[Stage]] = {}
    for stage in plan.stages.values():
        if stage.kind == "run" and not stage.command and stage.container is not None:
            image = plan.containers[stage.container].image
            if image != TOOLKIT_IMAGE:
                out.setdefault(image, []).append(stage)
    return out


def _step_label(plan: Plan, stage: Stage) -> str:
    """How a user finds a step: its name, else its position (``#2``, ``#3.1`` for nested steps) among
    the steps the execution shows."""
    if stage.name:
        return repr(stage.name)
    ref: str | None = stage.ref
    while ref is not None and not plan.stages[ref].name and plan.stages[ref].parent is not None:
        parent = plan.stages[ref].parent  # an operation of an unnamed step: the step is its parent
        if parent is None or plan.stages[parent].kind != "group" or plan.stages[parent].virtual:
            break
        ref = parent

    def find(nodes: Sequence[Any], prefix: str) -> str | None:
        for i, node in enumerate(nodes, 1):
            here = f"{prefix}{i}"
            if node.ref in (ref, stage.ref):
                return here
            found = find(node.children, here + ".")
            if found:
                return found
        return None

    position = find(plan.signature, "")
    return f"#{position} (unnamed)" if position else repr(stage.ref)


def prepare_plan(
    plan: Plan, options: KubernetesOptions, images: Mapping[str, ImageConfig] | None = None,
    errors: Mapping[str, str] | None = None,
) -> Plan:
    """The Plan the pod runs: entrypoints filled in from image metadata, and toolkit operations that
    landed in a user image moved into containers of the shoal image (the toolkit is Python)."""
    # The caller's Plan is left as it is: only the stages and containers that change are copies.
    out = dataclasses.replace(plan, stages=dict(plan.stages), containers=list(plan.containers))
    images = images or {}
    for image, stages in images_needing_metadata(out).items():
        config = images.get(image)
        if config is None:
            names = ", ".join(_step_label(out, s) for s in stages)
            cause = (errors or {}).get(image, "its metadata was not read")
            raise PreparationError(
                f"image {image}: cannot learn its ENTRYPOINT/CMD ({cause}); set `command` (and `args`) "
                f"on the `run` of step {names}, or give the agent access to the registry "
                "(pod.imagePullSecrets)"
            )
        for stage in stages:
            command, args = config.command_for(stage.command, stage.args)
            if not command:
                raise PreparationError(
                    f"image {image} has no ENTRYPOINT/CMD: set `command` on the `run` of step {_step_label(out, stage)}"
                )
            out.stages[stage.ref] = dataclasses.replace(stage, command=command, args=args)
    out.containers = _split_toolkit(out, options)
    for container in out.containers:
        for action in container.actions:
            stage = out.stages[action.ref]
            if action.op == "exec" and stage.container != container.index:
                out.stages[action.ref] = dataclasses.replace(stage, container=container.index)
    return out


def _split_toolkit(plan: Plan, options: KubernetesOptions) -> list[Container]:
    """Cut containers so that every toolkit operation runs in the shoal image.

    A cut goes before an operation (with the ``start`` actions right before it), as the compiler cuts;
    the init programs share their state through the journal, so any such cut keeps the semantics.
    """
    result: list[Container] = []
    for container in plan.containers:
        if _is_toolkit_image(container.image, options):
            result.append(dataclasses.replace(container))  # a copy: index and name change below
            continue
        segments: list[tuple[bool, list[Action]]] = []
        for action in container.actions:
            is_toolkit = action.op == "exec" and plan.stages[action.ref].kind in TOOLKIT_KINDS
            if action.op == "exec" and segments and segments[-1][0] != is_toolkit and _has_exec(segments[-1][1]):
                moved: list[Action] = []
                tail = segments[-1][1]
                while tail and tail[-1].op == "start":
                    moved.insert(0, tail.pop())
                segments.append((is_toolkit, [*moved, action]))
                continue
            if not segments:
                segments.append((is_toolkit, []))
            if action.op == "exec" and not _has_exec(segments[-1][1]):
                segments[-1] = (is_toolkit, segments[-1][1])
            segments[-1][1].append(action)
        for is_toolkit, actions in segments:
            part = copy.deepcopy(container)
            part.actions = actions
            if is_toolkit:
                part.image = TOOLKIT_IMAGE
                part.image_pull_policy = options.image_pull_policy
                part.working_dir = None
                part.pure = True
            result.append(part)
    for index, container in enumerate(result):
        container.index = index
        container.name = str(index + 1)
    return result


def _has_exec(actions: list[Action]) -> bool:
    return any(a.op == "exec" for a in actions)


# ------------------------------------------------------------------------------------------ rendering


@dataclass(slots=True)
class RenderedExecution:
    """Everything one execution creates, in creation order (``objects``)."""

    namespace: str
    resource_id: str
    labels: dict[str, str]
    plan: Plan
    config_map: dict[str, Any]
    job: dict[str, Any]
    secret: dict[str, Any] | None = None
    pvcs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def objects(self) -> list[dict[str, Any]]:
        return [self.config_map, *([self.secret] if self.secret else []), *self.pvcs, self.job]

    @property
    def job_name(self) -> str:
        return str(self.job["metadata"]["name"])


def execution_labels(
    execution_id: str, resource_id: str, workflow: str, options: KubernetesOptions, role: str = "execution"
) -> dict[str, str]:
    labels = {
        **{k: label_value(v) for k, v in options.labels.items()},
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_EXECUTION: label_value(execution_id),
        LABEL_RESOURCE: label_value(resource_id),
        LABEL_WORKFLOW: label_value(workflow),
        LABEL_ROLE: role,
    }
    if options.agent:
        labels[LABEL_AGENT] = label_value(options.agent)
    return labels


_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def render_execution(
    job: ExecutionJob,
    options: KubernetesOptions,
    *,
    images: Mapping[str, ImageConfig] | None = None,
    image_errors: Mapping[str, str] | None = None,
    record: Mapping[str, Any] | None = None,
) -> RenderedExecution:
    """The objects of one execution. ``images`` holds the metadata of images whose entrypoint a step
    needs (``images_needing_metadata``); ``record`` is stored in the ConfigMap for re-attaching."""
    plan = prepare_plan(job.plan, options, images, image_errors)
    context = plan.context or {}
    root_id = str(context.get("resource_root") or job.execution_id)
    resource_id = dns_label(str(context.get("resource_id") or job.execution_id))
    namespace = str(plan.job.get("namespace") or options.namespace or "default")
    if not _NAMESPACE.fullmatch(namespace):
        raise PreparationError(
            f"spec.job.namespace: {namespace!r} is not a namespace name (lowercase letters, digits and '-', "
            "starting and ending with a letter or digit, at most 63 characters)"
        )
    # A parallel worker or service instance (its context names the root execution) is a "worker",
    # whatever its own execution id: its objects go with the root execution.
    sub = bool(context.get("resource_root")) and str(context.get("resource_root")) != job.execution_id
    role = "worker" if sub or resource_id != dns_label(job.execution_id) else "execution"
    labels = execution_labels(root_id, resource_id, plan.workflow, options, role)
    if not plan.containers:
        raise PreparationError("the workflow has nothing to run (no containers in the plan)")
    return _Renderer(job, plan, options, namespace, resource_id, labels, record or {}).render()


class _Renderer:
    def __init__(
        self, job: ExecutionJob, plan: Plan, options: KubernetesOptions, namespace: str, resource_id: str,
        labels: dict[str, str], record: Mapping[str, Any],
    ) -> None:
        self.job = job
        self.plan = plan
        self.options = options
        self.namespace = namespace
        self.rid = resource_id
        self.labels = labels
        self.record = record
        self.cm_name = dns_label(f"{resource_id}-shoal", 253)
        self.secret_name = dns_label(f"{resource_id}-secrets", 253)
        self.volumes: list[dict[str, Any]] = []
        self.setup_mounts: list[dict[str, Any]] = []
        self.file_mounts: list[dict[str, Any]] = []  # mounted in every plan container
        self.setup_lines: list[str] = []
        self.data: dict[str, str] = {}

    def meta(self, name: str, **extra: Any) -> dict[str, Any]:
        return {"name": name, "namespace": self.namespace, "labels": dict(self.labels), **extra}

    def render(self) -> RenderedExecution:
        plan = self.plan
        declared = {str(v.get("name")): dict(v) for v in plan.pod.get("volumes") or []}
        pvcs = self._pvcs(declared)
        self._base_volumes()
        self._files(declared)
        bundle = dict(init_files(plan))
        bundle["plan.json"] = json.dumps(plan.to_dict(), separators=(",", ":"))
        bundle["mask"] = "".join(f"{n}\n" for n in sorted(set(self.job.secrets) | set(plan.sensitive_env)))
        # The init program and the Plan grow with the workflow (the status chains make a 1,000-step
        # Plan ~10 MB); gzip brings them far under the ConfigMap limit.
        archive = pack_init_bundle(bundle)
        self.data["job.json"] = json.dumps(dict(self.record), separators=(",", ":"))
        self.data["setup.sh"] = self._setup_script()
        size = len(archive) * 4 // 3 + sum(len(k) + len(v.encode()) for k, v in self.data.items())
        if size > CONFIG_MAP_LIMIT:
            raise PreparationError(
                f"the init program and files of this workflow take {size} bytes, more than a ConfigMap holds "
                f"({CONFIG_MAP_LIMIT}); split the workflow or move large content.files to a volume"
            )
        config_map = {
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": self.meta(self.cm_name), "data": self.data,
            "binaryData": {INIT_BUNDLE: base64.b64encode(archive).decode()},
        }
        secret = None
        if self.job.secrets:
            secret = {
                "apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": self.meta(self.secret_name),
                "data": {k: base64.b64encode(v.encode()).decode() for k, v in sorted(self.job.secrets.items())},
            }
        job = self._job(declared)
        return RenderedExecution(self.namespace, self.rid, self.labels, plan, config_map, job, secret, pvcs)

    # ------------------------------------------------------------------ volumes and files

    def _pvcs(self, declared: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        root = str((self.plan.context or {}).get("resource_root") or self.job.execution_id)
        for name, spec in self.plan.pvcs.items():
            part = "".join(ch if ch.isalnum() else "-" for ch in str(name).lower()).strip("-") or "pvc"
            claim = dns_label(f"{root}-{part}", 253)
            out.append({
                "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": self.meta(claim),
                "spec": copy.deepcopy(spec or {}),
            })
            declared.setdefault(str(name), {"name": str(name), "persistentVolumeClaim": {"claimName": claim}})
        return out

    def _base_volumes(self) -> None:
        for name, path in SHARED_VOLUMES:
            source: dict[str, Any] = {"emptyDir": {}}
            if name == "shoal-run" and self.options.artifacts_volume:
                source = copy.deepcopy(self.options.artifacts_volume)
            elif name == "shoal-run" and self.options.artifacts_host_path:
                node_dir = posixpath.join(self.options.artifacts_host_path, self.rid)
                source = {"hostPath": {"path": node_dir, "type": "DirectoryOrCreate"}}
            self.volumes.append({"name": name, **source})
            mount = {"name": name, "mountPath": path}
            if name == "shoal-run" and self.options.artifacts_volume:
                mount["subPath"] = self.rid  # one claim for all executions: a directory each
            self.setup_mounts.append(mount)
        self.volumes.append({"name": "shoal-config", "configMap": {"name": self.cm_name}})
        self.setup_mounts.append({"name": "shoal-config", "mountPath": CONFIG_DIR, "readOnly": True})

    def _files(self, declared: dict[str, dict[str, Any]]) -> None:
        """content.files: on the shared volumes (or a writable pod volume) they are copied by the setup
        container, so steps may change them; elsewhere each container mounts the file read-only."""
        mounted: dict[str, dict[str, Any]] = {}
        for container in self.plan.containers:
            for vm in container.volume_mounts:
                mounted.setdefault(str(vm.get("mountPath", "")).rstrip("/"), dict(vm))
        for index, item in enumerate(self.plan.files):
            path = posixpath.normpath(str(item.get("path", "")))
            if not path.startswith("/"):
                raise PreparationError(f"content.files: path {item.get('path')!r} must be absolute")
            try:
                mode = _octal_mode(item.get("mode"))
            except ExecutionError as exc:
                raise PreparationError(str(exc)) from exc
            key = f"file-{index}"
            source: dict[str, Any]
            if item.get("contentFrom") is not None:
                source = self._content_from(item["contentFrom"], key, path)
            else:
                self.data[key] = str(item.get("content") or "")
                source = {"configMap": {"name": self.cm_name, "items": [{"key": key, "path": "f"}]}}
            if mode is not None:
                for kind in ("configMap", "secret", "downwardAPI"):
                    if kind in source:
                        for it in source[kind].get("items") or []:
                            it["mode"] = mode
            copyable = self._copy_target(path, mounted, declared)
            if copyable:
                vol = f"shoal-file-{index}"
                self.volumes.append({"name": vol, **source})
                self.setup_mounts.append({"name": vol, "mountPath": f"{FILES_DIR}/{index}", "readOnly": True})
                self.setup_lines.append(_copy_line(f"{FILES_DIR}/{index}/f", path, mode))
            else:
                vol = f"shoal-file-{index}"
                self.volumes.append({"name": vol, **source})
                self.file_mounts.append({"name": vol, "mountPath": path, "subPath": "f", "readOnly": True})

    def _copy_target(
        self, path: str, mounted: Mapping[str, dict[str, Any]], declared: Mapping[str, dict[str, Any]]
    ) -> bool:
        for _, root in SHARED_VOLUMES[1:4]:
            if path.startswith(root + "/"):
                return True
        for mount_path, vm in sorted(mounted.items(), key=lambda kv: -len(kv[0])):
            if mount_path and path.startswith(mount_path + "/"):
                volume = declared.get(str(vm.get("name")))
                if volume and any(k in volume for k in ("emptyDir", "persistentVolumeClaim", "ephemeral", "hostPath")):
                    if not any(m.get("mountPath") == mount_path for m in self.setup_mounts):
                        mount = {"name": vm["name"], "mountPath": mount_path}
                        if vm.get("subPath"):
                            mount["subPath"] = vm["subPath"]
                        self.setup_mounts.append(mount)
                    return True
                return False
        return False

    def _content_from(self, source: Mapping[str, Any], key: str, path: str) -> dict[str, Any]:
        if "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            return {"configMap": {"name": ref.get("name"), "items": [{"key": ref.get("key"), "path": "f"}],
                                  "optional": bool(ref.get("optional", False))}}
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            return {"secret": {"secretName": ref.get("name"), "items": [{"key": ref.get("key"), "path": "f"}],
                               "optional": bool(ref.get("optional", False))}}
        if "fieldRef" in source or "resourceFieldRef" in source:
            item = {"path": "f", **{k: v for k, v in source.items() if k in ("fieldRef", "resourceFieldRef")}}
            return {"downwardAPI": {"items": [item]}}
        raise PreparationError(f"content.files {path}: contentFrom {sorted(source)} is not supported on Kubernetes")

    def _setup_script(self) -> str:
        bb = shlex.quote(self.options.setup_busybox)
        lines = [
            "# shoal setup: the init program, a static busybox and content files into the shared volumes",
            "set -e",
            f"B={bb}",
            f'"$B" cp "$B" {SHOAL_DIR}/busybox',
            f'"$B" chmod 0755 {SHOAL_DIR}/busybox',
            f'"$B" tar -xzf {CONFIG_DIR}/{INIT_BUNDLE} -C {SHOAL_DIR}',
            f'"$B" mkdir -p {SHOAL_DIR}/state/outputs /data/.steps /testkube/outputs {RUN_DIR}/artifacts '
            f"{RUN_DIR}/workspace",
            # Containers may run as other users (image USER): what the init programs share (the
            # journal they append to, outputs, step results) must stay writable for all of them.
            f'"$B" touch {SHOAL_DIR}/state/journal',
            f'"$B" chmod 0666 {SHOAL_DIR}/state/journal',
            f'"$B" chmod 0777 {SHOAL_DIR} {SHOAL_DIR}/state {SHOAL_DIR}/state/outputs /data /data/.steps /testkube '
            f"/testkube/outputs {RUN_DIR}/artifacts {RUN_DIR}/workspace",
            '"$B" chmod 1777 /tmp',
            *self.setup_lines,
        ]
        return "\n".join(lines) + "\n"

    # ------------------------------------------------------------------ containers

    def _env(self, container: Container) -> list[dict[str, Any]]:
        options = self.options
        mounts = {path: path for _, path in SHARED_VOLUMES[1:4]}
        for vm in container.volume_mounts:
            mounts[str(vm.get("mountPath"))] = str(vm.get("mountPath"))
        base = {
            "SHOAL_DIR": SHOAL_DIR,
            "SHOAL_BUSYBOX": f"{SHOAL_DIR}/busybox",
            "SHOAL_TOOLKIT": options.toolkit,
            "SHOAL_MASK": f"{SHOAL_DIR}/mask",
            "SHOAL_DATA": "/data",
            "SHOAL_OUTPUTS": "/testkube/outputs",
            "SHOAL_KILL_GRACE": str(max(1, options.kill_grace)),
            "SHOAL_EXECUTION_ID": self.job.execution_id,
            "SHOAL_WORKSPACE": f"{RUN_DIR}/workspace",
            "SHOAL_ARTIFACTS": f"{RUN_DIR}/artifacts",
            "SHOAL_MOUNTS": json.dumps(mounts, sort_keys=True),
            # The toolkit runs parallel workers and services as Jobs like this one (KubernetesSubPlans).
            "SHOAL_RUNTIME": "kubernetes",
            "SHOAL_KUBE_OPTIONS": options_to_json(options, self.namespace),
            **options.extra_env,
        }
        env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in base.items()]
        for name in sorted(self.job.secrets):
            env.append({"name": name, "valueFrom": {"secretKeyRef": {"name": self.secret_name, "key": name}}})
        refs: list[dict[str, Any]] = []
        for action in container.actions:
            if action.op != "exec":
                continue
            for var in self.plan.stages[action.ref].env:
                source = var.value_from or {}
                kind = next((k for k in _K8S_VALUE_FROM if k in source), None)
                if var.value is not None or kind is None or var.name in self.job.secrets:
                    continue
                value_from = copy.deepcopy({kind: source[kind]})
                if kind in ("configMapKeyRef", "secretKeyRef"):
                    value_from[kind]["optional"] = True
                refs.append({"name": var.name, "valueFrom": value_from})
        return merge_named(env, refs)

    def _container(self, container: Container) -> dict[str, Any]:
        image = self.options.image if container.image == TOOLKIT_IMAGE else container.image
        mounts = [dict(m) for m in self.setup_mounts if m["name"] in {n for n, _ in SHARED_VOLUMES}]
        mounts += [copy.deepcopy(m) for m in container.volume_mounts]
        mounts += [copy.deepcopy(m) for m in self.file_mounts]
        working_dir = container.working_dir
        if working_dir and ("{{" in working_dir or not working_dir.startswith("/")):
            working_dir = None  # the init program resolves and enters it per operation
        env_from = []
        for item in container.env_from:
            entry = copy.deepcopy(item)
            for kind in ("configMapRef", "secretRef"):
                if kind in entry:
                    entry[kind]["optional"] = True
            env_from.append(entry)
        out: dict[str, Any] = {
            "name": container.name,
            "image": image,
            "imagePullPolicy": container.image_pull_policy
            or (self.options.image_pull_policy if image == self.options.image else None),
            "command": [f"{SHOAL_DIR}/busybox", "sh", f"{SHOAL_DIR}/c{container.index}.sh"],
            "workingDir": working_dir,
            "env": self._env(container),
            "envFrom": env_from,
            "resources": copy.deepcopy(container.resources),
            "securityContext": copy.deepcopy(container.security_context),
            "volumeMounts": mounts,
            "terminationMessagePolicy": "FallbackToLogsOnError",
        }
        return prune(out)  # type: ignore[no-any-return]

    def _setup_container(self) -> dict[str, Any]:
        first = self.plan.containers[0]
        out = {
            "name": SETUP_CONTAINER,
            "image": self.options.image,
            "imagePullPolicy": self.options.image_pull_policy,
            "command": [self.options.setup_busybox, "sh", f"{CONFIG_DIR}/setup.sh"],
            "volumeMounts": self.setup_mounts,
            # The setup writes files the first container reads: run it as that container's user.
            "securityContext": {k: v for k, v in first.security_context.items()
                                if k in ("runAsUser", "runAsGroup", "runAsNonRoot")},
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
            "terminationMessagePolicy": "FallbackToLogsOnError",
        }
        return prune(out)  # type: ignore[no-any-return]

    def _job(self, declared: dict[str, dict[str, Any]]) -> dict[str, Any]:
        plan, options = self.plan, self.options
        containers = [self._container(c) for c in plan.containers]
        pod_overrides = {k: copy.deepcopy(v) for k, v in plan.pod.items() if k not in _POD_META_KEYS}
        security: dict[str, Any] = {}
        if options.fs_group is not None and not plan.pod.get("disableFsGroupDefaulting"):
            security["fsGroup"] = options.fs_group
        security.update(copy.deepcopy(plan.pod.get("securityContext") or {}))
        volumes = merge_named(self.volumes, declared.values())
        pod_spec: dict[str, Any] = {
            "serviceAccountName": options.service_account,
            "restartPolicy": "Never",
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": options.kill_grace + 5,
            "securityContext": security,
            **pod_overrides,
            "initContainers": [self._setup_container(), *containers[:-1]],
            "containers": containers[-1:],
            "volumes": volumes,
        }
        pod_labels = merge_labels(plan.pod.get("labels"), self.labels)
        job_labels = merge_labels(plan.job.get("labels"), self.labels)
        annotations = {
            "shoal.dev/workflow-name": plan.workflow,
            "shoal.dev/execution-id": self.job.execution_id,
            "shoal.dev/execution-name": self.job.name or f"{plan.workflow}-{self.job.number}",
        }
        job = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": self.rid,
                "namespace": self.namespace,
                "labels": job_labels,
                "annotations": merge_labels(plan.job.get("annotations"), annotations),
            },
            "spec": {
                "backoffLimit": 0,
                "activeDeadlineSeconds": plan.job.get("activeDeadlineSeconds"),
                "template": {
                    "metadata": {
                        "labels": pod_labels,
                        "annotations": merge_labels(plan.pod.get("annotations")) or None,
                    },
                    "spec": pod_spec,
                },
            },
        }
        return prune(job)  # type: ignore[no-any-return]


def pack_init_bundle(files: Mapping[str, str]) -> bytes:
    """A reproducible .tar.gz of ``files`` (the same input gives the same bytes)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in sorted(files):
            data = files[name].encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), compresslevel=6, mtime=0)


def unpack_init_bundle(config_map: Mapping[str, Any]) -> dict[str, str]:
    """The files of the init bundle of a rendered (or read back) ConfigMap."""
    encoded = (config_map.get("binaryData") or {}).get(INIT_BUNDLE)
    if not encoded:
        raise ExecutionError(f"ConfigMap {config_map.get('metadata', {}).get('name')} has no {INIT_BUNDLE}")
    out: dict[str, str] = {}
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(base64.b64decode(encoded))), mode="r") as tar:
        for member in tar.getmembers():
            handle = tar.extractfile(member)
            if handle is not None:
                out[member.name] = handle.read().decode()
    return out


def _copy_line(source: str, target: str, mode: int | None) -> str:
    parent = posixpath.dirname(target) or "/"
    line = f'"$B" mkdir -p {shlex.quote(parent)} && "$B" cp {shlex.quote(source)} {shlex.quote(target)}'
    if mode is not None:
        line += f' && "$B" chmod {mode:o} {shlex.quote(target)}'
    return line


# ------------------------------------------------------------------------------------------ image metadata


async def read_image_metadata(
    plan: Plan,
    inspector: ImageInspector,
    *,
    client: KubeClient | None = None,
    namespace: str = "default",
    credentials: Mapping[str, Credentials] | None = None,
) -> tuple[dict[str, ImageConfig], dict[str, str]]:
    """Configs of the images whose entrypoint a step needs, and the errors of those that failed.

    Pull-secret credentials (``pod.imagePullSecrets``) are read from the namespace only when an image
    needs them, i.e. not at all for workflows whose `run` steps all set `command`.
    """
    needed = images_needing_metadata(plan)
    configs: dict[str, ImageConfig] = {}
    errors: dict[str, str] = {}
    if not needed:
        return configs, errors
    creds = dict(credentials or {})
    if client is not None:
        docs = []
        for ref in plan.pod.get("imagePullSecrets") or []:
            name = str((ref or {}).get("name") or "")
            if not name:
                continue
            try:
                secret = await client.get("Secret", name, namespace=namespace)
            except KubeError as exc:
                errors["*"] = f"cannot read imagePullSecret {name}: {exc}"
                continue
            doc = dockerconfig_from_secret(secret or {})
            if doc is not None:
                docs.append(doc)
        for host, cred in credentials_from_dockerconfig(docs).items():
            creds.setdefault(host, cred)
    # The node's platform when the pod pins it (nodeSelector), else the inspector's (linux/amd64).
    selector = plan.pod.get("nodeSelector") or {}
    arch = selector.get("kubernetes.io/arch")
    platform = f"{selector.get('kubernetes.io/os', 'linux')}/{arch}" if arch else None
    for image in needed:
        try:
            configs[image] = await inspector.inspect(image, creds, platform)
        except ImageMetadataError as exc:
            errors[image] = exc.cause
    return configs, errors


# ------------------------------------------------------------------------------------------ the runtime


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class _PodFailed(Exception):
    def __init__(self, problem: PodProblem) -> None:
        super().__init__(problem.message)
        self.problem = problem


class _PodGone(Exception):
    pass


@dataclass(slots=True)
class _Run:
    job: ExecutionJob
    ws: Workspace
    namespace: str
    job_name: str
    labels: dict[str, str]
    log: EventLog
    state: ExecutionState
    parser: MarkerParser
    plan: Plan  # the prepared plan (as the pod runs it)
    written: int = 0  # events with seq <= written are already in events.jsonl
    done: asyncio.Event = field(default_factory=asyncio.Event)
    outcome: ExecutionOutcome | None = None
    task: asyncio.Task[None] | None = None
    watcher: asyncio.Task[None] | None = None
    pod: dict[str, Any] | None = None
    pod_gone: bool = False
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    stopping: bool = False
    stop_reason: str = ABORT_DETAILS
    unschedulable_since: float | None = None
    watch_error: str = ""
    objects: list[tuple[str, str]] = field(default_factory=list)  # (kind, name) to delete at the end
    # set once the last container's log stream delivers: from then on a stop loses no line of it
    tailing: asyncio.Event = field(default_factory=asyncio.Event)

    def wake(self) -> None:
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()


class KubernetesRuntime:
    """Runs Plans as Kubernetes Jobs (see docs/kubernetes.md).

    ``KubernetesRuntime(kubeconfig=None, namespace="default", agent_name="")``: ``kubeconfig`` None uses
    ``$KUBECONFIG``/``~/.kube/config`` or the in-cluster service account. ``namespaces`` lists further
    namespaces executions may run in (``job.namespace``); ``attach`` looks in all of them. Events are
    kept under ``home`` (``$SHOAL_HOME``) like the local runtime's, so observers can resume by seq.
    """

    name = "kubernetes"

    def __init__(
        self,
        kubeconfig: str | Path | None = None,
        *,
        namespace: str | None = None,
        agent_name: str = "",
        context: str | None = None,
        namespaces: Sequence[str] = (),
        home: Path | None = None,
        options: KubernetesOptions | None = None,
        client: KubeClient | None = None,
        inspector: ImageInspector | None = None,
        credentials: Mapping[str, Credentials] | None = None,
        keep_resources: bool = False,
        pod_start_timeout: float = 120.0,
        unschedulable_grace: float = 0.0,
    ) -> None:
        self._client = client
        self._kubeconfig = kubeconfig
        self._context = context
        self.options = options or KubernetesOptions()
        if namespace:
            self.options.namespace = namespace
        if agent_name:
            self.options.agent = agent_name
        self.namespaces = [self.options.namespace, *[n for n in namespaces if n != self.options.namespace]]
        self.home = home or shoal_home()
        self.inspector = inspector or ImageInspector()
        self.credentials = dict(credentials or {})
        self.keep_resources = keep_resources
        self.pod_start_timeout = pod_start_timeout
        self.unschedulable_grace = unschedulable_grace
        self._runs: dict[str, _Run] = {}

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, agent_name: str = "", home: Path | None = None
    ) -> KubernetesRuntime:
        """The runtime an agent in a cluster uses, configured as the shoal-agent chart sets it up:
        ``KUBECONFIG`` (else the in-cluster service account), ``SHOAL_KUBE_NAMESPACE`` (default: the
        pod's own namespace), ``SHOAL_KUBE_NAMESPACES`` (comma-separated, where ``job.namespace`` may
        point), ``SHOAL_KUBE_IMAGE`` / ``SHOAL_KUBE_IMAGE_PULL_POLICY`` (the shoal image of setup and
        toolkit containers), ``SHOAL_KUBE_ARTIFACTS_CLAIM`` (a ReadWriteMany claim for artifacts)."""
        e = os.environ if env is None else env
        namespace = e.get("SHOAL_KUBE_NAMESPACE") or _own_namespace() or "default"
        extra = [n.strip() for n in e.get("SHOAL_KUBE_NAMESPACES", "").split(",") if n.strip()]
        if e.get("SHOAL_KUBE_OPTIONS"):  # inside an execution pod: render like the parent did
            options = options_from_json(e["SHOAL_KUBE_OPTIONS"])
            namespace = options.namespace
        else:
            options = KubernetesOptions(namespace=namespace, agent=agent_name)
        if e.get("SHOAL_KUBE_SERVICE_ACCOUNT"):
            options.service_account = e["SHOAL_KUBE_SERVICE_ACCOUNT"]
        if e.get("SHOAL_KUBE_IMAGE"):
            options.image = e["SHOAL_KUBE_IMAGE"]
        if e.get("SHOAL_KUBE_IMAGE_PULL_POLICY"):
            options.image_pull_policy = e["SHOAL_KUBE_IMAGE_PULL_POLICY"]
        if e.get("SHOAL_KUBE_ARTIFACTS_CLAIM"):
            options.artifacts_volume = {"persistentVolumeClaim": {"claimName": e["SHOAL_KUBE_ARTIFACTS_CLAIM"]}}
            home_dir = home or Path(e.get("SHOAL_HOME") or shoal_home())
            options.artifacts_local_root = e.get("SHOAL_KUBE_ARTIFACTS_PATH") or str(home_dir / "artifacts")
        grace = float(e.get("SHOAL_KUBE_UNSCHEDULABLE_GRACE") or 0)
        return cls(e.get("KUBECONFIG") or None, namespaces=extra, options=options, home=home,
                   unschedulable_grace=grace)

    @property
    def client(self) -> KubeClient:
        if self._client is None:
            self._client = KubeClient.from_kubeconfig(
                self._kubeconfig, context=self._context, namespace=self.options.namespace
            )
        return self._client

    async def close(self) -> None:
        """Stop following (an agent shutting down): the Jobs run on in the cluster; ``attach`` resumes them."""
        for run in list(self._runs.values()):
            for task in (run.task, run.watcher):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
        self._runs.clear()
        if self._client is not None:
            await self._client.close()
            self._client = None

    def workspace(self, execution_id: str) -> Workspace:
        return Workspace(self.home / "executions" / execution_id)

    # ------------------------------------------------------------------ Runtime protocol

    async def start(self, job: ExecutionJob) -> ExecutionHandle:
        ws = Workspace(job.workspace) if job.workspace else self.workspace(job.execution_id)
        if ws.events.exists() or ws.execution_file.exists():
            raise ExecutionError(f"execution {job.execution_id} already exists in {ws.root}")
        ws.root.mkdir(parents=True, exist_ok=True)
        artifacts = job.artifacts_dir or ws.artifacts
        root = self.options.artifacts_local_root if self.options.artifacts_volume else self.options.artifacts_host_path
        if root and not job.artifacts_dir:
            artifacts = Path(root) / dns_label(job.execution_id) / "artifacts"
        record = {**_job_record_base(job, ws), "artifacts": str(artifacts), "agent": self.options.agent}
        ws.write_json(ws.job_file, record)
        ws.plan_file.write_text(json.dumps(job.plan.to_dict()))
        namespace = str(job.plan.job.get("namespace") or self.options.namespace)
        run = _Run(
            job=job, ws=ws, namespace=namespace, job_name=dns_label(job.execution_id), labels={},
            log=EventLog(ws.events), state=ExecutionState.for_plan(job.plan), parser=MarkerParser(),
            plan=job.plan,
        )
        self._runs[job.execution_id] = run
        handle = ExecutionHandle(job.execution_id, f"{namespace}/{run.job_name}", self.name)
        self._emit(run, [run.parser.make_event("status", status="scheduling")])
        self._emit(run, [run.parser.make_event("initialization", ref=INIT_REF, status="running")])
        try:
            rendered = await self._render(run, record)
            await self._create(run, rendered)
        except (ExecutionError, KubeError) as exc:
            message = str(exc) if isinstance(exc, ExecutionError) else f"Kubernetes API: {exc}"
            self._emit(run, [run.parser.make_event("initialization", ref=INIT_REF, status="failed", details=message)])
            await self._finish(run)
            return handle
        run.task = asyncio.create_task(self._drive(run))
        return handle

    def observe(self, handle: ExecutionHandle, from_seq: int = 0) -> AsyncIterator[ExecutionEvent]:
        run = self._runs.get(handle.execution_id)
        if run is not None:
            return tail_events(run.ws.events, from_seq, run.done.is_set, run.log.changed)
        ws = self.workspace(handle.execution_id)

        async def poll() -> None:
            await asyncio.sleep(0.05)

        return tail_events(ws.events, from_seq, ws.execution_file.exists, poll)

    async def wait(self, handle: ExecutionHandle) -> ExecutionOutcome:
        run = self._runs.get(handle.execution_id)
        if run is not None:
            await run.done.wait()
            assert run.outcome is not None
            return run.outcome
        ws = self.workspace(handle.execution_id)
        while not ws.execution_file.exists():
            await asyncio.sleep(0.05)
        doc = ws.read_json(ws.execution_file) or {}
        return ExecutionOutcome(str(doc.get("result", {}).get("status", "aborted")), doc)

    async def stop(self, handle: ExecutionHandle, *, grace: float = 5.0) -> None:
        """Abort: delete the pod with ``grace`` (the init program gets TERM, prints its abort markers and
        exits) and the Job; the execution ends ``aborted`` once the pod is gone."""
        run = self._runs.get(handle.execution_id)
        if run is None:
            raise ExecutionError(f"execution {handle.execution_id} is not run by this runtime")
        if run.done.is_set():
            return
        if not run.stopping:
            run.stopping = True
            pod = run.pod
            with contextlib.suppress(KubeError):
                if pod is not None:
                    await self.client.delete(
                        "Pod", pod["metadata"]["name"], namespace=run.namespace, grace_period=int(grace) + 2
                    )
                await self.client.delete("Job", run.job_name, namespace=run.namespace, propagation="Background")
            run.wake()
        await run.done.wait()

    async def tailing(self, handle: ExecutionHandle, timeout: float) -> bool:
        """Wait until the last container's log is being followed (so a ``stop`` now loses none of what
        it prints), or the execution is over; False after ``timeout`` seconds."""
        run = self._runs.get(handle.execution_id)
        if run is None:
            return True
        waiters = {asyncio.ensure_future(run.tailing.wait()), asyncio.ensure_future(run.done.wait())}
        try:
            done, _ = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        return bool(done)

    async def pod_ip(self, handle: ExecutionHandle) -> str | None:
        """The execution pod's IP once it has one (a watch event, not a poll); None if it ends first.
        Services are reached at their pod's IP."""
        run = self._runs.get(handle.execution_id)
        while run is not None and not run.done.is_set():
            changed = run.changed
            ip = str(((run.pod or {}).get("status") or {}).get("podIP") or "")
            if ip:
                return ip
            done = asyncio.ensure_future(run.done.wait())
            woken = asyncio.ensure_future(changed.wait())
            try:
                await asyncio.wait({done, woken}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                done.cancel()
                woken.cancel()
        return None

    async def attach(self, execution_id: str, resource_id: str | None = None) -> ExecutionHandle | None:
        """Find an execution by its labels after a restart: follow it again (events already in the
        event log are not repeated) or, when its pod is gone, close it as aborted. A worker or service
        instance is found by its ``resource_id`` (its Job's name)."""
        if execution_id in self._runs:
            run = self._runs[execution_id]
            return ExecutionHandle(execution_id, f"{run.namespace}/{run.job_name}", self.name)
        ws = self.workspace(execution_id)
        if ws.execution_file.exists():
            return ExecutionHandle(execution_id, str(ws.root), self.name)
        selector = (
            {LABEL_RESOURCE: label_value(dns_label(resource_id))} if resource_id
            else {LABEL_EXECUTION: label_value(execution_id), LABEL_ROLE: "execution"}
        )
        found: tuple[str, dict[str, Any]] | None = None
        for namespace in self.namespaces:
            for cm in await self.client.list("ConfigMap", namespace=namespace, labels=selector):
                found = (namespace, cm)
                break
            if found:
                break
        if found is None:
            return None
        namespace, cm = found
        data = cm.get("data") or {}
        plan = Plan.from_dict(json.loads(unpack_init_bundle(cm)["plan.json"]))
        record = json.loads(data.get("job.json") or "{}")
        job = ExecutionJob(
            execution_id=execution_id, plan=plan, name=record.get("name"), number=int(record.get("number", 1)),
            tags=dict(record.get("tags") or {}), config=dict(record.get("config") or {}),
            artifacts_dir=Path(record["artifacts"]) if record.get("artifacts") else None,
        )
        ws.root.mkdir(parents=True, exist_ok=True)
        if not ws.job_file.exists():
            ws.write_json(ws.job_file, record)
            ws.plan_file.write_text(json.dumps(plan.to_dict()))
        _, good, last = read_events(ws.events)
        original = Plan.from_dict(json.loads(ws.plan_file.read_text())) if ws.plan_file.exists() else plan
        run = _Run(
            job=job, ws=ws, namespace=namespace, job_name=dns_label(execution_id),
            labels=dict((cm.get("metadata") or {}).get("labels") or {}),
            log=EventLog(ws.events, next_seq=last + 1, truncate_at=good),
            state=ExecutionState.for_plan(original), parser=MarkerParser(), plan=plan, written=last,
        )
        run.objects = _objects_of(cm, namespace, run.job_name)
        self._runs[execution_id] = run
        handle = ExecutionHandle(execution_id, f"{namespace}/{run.job_name}", self.name)
        if not await self._pod_remains(run):
            await self._close_vanished(run)
            return handle
        # The same events as the first time, in the same order: those already written are skipped.
        self._emit(run, [run.parser.make_event("status", status="scheduling")])
        self._emit(run, [run.parser.make_event("initialization", ref=INIT_REF, status="running")])
        run.task = asyncio.create_task(self._drive(run))
        return handle

    async def _pod_remains(self, run: _Run) -> bool:
        """Whether the execution's pod is still there (or its Job may still start it)."""
        job = await self.client.get("Job", run.job_name, namespace=run.namespace)
        if job is None:
            return False
        pods = await self.client.list("Pod", namespace=run.namespace, labels={LABEL_RESOURCE: run.job_name})
        if pods:
            return True
        status = job.get("status") or {}
        return not (status.get("failed") or status.get("succeeded") or job_failure(job))

    async def _close_vanished(self, run: _Run) -> None:
        """The pod is gone while nobody watched: what the event log holds is all there is; close the rest."""
        events, _, last = read_events(run.ws.events)
        for event in events:
            run.state.apply(event)
        run.state.accept_gaps()
        run.state.last_seq = max(run.state.last_seq, last)  # log lines were not read back: no gap
        run.parser = MarkerParser(last + 1)
        self._emit(run, [run.parser.make_event("status", status="aborted", details=VANISHED)])
        await self._finish(run)

    # ------------------------------------------------------------------ creating

    async def _render(self, run: _Run, record: Mapping[str, Any]) -> RenderedExecution:
        images, errors = await read_image_metadata(
            run.job.plan, self.inspector, client=self.client, namespace=run.namespace, credentials=self.credentials
        )
        rendered = render_execution(run.job, self.options, images=images, image_errors=errors, record=record)
        run.plan = rendered.plan
        run.job_name = rendered.job_name
        run.labels = rendered.labels
        run.namespace = rendered.namespace
        return rendered

    async def _create(self, run: _Run, rendered: RenderedExecution) -> None:
        for obj in rendered.objects:
            kind, name = str(obj["kind"]), str(obj["metadata"]["name"])
            try:
                await self.client.create(obj, namespace=rendered.namespace)
            except KubeError as exc:
                await self._cleanup(run)
                raise ExecutionError(f"cannot create {kind} {rendered.namespace}/{name}: {exc}") from exc
            run.objects.append((kind, name))

    async def _cleanup(self, run: _Run) -> None:
        if self.keep_resources:
            return
        objects = list(run.objects)
        if run.labels.get(LABEL_ROLE) == "execution":
            objects = [*await self._leftover_children(run), *objects]
        for kind, name in reversed(objects):
            try:
                await self.client.delete(kind, name, namespace=run.namespace, propagation="Background")  # type: ignore[arg-type]
            except KubeError as exc:  # left behind: labelled, so `kubectl delete -l` finds it
                log.warning("cannot delete %s %s/%s: %s", kind, run.namespace, name, exc)
        run.objects.clear()

    async def _leftover_children(self, run: _Run) -> list[tuple[str, str]]:
        """Objects of this execution's workers and services still there when it ends (the toolkit that
        started them was killed, or a service outlived the container that stopped following it):
        they go with their execution. Two list calls (Jobs, ConfigMaps: what the agent's Role may
        list), however many steps and instances; each ConfigMap names its Secret."""
        selector = {LABEL_EXECUTION: label_value(run.job.execution_id), LABEL_ROLE: "worker"}
        found: list[tuple[str, str]] = []
        try:
            for cm in await self.client.list("ConfigMap", namespace=run.namespace, labels=selector):
                rid = str(cm["metadata"]["name"]).removesuffix("-shoal")
                found.extend(_objects_of(cm, run.namespace, rid))
            for job in await self.client.list("Job", namespace=run.namespace, labels=selector):
                if ("Job", str(job["metadata"]["name"])) not in found:
                    found.append(("Job", str(job["metadata"]["name"])))
        except KubeError as exc:
            log.warning("cannot list what %s's workers left: %s", run.job.execution_id, exc)
        return found

    # ------------------------------------------------------------------ following

    def _emit(self, run: _Run, events: list[ExecutionEvent]) -> None:
        if not events:
            return
        for event in events:
            run.state.apply(event)
        fresh = [e for e in events if e.seq > run.written]
        if fresh:
            run.log.write(fresh)
            run.written = fresh[-1].seq
            run.log.flush()

    async def _watch(self, run: _Run) -> None:
        try:
            async for op, pod in self.client.watch(
                "Pod", namespace=run.namespace, labels={LABEL_RESOURCE: run.labels.get(LABEL_RESOURCE, run.job_name)}
            ):
                if op == "DELETED":
                    run.pod_gone = True
                    run.pod = pod
                else:
                    run.pod = pod
                run.wake()
        except KubeError as exc:
            run.watch_error = f"cannot watch the pod of {run.namespace}/{run.job_name}: {exc}"
            log.warning("%s", run.watch_error)
            run.pod_gone = True
            run.wake()

    async def _wait_for(self, run: _Run, ready: Any, *, timeout: float | None = None) -> dict[str, Any]:
        """Wait (on watch events) until ``ready(pod)``; raises on pod problems or when it is gone.

        An unschedulable pod fails at once unless ``unschedulable_grace`` gives a cluster autoscaler
        time to add a node; the wait then wakes up when that grace is over.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            changed = run.changed
            pod = run.pod
            if pod is not None and ready(pod):
                return pod
            if run.pod_gone or (run.stopping and pod is None):
                raise _PodGone()
            wake = deadline
            if pod is not None and not run.stopping:
                problem = pod_problem(pod)
                if problem is not None and problem.reason == "Unschedulable" and self.unschedulable_grace > 0:
                    since = run.unschedulable_since = run.unschedulable_since or time.monotonic()
                    until = since + self.unschedulable_grace
                    if time.monotonic() < until:
                        problem = None
                        wake = until if wake is None else min(wake, until)
                elif problem is None or problem.reason != "Unschedulable":
                    run.unschedulable_since = None
                if problem is not None and problem.fatal:
                    raise _PodFailed(problem)
            if wake is None:
                await changed.wait()
                continue
            remaining = wake - time.monotonic()
            if remaining <= 0:
                if deadline is not None and wake >= deadline:
                    raise TimeoutError
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    async def _drive(self, run: _Run) -> None:
        run.watcher = asyncio.create_task(self._watch(run))
        try:
            await self._drive_to_end(run)
        except asyncio.CancelledError:
            # The runtime is shutting down (agent restart): the Job runs on; ``attach`` picks it up.
            run.log.close()
            raise
        finally:
            if run.watcher is not None:
                run.watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await run.watcher
        await self._finish(run)

    async def _drive_to_end(self, run: _Run) -> None:
        try:
            await self._follow(run)
        except _PodFailed as exc:
            await self._close_failed(run, exc.problem)
        except _PodGone:
            await self._close_gone(run)
        except TimeoutError:
            message = (f"the Job {run.namespace}/{run.job_name} started no pod within {self.pod_start_timeout:g}s "
                       "(quota, admission or a missing service account?)")
            self._emit(run, [run.parser.make_event("initialization", ref=INIT_REF, status="failed", details=message)])
        except Exception as exc:  # the execution records the failure; the runtime goes on
            log.warning("execution %s: following it failed", run.job.execution_id, exc_info=True)
            self._emit(run, [run.parser.make_event("status", status="aborted", details=f"kubernetes runtime: {exc}")])

    async def _follow(self, run: _Run) -> None:
        await self._wait_for(run, is_scheduled, timeout=max(self.pod_start_timeout, self.unschedulable_grace + 30))
        self._emit(run, [run.parser.make_event("status", status="running")])
        try:
            await self._stream(run, SETUP_CONTAINER)
        except _PodFailed as exc:
            self._fail_init(run, exc.problem.message)
            return
        pod = run.pod or {}
        problem = termination_problem(pod, SETUP_CONTAINER)
        if problem is not None:
            self._fail_init(run, f"the setup container failed: {problem.message}")
            return
        self._emit(run, [run.parser.make_event("initialization", ref=INIT_REF, status="passed")])
        for container in run.plan.containers:
            await self._stream(run, container.name)
            pod = run.pod or {}
            if run.stopping:
                break
            problem = termination_problem(pod, container.name)
            if problem is not None:
                whole = pod_problem(pod)  # the pod's own reason (deadline, eviction) explains the exit
                if whole is not None:
                    problem = whole
                raise _PodFailed(PodProblem(problem.reason, problem.message, container.name))
        self._emit(run, run.parser.flush())
        if run.stopping and not run.state.is_finished:
            self._emit(run, [run.parser.make_event("status", status="aborted", details=run.stop_reason)])

    async def _stream(self, run: _Run, container: str) -> None:
        """Feed one container's whole log to the parser, then wait for its terminated status.

        The follow request ends when the container ends; when it does not (the pod was deleted under
        it, a proxy keeps the connection), it is given ``_LOG_LINGER`` seconds after the status says
        the container is over, then cut. A dropped stream is read again, skipping what was consumed.
        """
        await self._wait_for(run, lambda p: container_state(p, container) in ("running", "terminated"))
        progress = [0]  # bytes of this container's log fed to the parser
        for _attempt in range(20):
            pod_name = str((run.pod or {}).get("metadata", {}).get("name", ""))
            reader = asyncio.create_task(self._read_log(run, pod_name, container, progress))
            try:
                await self._until_over(run, reader, container)
            finally:
                if not reader.done():
                    reader.cancel()
                # its failure is looked at below (awaiting it would raise it from here)
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reader
            error = reader.exception() if reader.done() and not reader.cancelled() else None
            if isinstance(error, KubeError):
                # A 404 before the watch says the pod is gone: read again once the watch has news
                # (the API server can answer a log request ahead of the watch it serves).
                if run.pod_gone:
                    raise _PodGone() from error
                changed = run.changed
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), 0.5)
                continue
            if error is not None:
                raise error
            if run.pod_gone:
                raise _PodGone()
            try:
                await self._wait_for(run, lambda p: container_state(p, container) == "terminated", timeout=30)
            except TimeoutError:
                continue  # the stream ended early (a dropped connection): read on from where it stopped
            return
        raise _PodGone()

    async def _read_log(self, run: _Run, pod: str, container: str, progress: list[int]) -> None:
        seen = 0
        last = bool(run.plan.containers) and container == run.plan.containers[-1].name
        async for chunk in self.client.log_stream(pod, namespace=run.namespace, container=container):
            if last:
                run.tailing.set()
            if seen + len(chunk) > progress[0]:
                fresh = chunk[max(0, progress[0] - seen) :]
                progress[0] += len(fresh)
                self._emit(run, run.parser.feed(fresh))
            seen += len(chunk)

    async def _until_over(self, run: _Run, reader: asyncio.Task[None], container: str) -> None:
        """Return when ``reader`` ends, or ``_LOG_LINGER`` s after the container (or the pod) is over."""
        over_since: float | None = None
        while not reader.done():
            pod = run.pod or {}
            over = run.pod_gone or container_state(pod, container) == "terminated" or is_terminal(pod)
            if over and over_since is None:
                over_since = time.monotonic()
            changed = run.changed
            timeout = None if over_since is None else max(0.0, over_since + _LOG_LINGER - time.monotonic())
            if timeout == 0.0:
                return
            waiter = asyncio.ensure_future(changed.wait())
            try:
                await asyncio.wait({reader, waiter}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()

    def _fail_init(self, run: _Run, message: str) -> None:
        self._emit(run, run.parser.flush())
        self._emit(run, [run.parser.make_event("initialization", ref=INIT_REF, status="failed", details=message)])

    async def _close_failed(self, run: _Run, problem: PodProblem) -> None:
        """A pod-level failure: the step that was running (or about to run) fails with the reason, the
        rest is skipped, the pod is stopped."""
        self._emit(run, run.parser.flush())
        with contextlib.suppress(KubeError):
            await self.client.delete("Job", run.job_name, namespace=run.namespace, propagation="Background")
        if run.state.initialization_status is not StepStatus.PASSED:
            self._fail_init(run, problem.message)
            return
        if problem.reason == "DeadlineExceeded":
            self._emit(run, [run.parser.make_event("status", status="aborted", details=problem.message)])
            return
        culprit = self._culprit(run, problem.container)
        events: list[ExecutionEvent] = []
        if culprit is not None:
            events.append(run.parser.make_event("step", ref=culprit, status="failed", details=problem.message,
                                                exit_code=exit_code(run.pod or {}, problem.container)))
        self._emit(run, events)
        skipped = [
            run.parser.make_event("step", ref=ref, status="skipped")
            for ref in run.state.tree.leaves
            if not run.state.step_status(ref).is_finished
        ]
        self._emit(run, skipped)
        self._emit(run, [run.parser.make_event("status", status="failed", details=problem.message)])

    def _culprit(self, run: _Run, container: str) -> str | None:
        state = run.state
        running = [r for r in state.tree.leaves if state.step_status(r) in (StepStatus.RUNNING, StepStatus.PAUSED)]
        if running:
            return running[0]
        for c in run.plan.containers:
            if c.name == container or not container:
                for action in c.actions:
                    if action.op == "exec" and not state.step_status(action.ref).is_finished:
                        return action.ref
        return None

    async def _close_gone(self, run: _Run) -> None:
        self._emit(run, run.parser.flush())
        if run.state.is_finished:
            return
        reason = run.stop_reason if run.stopping else (run.watch_error or VANISHED)
        if not run.stopping:
            with contextlib.suppress(KubeError):
                job = await self.client.get("Job", run.job_name, namespace=run.namespace)
                problem = job_failure(job or {})
                if problem is not None:
                    reason = problem.message
        self._emit(run, [run.parser.make_event("status", status="aborted", details=reason)])

    async def _finish(self, run: _Run) -> None:
        state = run.state
        pod = run.pod or {}
        if not state.is_finished and pod and is_terminal(pod) and not run.stopping:
            reason = str((pod.get("status") or {}).get("reason") or "")
            if reason == "DeadlineExceeded":
                self._emit(run, [run.parser.make_event(
                    "status", status="aborted", details="pod.activeDeadlineSeconds passed")])
        try:
            final = state.status.value if state.is_finished else state.final_status().value
            self._emit(run, [run.parser.make_event("status", status=str(final))])
        except Exception as exc:  # the status rules failed: the execution still ends, and says why
            self._emit(run, [run.parser.make_event("status", status="aborted", details=f"status rules: {exc}")])
        await self._cleanup(run)
        try:
            doc = execution_document(run.job, run.state, run.ws)
        except Exception as exc:
            doc = _fallback_document(run.job, f"the execution result cannot be built: {exc}")
        doc["namespace"] = run.namespace
        doc["runnerId"] = self.options.agent or "kubernetes"
        doc["runtime"] = {"kind": "kubernetes", "namespace": run.namespace, "job": run.job_name}
        run.log.close()
        run.ws.write_json(run.ws.execution_file, doc)
        run.outcome = ExecutionOutcome(doc["result"]["status"], doc)
        run.done.set()


def _fallback_document(job: ExecutionJob, message: str) -> dict[str, Any]:
    """A minimal execution document when the status rules cannot produce one."""
    return {
        "id": job.execution_id,
        "name": job.name or f"{job.plan.workflow}-{job.number}",
        "workflow": {"name": job.plan.workflow},
        "signature": [node.to_dict() for node in job.plan.signature],
        "result": {"status": "aborted", "predictedStatus": "aborted",
                   "initialization": {"status": "aborted", "errorMessage": message}, "steps": {}},
        "output": [], "reports": [], "artifacts": [],
    }


def _own_namespace() -> str:
    """The namespace of the pod this process runs in (in-cluster), or ""."""
    try:
        return Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace").read_text().strip()
    except OSError:
        return ""


def _objects_of(cm: Mapping[str, Any], namespace: str, job_name: str) -> list[tuple[str, str]]:
    """What a re-attached execution deletes at its end (the same names its renderer used)."""
    name = str((cm.get("metadata") or {}).get("name") or "")
    rid = name.removesuffix("-shoal") or job_name
    del namespace
    return [("ConfigMap", name), ("Secret", dns_label(f"{rid}-secrets", 253)), ("Job", job_name)]


def render_objects(
    job: ExecutionJob, options: KubernetesOptions, images: Mapping[str, ImageConfig] | None = None,
    image_errors: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The objects ``shoal render`` prints (the ConfigMap, Secret, PVCs and Job an execution creates)."""
    record = _job_record_base(job, Workspace(Path("/nonexistent")))
    record.pop("workspace", None)
    return render_execution(job, options, images=images, image_errors=image_errors, record=record).objects


def iter_names(objects: Iterable[Mapping[str, Any]]) -> list[str]:
    return [f"{o['kind']}/{o['metadata']['name']}" for o in objects]


# ------------------------------------------------------------------------------------------ sub-plans


FETCH_MARK = "\x1eshoal-fetch "  # a worker's log line carrying part of the files its parent fetches
_RECLAIM_TAIL_WAIT = 30.0  # s: how long a reclaim waits to be following the log before it stops the pod
# s: how long a worker's or service's pod may wait for room in the cluster (its execution already runs:
# the room frees as sibling pods end) unless SHOAL_KUBE_UNSCHEDULABLE_GRACE says otherwise
SUBPLAN_UNSCHEDULABLE_GRACE = 300.0


class KubernetesSubPlans:
    """The toolkit's ``SubPlanRunner`` inside an execution pod: every parallel worker and service
    instance runs as its own Job (resource id ``<parent>-<ref>-<n>``, labels of the root execution),
    rendered with the parent's options (``SHOAL_KUBE_OPTIONS``) through the pod's service account.

    ``transfer`` files are staged in the parent and travel as content files of the instance (text
    files, within the ConfigMap limit); pausing instances is not supported.
    """

    pod_addresses = True  # each instance is reached at its own pod's IP (an ``address`` record)

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)

    def _staging(self, workspace: Path) -> dict[str, Path]:
        root = workspace / "transfer"
        return {"/data": root / "data", "/tmp": root / "tmp", "/testkube": root / "testkube"}

    def prepare(self, job: SubJob) -> Mounts:
        from shoal.execution._toolkit._subplans import Mounts

        dirs = self._staging(Path(job.workspace))
        for path in dirs.values():
            path.mkdir(parents=True, exist_ok=True)
        return Mounts(dirs)

    def _with_transfers(self, job: SubJob) -> Plan:
        from shoal.execution._toolkit._context import ToolkitError

        files: list[dict[str, Any]] = []
        for mount, root in self._staging(Path(job.workspace)).items():
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                try:
                    content = path.read_text()
                except UnicodeDecodeError as exc:
                    raise ToolkitError(
                        f"transfer of {path.name}: only text files reach a worker on Kubernetes"
                    ) from exc
                files.append({"ref": job.plan.root, "path": f"{mount}/{path.relative_to(root)}",
                              "content": content, "mode": path.stat().st_mode & 0o777})
        if not files:
            return job.plan
        return dataclasses.replace(job.plan, files=[*job.plan.files, *files])

    def _with_fetch(self, plan: Plan, paths: Sequence[str]) -> Plan:
        """A last step, always run, that prints the fetched paths as a base64 tar.gz on lines starting
        with ``FETCH_MARK`` (the pod's volumes go with it; its log is what comes back)."""
        if not paths or not plan.containers:
            return plan
        plan = Plan.from_dict(plan.to_dict())
        ref = "rshoalfetch"
        quoted = " ".join(shlex.quote(p) for p in paths)
        script = (
            'cd / && set -- && for p in ' + quoted + '; do [ -e "$p" ] && set -- "$@" "${p#/}"; done\n'
            f'[ $# -gt 0 ] || exit 0\n'
            f'"$SHOAL_BUSYBOX" tar -czf - "$@" | "$SHOAL_BUSYBOX" base64 | "$SHOAL_BUSYBOX" sed "s/^/{FETCH_MARK}/"'
        )
        last = plan.containers[-1]
        plan.stages[ref] = Stage(ref=ref, kind="shell", parent=plan.root, name="Fetch files for the parent",
                                 condition="true", shell=script, container=last.index)
        plan.stages[plan.root].children.append(ref)
        at = max((i for i, a in enumerate(last.actions) if a.op == "end" and a.ref == plan.root),
                 default=len(last.actions))
        last.actions[at:at] = [Action("start", ref), Action("exec", ref), Action("end", ref)]
        return plan

    @staticmethod
    def _unpack_fetched(lines: list[str], root: Path) -> None:
        from shoal.execution._toolkit._context import ToolkitError

        if not lines:
            return
        try:
            data = base64.b64decode("".join(lines))
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
                tar.extractall(root, filter="data")  # nothing lands outside the staging directory
        except (ValueError, tarfile.TarError, OSError) as exc:
            raise ToolkitError(f"the fetched files came back damaged: {exc}") from exc

    def run(
        self, job: SubJob, on_line: LineSink, cancel: threading.Event, on_record: RecordSink | None = None
    ) -> str:
        plan = self._with_fetch(self._with_transfers(job), job.fetch)
        operations = {ref for ref, stage in plan.stages.items() if stage.kind != "group"}
        fetched: list[str] = []

        def line_of(line: str) -> None:
            if line.startswith(FETCH_MARK):
                fetched.append(line[len(FETCH_MARK):])
            else:
                on_line(line)

        runtime = KubernetesRuntime.from_env(self.env, home=Path(job.workspace) / "home")
        if not self.env.get("SHOAL_KUBE_UNSCHEDULABLE_GRACE"):
            runtime.unschedulable_grace = SUBPLAN_UNSCHEDULABLE_GRACE
        execution = ExecutionJob(
            execution_id=job.execution_id, plan=plan, secrets=dict(job.secrets),
            artifacts_dir=job.artifacts_dir,
        )

        async def main() -> str:
            handle = await runtime.start(execution)
            stopper = asyncio.ensure_future(asyncio.to_thread(cancel.wait))

            async def follow() -> None:
                async for event in runtime.observe(handle):
                    _forward(event, operations, line_of, on_record)

            follower = asyncio.ensure_future(follow())
            announcer = asyncio.ensure_future(self._announce(runtime, handle, on_record))
            try:
                done, _ = await asyncio.wait({stopper, follower}, return_when=asyncio.FIRST_COMPLETED)
                if stopper in done:
                    await runtime.stop(handle)
                    await follower
                outcome = await runtime.wait(handle)
            finally:
                announcer.cancel()
                if not stopper.done():
                    cancel.set()  # ends the waiting thread: the instance is over anyway
                await runtime.close()
            return outcome.status

        status = asyncio.run(main())
        # Into the staging directories, where the parent's fetch reads (Mounts of ``prepare``).
        self._unpack_fetched(fetched, Path(job.workspace) / "transfer")
        return status

    @staticmethod
    async def _announce(runtime: KubernetesRuntime, handle: ExecutionHandle, on_record: RecordSink | None) -> None:
        """``("address", {"ip": pod IP})`` once the instance's pod has one: where a service is reached."""
        ip = await runtime.pod_ip(handle)
        if ip and on_record is not None:
            on_record("address", {"ip": ip})

    def resume(self, job: SubJob) -> None:
        from shoal.execution._toolkit._context import ToolkitError

        raise ToolkitError(f"cannot resume {job.execution_id}: pausing parallel workers is not supported on Kubernetes")

    def reclaim(self, execution_id: str, workspace: Path, on_line: LineSink) -> tuple[str, bool]:
        """An instance whose follower is gone (the container that ran ``run`` ended; its Job runs on):
        find it by its labels, stop it if it still runs, replay its whole log into ``on_line``.
        ``(final status, whether it was still running)``; ``("gone", False)`` when nothing is found."""
        runtime = KubernetesRuntime.from_env(self.env, home=workspace / "home")
        plan_file = runtime.workspace(execution_id).plan_file
        if not plan_file.exists():  # never started
            return "gone", False
        resource_id = str(json.loads(plan_file.read_text()).get("context", {}).get("resource_id") or execution_id)

        async def main() -> tuple[str, bool]:
            try:
                handle = await runtime.attach(execution_id, resource_id)
                if handle is None:
                    return "gone", False
                running = not runtime.workspace(execution_id).execution_file.exists()
                if running:
                    await runtime.tailing(handle, timeout=_RECLAIM_TAIL_WAIT)
                    await runtime.stop(handle)
                async for event in runtime.observe(handle):
                    if event.type == "log" and event.line is not None:
                        on_line(event.line)
                outcome = await runtime.wait(handle)
                return outcome.status, running
            finally:
                await runtime.close()

        return asyncio.run(main())


def _forward(
    event: ExecutionEvent, operations: set[str], on_line: LineSink, on_record: RecordSink | None
) -> None:
    """What the toolkit wants to hear of a sub-plan: its log lines (and why it could not start or was
    aborted, which no log line says), operation starts, artifacts."""
    if event.type == "log" and event.line is not None:
        on_line(event.line)
    elif event.details and (
        (event.type == "initialization" and event.status == "failed")
        or (event.type == "status" and event.status in ("aborted", "canceled"))
    ):
        on_line(f"{'initialization failed' if event.type == 'initialization' else event.status}: {event.details}")
    elif on_record is None:
        return
    elif event.type == "step" and event.status == "running" and event.ref in operations:
        on_record("started", {"ref": event.ref})
    elif event.type == "artifact" and event.artifact:
        on_record("artifact", dict(event.artifact))
    elif event.type == "report" and event.report:
        on_record("report", dict(event.report))

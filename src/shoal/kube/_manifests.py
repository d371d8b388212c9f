"""Plain-dict helpers for Kubernetes manifests: names and labels that pass validation, merging user
overrides into generated objects, and reading what went wrong from a Pod's or Job's status.

Pure: no I/O. Everything works on JSON-shaped dicts (what the API returns and accepts).
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

LABEL_PREFIX = "shoal.dev"
LABEL_EXECUTION = f"{LABEL_PREFIX}/execution"  # the execution id (root for workers and services)
LABEL_RESOURCE = f"{LABEL_PREFIX}/resource"  # the resource id of this Job (execution id, or <id>-<ref>-<n>)
LABEL_WORKFLOW = f"{LABEL_PREFIX}/workflow"
LABEL_AGENT = f"{LABEL_PREFIX}/agent"
LABEL_ROLE = f"{LABEL_PREFIX}/role"  # execution | worker (a parallel worker or a service instance)
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "shoal"

_DNS_LABEL = re.compile(r"[^a-z0-9-]+")
_LABEL_VALUE = re.compile(r"[^A-Za-z0-9_.-]+")


def dns_label(text: str, limit: int = 63) -> str:
    """A DNS-1123 label made from ``text`` (lowercase, ``-``, ≤ ``limit``); a hash keeps it unique
    when it had to be shortened or changed."""
    cleaned = _DNS_LABEL.sub("-", text.lower()).strip("-") or "x"
    if cleaned == text and len(text) <= limit:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    head = cleaned[: max(1, limit - 9)].rstrip("-") or "x"
    return f"{head}-{digest}"


def label_value(text: str) -> str:
    """A valid label value (≤ 63 characters, alphanumeric at both ends) standing for ``text``."""
    cleaned = _LABEL_VALUE.sub("-", text).strip("-_.")
    if cleaned == text and len(text) <= 63:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    head = cleaned[:54].strip("-_.")
    return f"{head}-{digest}" if head else digest


def label_selector(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


# ------------------------------------------------------------------------------------------ merging


def merge_labels(*sources: Mapping[str, Any] | None) -> dict[str, str]:
    """Later sources win; values become strings (YAML may hand us numbers and booleans)."""
    out: dict[str, str] = {}
    for source in sources:
        for key, value in (source or {}).items():
            if value is None:
                continue
            out[str(key)] = _scalar(value)
    return out


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def merge_named(
    base: Iterable[Mapping[str, Any]], extra: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Lists keyed by ``name`` (volumes, env, imagePullSecrets): ``extra`` replaces same-named items."""
    out: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    for item in [*base, *extra]:
        name = str(item.get("name", ""))
        if name not in out:
            order.append(name)
        out[name] = copy.deepcopy(dict(item))
    return [out[name] for name in order]


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Maps merged key by key (override wins); lists and scalars are replaced."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


_MEANINGFUL_EMPTY = frozenset({"emptyDir"})  # `emptyDir: {}` is a volume type, not an absent value


def prune(value: Any) -> Any:
    """Drop None values and empty maps/lists (strict schemas reject ``null`` for most fields)."""
    if isinstance(value, Mapping):
        out = {k: prune(v) for k, v in value.items() if v is not None}
        return {k: v for k, v in out.items() if k in _MEANINGFUL_EMPTY or (v != {} and v != [])}
    if isinstance(value, list):
        return [prune(v) for v in value if v is not None]
    return value


# ------------------------------------------------------------------------------------------ failures


@dataclass(frozen=True, slots=True)
class PodProblem:
    """Something that stops a pod from running its containers to the end, in the user's words.

    ``container`` names the container it concerns ("" for the whole pod); ``fatal`` means the pod
    will not get anywhere by waiting (the runtime should stop it and close the execution).
    """

    reason: str
    message: str
    container: str = ""
    fatal: bool = True


# Waiting reasons that do not heal by themselves (ErrImagePull retries, but reports the same cause).
_FATAL_WAITING = {
    "ErrImagePull": "cannot pull the image",
    "ImagePullBackOff": "cannot pull the image",
    "InvalidImageName": "the image name is invalid",
    "ErrImageNeverPull": "the image is not on the node and imagePullPolicy is Never",
    "CreateContainerConfigError": "the container configuration refers to something missing",
    "CreateContainerError": "the container cannot be created",
    "RunContainerError": "the container cannot be started",
}


def _statuses(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    status = pod.get("status") or {}
    return [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]


def _image_of(pod: Mapping[str, Any], name: str) -> str:
    spec = pod.get("spec") or {}
    for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        if c.get("name") == name:
            return str(c.get("image", ""))
    return ""


def pod_problem(pod: Mapping[str, Any]) -> PodProblem | None:
    """The reason a pod cannot make progress, if the status shows one (None: nothing wrong yet)."""
    status = pod.get("status") or {}
    reason = str(status.get("reason") or "")
    message = str(status.get("message") or "")
    if reason == "Evicted":
        return PodProblem("Evicted", f"the pod was evicted from its node: {message or 'no reason given'}")
    if reason == "DeadlineExceeded":
        return PodProblem("DeadlineExceeded", "pod.activeDeadlineSeconds passed: the pod was stopped")
    for cs in _statuses(pod):
        waiting = (cs.get("state") or {}).get("waiting") or {}
        why = str(waiting.get("reason") or "")
        if why in _FATAL_WAITING:
            name = str(cs.get("name", ""))
            image = _image_of(pod, name) or str(cs.get("image", ""))
            detail = str(waiting.get("message") or "").strip()
            text = (
                f"{_FATAL_WAITING[why]} {image!r} ({why})"
                if "image" in _FATAL_WAITING[why]
                else (f"{_FATAL_WAITING[why]} ({why})")
            )
            return PodProblem(why, f"{text}: {detail}" if detail else text, container=name)
    for cond in status.get("conditions") or []:
        if (cond.get("type"), cond.get("status"), cond.get("reason")) == (
            "PodScheduled",
            "False",
            "Unschedulable",
        ):
            text = str(cond.get("message") or "no node fits the pod")
            return PodProblem("Unschedulable", f"the pod cannot be scheduled: {text}")
    return None


def termination_problem(pod: Mapping[str, Any], container: str) -> PodProblem | None:
    """Why container ``container`` ended abnormally (OOMKilled, a signal, an error), if it did."""
    for cs in _statuses(pod):
        if cs.get("name") != container:
            continue
        term = (cs.get("state") or {}).get("terminated") or {}
        if not term:
            return None
        code = int(term.get("exitCode", 0) or 0)
        why = str(term.get("reason") or "")
        message = str(term.get("message") or "").strip()
        if why == "OOMKilled":
            return PodProblem(
                "OOMKilled", "the container ran out of memory and was killed (OOMKilled)", container=container
            )
        if code == 0:
            return None
        if why in ("StartError", "ContainerCannotRun"):
            return PodProblem(why, f"the container could not start: {message or why}", container=container)
        text = f"the container ended with exit code {code}"
        if why and why not in ("Error", "Completed"):
            text += f" ({why})"
        if message:
            text += f": {message}"
        return PodProblem(why or "Error", text, container=container)
    return None


def container_state(pod: Mapping[str, Any], container: str) -> str:
    """``waiting``, ``running``, ``terminated`` or ``""`` (no status yet) of one container."""
    for cs in _statuses(pod):
        if cs.get("name") == container:
            state = cs.get("state") or {}
            for key in ("terminated", "running", "waiting"):
                if key in state:
                    return key
    return ""


def exit_code(pod: Mapping[str, Any], container: str) -> int | None:
    for cs in _statuses(pod):
        if cs.get("name") == container:
            term = (cs.get("state") or {}).get("terminated")
            if term:
                return int(term.get("exitCode", 0) or 0)
    return None


def is_terminal(pod: Mapping[str, Any]) -> bool:
    return str((pod.get("status") or {}).get("phase") or "") in ("Succeeded", "Failed")


def is_scheduled(pod: Mapping[str, Any]) -> bool:
    return bool((pod.get("spec") or {}).get("nodeName"))


def job_failure(job: Mapping[str, Any]) -> PodProblem | None:
    """A Job that failed as a whole (deadline, back-off limit)."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") in ("Failed", "FailureTarget") and cond.get("status") == "True":
            reason = str(cond.get("reason") or "Failed")
            if reason == "DeadlineExceeded":
                return PodProblem(reason, "job.activeDeadlineSeconds passed: the job was stopped")
            return PodProblem(reason, f"the job failed: {cond.get('message') or reason}")
    return None

"""The API shapes of classes, pools and clusters, the read models the dashboard lists, and the set of
provisioners a control plane starts with."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from shoal.clusters._controller import ClusterController, ControllerSettings, Sealer
from shoal.clusters._local import AgentSpawner, LocalProvisioner
from shoal.clusters._memory import MemoryProvisioner
from shoal.clusters._provisioner import Provisioner
from shoal.clusters._spec import API_VERSION, BUILTIN_CLASSES, KIND_CLASS, KIND_CLUSTER, KIND_POOL
from shoal.store import Store
from shoal.store._cluster_models import ClusterClassRow, ClusterPoolRow, ClusterRow
from shoal.store._clusters import ClusterStore, aware

_HIDDEN_STATUS = ("resolved", "memberId", "errors")


def _ts(value: Any) -> str | None:
    ts = aware(value)
    return ts.isoformat() if ts is not None else None


def present_cluster(row: ClusterRow) -> dict[str, Any]:
    status = {k: v for k, v in (row.status or {}).items() if k not in _HIDDEN_STATUS}
    status["phase"] = row.phase
    resolved = (row.status or {}).get("resolved") or {}
    if resolved:
        status["provisioner"] = resolved.get("provisioner")
    if row.member_of:
        status["pool"] = {"name": row.member_of, "state": row.pool_state}
    meta: dict[str, Any] = {
        "name": row.name,
        "uid": row.id,
        "labels": dict(row.labels or {}),
        "creationTimestamp": _ts(row.created_at),
        "resourceVersion": str(row.resource_version),
    }
    if row.deletion_requested:
        meta["deletionRequested"] = True
    spec = dict(row.spec or {})
    spec["classRef"] = row.class_name
    spec["teardown"] = bool(row.teardown)
    return {
        "apiVersion": API_VERSION,
        "kind": KIND_CLUSTER,
        "name": row.name,  # convenience for scripts (`jq -r .name`); the same as metadata.name
        "phase": row.phase,  # the same as status.phase
        "metadata": meta,
        "spec": spec,
        "status": status,
    }


def present_class(name: str, spec: dict[str, Any], row: ClusterClassRow | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if row is not None:
        meta["resourceVersion"] = str(row.resource_version)
        meta["creationTimestamp"] = _ts(row.created_at)
    else:
        meta["labels"] = {"shoal.dev/built-in": "true"}
    return {"apiVersion": API_VERSION, "kind": KIND_CLASS, "metadata": meta, "spec": dict(spec)}


def present_pool(row: ClusterPoolRow, counts: dict[str, int] | None = None) -> dict[str, Any]:
    status = dict(row.status or {})
    if counts is not None:
        status.update(counts)
    return {
        "apiVersion": API_VERSION,
        "kind": KIND_POOL,
        "metadata": {
            "name": row.name,
            "resourceVersion": str(row.resource_version),
            "creationTimestamp": _ts(row.created_at),
        },
        "spec": dict(row.spec or {}),
        "status": status,
    }


async def list_classes(store: Store, env_id: str) -> list[dict[str, Any]]:
    rows = await ClusterStore(store).list_classes(env_id)
    stored = {r.name for r in rows}
    items = [present_class(r.name, r.spec, r) for r in rows]
    items += [present_class(n, s) for n, s in BUILTIN_CLASSES.items() if n not in stored]
    return sorted(items, key=lambda d: d["metadata"]["name"])


async def list_clusters(store: Store, env_id: str) -> list[dict[str, Any]]:
    """Clusters of an environment, newest first: name, class, phase, conditions, owner, labels, pool,
    poolState, expiresAt, createdAt (for the dashboard)."""
    return await ClusterStore(store).cluster_overview(env_id)


async def list_pools(store: Store, env_id: str) -> list[dict[str, Any]]:
    """Pools of an environment with ``ready``, ``provisioning`` and ``claimed`` member counts."""
    return await ClusterStore(store).pool_overview(env_id)


def default_provisioners(home: Path, spawner: AgentSpawner | None = None) -> dict[str, Provisioner]:
    """``local`` (sandboxes under ``home/clusters``), ``namespace``, ``script`` and ``noop``."""
    from shoal.clusters._namespace import NamespaceProvisioner
    from shoal.clusters._script import ScriptProvisioner

    return {
        "local": LocalProvisioner(home / "clusters", spawner),
        "namespace": NamespaceProvisioner(),
        "script": ScriptProvisioner(),
        "noop": MemoryProvisioner(),
    }


def controller_from_env(store: Store, sealer: Sealer, home: Path, server_url: str = "") -> ClusterController:
    """The controller a server (or ``shoal controller``) runs, tuned by ``SHOAL_CLUSTERS_*`` variables:
    ``POLL_S`` (loop interval), ``LEASE_S`` (single-writer lease), ``REAP_S`` / ``REAP_GRACE_S``
    (reaper period and grace), ``CONTROLLER_ID`` (ownership tag)."""

    def num(name: str, default: float) -> float:
        raw = os.environ.get(f"SHOAL_CLUSTERS_{name}")
        return float(raw) if raw else default

    settings = ControllerSettings(
        controller_id=os.environ.get("SHOAL_CLUSTERS_CONTROLLER_ID", ""),
        server_url=server_url.rstrip("/"),
        poll_interval_s=num("POLL_S", 1.0),
        pool_interval_s=num("POLL_S", 1.0),
        lease_ttl_s=num("LEASE_S", 15.0),
        reap_interval_s=num("REAP_S", 300.0),
        reap_grace_s=num("REAP_GRACE_S", 600.0),
    )
    return ClusterController(store, sealer, default_provisioners(home), settings)


def runs_in_server() -> bool:
    """False when ``SHOAL_CLUSTERS_CONTROLLER=0`` (a separate ``shoal controller`` reconciles)."""
    return os.environ.get("SHOAL_CLUSTERS_CONTROLLER", "1") not in ("0", "false", "no")

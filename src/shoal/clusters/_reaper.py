"""The leak reaper: independent of the reconcile loop, it lists what each provisioner owns (by ownership
tags) and deletes what no live record accounts for, past a grace period. Dry-run reports only."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from shoal.clusters._provisioner import OwnedResource, Provisioner, ProvisionerError
from shoal.clusters._spec import BUILTIN_CLASSES, SpecError, parse_class

if TYPE_CHECKING:
    from shoal.clusters._controller import ClusterController

log = logging.getLogger("shoal.clusters.reaper")


@dataclass(frozen=True, slots=True)
class Reaped:
    provisioner: str
    external_name: str
    cluster: str  # the record's name, or "" when there is none
    reason: str  # NoRecord | RecordFinished | NotTheRecordsResource | HardExpiry
    deleted: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "provisioner": self.provisioner,
            "externalName": self.external_name,
            "cluster": self.cluster,
            "reason": self.reason,
            "deleted": self.deleted,
        }


class Reaper:
    def __init__(self, controller: ClusterController) -> None:
        self.controller = controller

    async def owned(self) -> list[tuple[str, Provisioner, dict[str, Any], OwnedResource]]:
        """Everything every provisioner holds for this controller, once per (provisioner, name)."""
        controller_id = await self.controller.controller_id()
        targets: dict[tuple[str, str], tuple[Provisioner, dict[str, Any]]] = {}
        specs: list[dict[str, Any]] = [dict(s) for s in BUILTIN_CLASSES.values()]
        for env in await self.controller.store.all_environments():
            specs += [dict(c.spec) for c in await self.controller.clusters.list_classes(env.id)]
        for raw in specs:
            try:
                cls = parse_class(raw)
            except SpecError:
                continue
            prov = self.controller.provisioners.get(cls.provisioner)
            if prov is None:
                continue
            key = (cls.provisioner, repr(sorted((k, repr(v)) for k, v in cls.parameters.items())))
            targets.setdefault(key, (prov, cls.parameters))
        seen: set[tuple[str, str]] = set()
        result = []
        for (pname, _), (prov, params) in targets.items():
            try:
                resources = await prov.list_owned(controller_id, params)
            except ProvisionerError as exc:
                log.warning("reaper: %s cannot list what it owns: %s", pname, exc)
                continue
            for res in resources:
                if (pname, res.external_name) in seen:
                    continue
                seen.add((pname, res.external_name))
                result.append((pname, prov, params, res))
        return result

    async def sweep(self, *, dry_run: bool = False, grace_s: float | None = None) -> list[Reaped]:
        grace = timedelta(seconds=self.controller.settings.reap_grace_s if grace_s is None else grace_s)
        t = self.controller.clock()
        reaped = []
        for pname, prov, params, res in await self.owned():
            reason, name = await self._verdict(res, t, grace)
            if not reason:
                continue
            deleted = False
            if not dry_run:
                try:
                    await prov.delete(res.external_name, params)
                    deleted = True
                except ProvisionerError as exc:
                    log.warning("reaper: deleting %s/%s failed: %s", pname, res.external_name, exc)
            log.warning(
                "reaper: %s %s/%s (%s)%s",
                "deleted" if deleted else "would delete",
                pname,
                res.external_name,
                reason,
                "" if not name else f", record {name}",
            )
            reaped.append(Reaped(pname, res.external_name, name, reason, deleted))
        return reaped

    async def _verdict(self, res: OwnedResource, t: datetime, grace: timedelta) -> tuple[str, str]:
        created = res.created_at or datetime.fromtimestamp(0, UTC)
        old_enough = t >= created + grace
        uid = res.tags.cluster_uid
        row = await self.controller.clusters.get_cluster_by_id(uid) if uid else None
        if row is None:
            return ("NoRecord" if old_enough else "", "")
        hard_stop = res.tags.expires_at and t >= datetime.fromtimestamp(res.tags.expires_at, UTC) + grace
        if hard_stop and not (row.finished or row.phase == "Deprovisioning"):
            return "HardExpiry", row.name
        if row.external_name and row.external_name != res.external_name and old_enough:
            return "NotTheRecordsResource", row.name
        if row.finished:  # written only after the provisioner said absent: whatever is there now leaked
            return "RecordFinished", row.name
        return "", row.name

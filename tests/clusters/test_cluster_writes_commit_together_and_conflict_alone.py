"""Controller writes submitted together are committed together (group commit), and a write whose
resource_version moved fails alone with Conflict while the others of its batch succeed."""

from __future__ import annotations

import asyncio

import pytest

from shoal.store import Conflict
from tests.clusters.conftest import Rig


async def test_group_commit_isolates_conflicts(rig: Rig) -> None:
    rows = [await rig.clusters.create_cluster(rig.env.id, f"w{i}", "small", {}) for i in range(6)]
    await rig.clusters.signal(rows[2].id, teardown=True)  # rows[2] moved on: its write must conflict
    results = await asyncio.gather(
        *(
            rig.clusters.write_cluster(
                r.id,
                r.resource_version,
                status={"phase": "Pending", "n": i},
                **({"phase": "Pending"} if i % 2 else {}),
            )
            for i, r in enumerate(rows)
        ),
        return_exceptions=True,
    )
    assert [type(r).__name__ for r in results] == [
        "NoneType",
        "NoneType",
        "Conflict",
        "NoneType",
        "NoneType",
        "NoneType",
    ]
    for i, r in enumerate(rows):
        stored = await rig.clusters.get_cluster_by_id(r.id)
        assert stored is not None
        if i == 2:
            assert stored.teardown and stored.status.get("n") is None
        else:
            assert stored.status["n"] == i and stored.resource_version == r.resource_version + 1
    with pytest.raises(Conflict):
        await rig.clusters.write_cluster(rows[0].id, rows[0].resource_version, status={})
    sealed = ("sealed-value", None)
    fresh = await rig.clusters.get_cluster_by_id(rows[0].id)
    assert fresh is not None
    await rig.clusters.write_cluster(fresh.id, fresh.resource_version, credentials=sealed, status={})
    creds = await rig.clusters.read_credentials(fresh.id)
    assert creds is not None and creds.sealed == "sealed-value"

"""A request's owner names whom it lives for (a name or uid; a heartbeat with a positive timeout) and
its lifetime is positive: anything else is refused with the field's path."""

from __future__ import annotations

import pytest

from shoal.clusters._spec import SpecError, parse_cluster


@pytest.mark.parametrize("owner", [
    {"kind": "execution", "uid": "6b05"}, {"kind": "execution", "name": "6b05"}, {"kind": "agent", "name": "a"},
    {"kind": "heartbeat", "timeout": "10m"}, {"kind": "PipelineRun", "name": "pr-7", "namespace": "ci"},
])
def test_complete_owners_are_accepted(owner: dict[str, str]) -> None:
    assert parse_cluster({"classRef": "local", "owner": owner}).owner is not None


@pytest.mark.parametrize(("spec", "says"), [
    ({"owner": {"kind": "bogus"}}, "spec.owner: Value error, an owner of kind 'bogus' needs a name or uid"),
    ({"owner": {"kind": "heartbeat"}}, "spec.owner: Value error, a heartbeat owner needs a positive timeout"),
    ({"owner": {"kind": "heartbeat", "timeout": "0s"}}, "a heartbeat owner needs a positive timeout"),
    ({"lifetime": "0s"}, "spec.lifetime: Value error, expected a positive duration"),
])
def test_incomplete_requests_are_refused(spec: dict[str, object], says: str) -> None:
    with pytest.raises(SpecError) as refused:
        parse_cluster({"classRef": "local", **spec})
    assert any(says in p for p in refused.value.problems), refused.value.problems

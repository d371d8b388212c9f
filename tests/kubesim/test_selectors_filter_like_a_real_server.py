"""Label selectors (equality and set-based) and field selectors, parsed and applied as the API server does."""

from __future__ import annotations

import pytest
from lightkube import AsyncClient, operators
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import ConfigMap, Pod

from tests.kubesim import ApiError
from tests.kubesim._selectors import parse_field_selector, parse_label_selector
from tests.kubesim._testkit import container, pod

LABELS = {"a": {"env": "prod", "tier": "web"}, "b": {"env": "dev", "tier": "web"}, "c": {"env": "qa"}, "d": {}}


@pytest.mark.parametrize(("selector", "expected"), [
    ("env=prod", {"a"}),
    ("env==prod", {"a"}),
    ("env!=prod", {"b", "c", "d"}),
    ("env in (prod,qa)", {"a", "c"}),
    ("env notin (prod,qa)", {"b", "d"}),
    ("tier", {"a", "b"}),
    ("!tier", {"c", "d"}),
    ("tier=web,env!=dev", {"a"}),
    ("", {"a", "b", "c", "d"}),
])
def test_label_selector_grammar(selector: str, expected: set[str]) -> None:
    sel = parse_label_selector(selector)
    assert {name for name, labels in LABELS.items() if sel.matches(labels)} == expected


@pytest.mark.parametrize("bad", ["env in (prod", "env=a=b", "a b", "x in ()", "-bad=1", "k=" + "v" * 64])
def test_bad_label_selectors_are_rejected(bad: str) -> None:
    with pytest.raises(ApiError) as err:
        parse_label_selector(bad)
    assert err.value.code == 400


def test_field_selectors_only_accept_known_fields() -> None:
    sel = parse_field_selector("metadata.name=x,status.phase!=Failed", ("metadata.name", "status.phase"))
    assert sel.matches({"metadata": {"name": "x"}, "status": {"phase": "Running"}})
    assert not sel.matches({"metadata": {"name": "x"}, "status": {"phase": "Failed"}})
    with pytest.raises(ApiError):
        parse_field_selector("spec.other=1", ("metadata.name",))


async def test_lists_apply_both_selectors(client: AsyncClient) -> None:
    for name, labels in LABELS.items():
        await client.create(ConfigMap(metadata=ObjectMeta(name=name, labels=labels)), namespace="default")
    got = {c.metadata.name async for c in client.list(  # type: ignore[union-attr]
        ConfigMap, namespace="default", labels={"env": operators.in_(["prod", "qa"])})}
    assert got == {"a", "c"}
    got = {c.metadata.name async for c in client.list(  # type: ignore[union-attr]
        ConfigMap, namespace="default", labels={"tier": operators.not_exists()}, fields={"metadata.name": "c"})}
    assert got == {"c"}
    await client.create(pod("parked", [container("main", "true")], nodeSelector={"no": "node"}), namespace="default")
    pending = [p.metadata.name async for p in client.list(  # type: ignore[union-attr]
        Pod, namespace="*", fields={"status.phase": "Pending"})]
    assert pending == ["parked"]

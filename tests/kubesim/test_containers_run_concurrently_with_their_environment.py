"""Regular containers run at the same time; env comes from values, refs, envFrom and the downward API."""

from __future__ import annotations

from lightkube import AsyncClient
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import ConfigMap, Secret

from tests.kubesim import KubeSim
from tests.kubesim._testkit import container, pod

SHARED = [{"name": "shared", "mountPath": "/meet"}]


def _phase(kubesim: KubeSim, name: str) -> str | None:
    return (kubesim.get("pods", "default", name) or {}).get("status", {}).get("phase")


async def test_containers_run_concurrently(client: AsyncClient, kubesim: KubeSim) -> None:
    # each container waits (bounded) for the other's file: run one after the other, they would both fail
    def meet(me: str, other: str) -> dict[str, object]:
        script = (f"touch /meet/{me}; i=0; while [ ! -e /meet/{other} ]; do i=$((i+1)); "
                  f"[ $i -gt 400 ] && exit 1; sleep 0.01; done; echo met-{other}")
        return container(me, script, volumeMounts=SHARED)

    await client.create(pod("meeting", [meet("a", "b"), meet("b", "a")], volumes=[{"name": "shared", "emptyDir": {}}]),
                        namespace="default")
    assert kubesim.wait_until(lambda _: _phase(kubesim, "meeting") in ("Succeeded", "Failed"), 10)
    assert _phase(kubesim, "meeting") == "Succeeded"
    assert [line async for line in client.log("meeting", namespace="default", container="a")] == ["met-b\n"]


async def test_environment_sources(client: AsyncClient, kubesim: KubeSim) -> None:
    await client.create(ConfigMap(metadata=ObjectMeta(name="app"), data={"MODE": "fast", "LEVEL": "3"}),
                        namespace="default")
    await client.create(Secret(metadata=ObjectMeta(name="keys"), stringData={"KEY": "k1"}), namespace="default")
    env = [
        {"name": "BASE", "value": "/srv"},
        {"name": "DATA", "value": "$(BASE)/data and $$(BASE) and $(UNDEFINED)"},
        {"name": "TEAM", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['team']"}}},
        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
        {"name": "MAYBE", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "x", "optional": True}}},
        {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
    ]
    env_from = [{"configMapRef": {"name": "app"}, "prefix": "APP_"}, {"secretRef": {"name": "keys"}},
                {"configMapRef": {"name": "absent", "optional": True}}]
    script = 'echo "$DATA|$APP_MODE|$APP_LEVEL|$KEY|$TEAM|$IP|$SA|${MAYBE-unset}|$MEM|$HOSTNAME"'
    main = container("main", script, env=env, envFrom=env_from, resources={"limits": {"memory": "64Mi"}})
    await client.create(pod("env", [main], labels={"team": "blue"}), namespace="default")
    assert kubesim.wait_until(lambda _: _phase(kubesim, "env") in ("Succeeded", "Failed"), 10)
    lines = [line async for line in client.log("env", namespace="default")]
    assert lines == ["/srv/data and $(BASE) and $(UNDEFINED)|fast|3|k1|blue|127.0.0.1|default|unset|64|env\n"]


async def test_delete_collection_honours_the_selector(client: AsyncClient, kubesim: KubeSim) -> None:
    for name, team in (("a", "x"), ("b", "x"), ("c", "y")):
        await client.create(ConfigMap(metadata=ObjectMeta(name=name, labels={"team": team})), namespace="default")
    from tests.kubesim._testkit import raw_client

    async with raw_client(kubesim) as raw:
        res = await raw.request("DELETE", "/api/v1/namespaces/default/configmaps", params={"labelSelector": "team=x"})
    assert res.status_code == 200 and {i["metadata"]["name"] for i in res.json()["items"]} == {"a", "b"}
    left = {c["metadata"]["name"] for c in kubesim.list("configmaps", "default")}
    assert left == {"c", "kube-root-ca.crt"}
    assert kubesim.calls[("deletecollection", "configmaps")] == 1

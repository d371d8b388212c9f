"""The `script` provisioner protocol, exercised through the shipped kind example (with stand-ins for
`kind` and `kubectl` on PATH): ensure in the background (exit 10), observe until READY, a kubeconfig
from `credentials`, delete, and `list` by ownership tags for the reaper; exit 20 is permanent."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from shoal.clusters import OwnerTags, ProvisionerError, Reaper
from shoal.clusters._script import EXIT_UNSUPPORTED, ScriptProvisioner
from tests.clusters.conftest import Rig, drive

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "clusters"
FAKEBIN = Path(__file__).parent / "fakebin"


@pytest.fixture
def fake_kind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PATH", f"{FAKEBIN}:{__import__('os').environ['PATH']}")
    monkeypatch.setenv("FAKE_KIND_DIR", str(tmp_path / "fake"))
    return tmp_path / "fake"


def test_example_scripts_pass_shellcheck() -> None:
    scripts = sorted(EXAMPLES.glob("*.sh"))
    assert {p.name for p in scripts} >= {"kind.sh", "vcluster.sh"}
    subprocess.run(["shellcheck", *map(str, scripts)], check=True)


async def test_kind_cluster_lifecycle_through_the_script(
    sqlite_rig: Rig, fake_kind: Path, tmp_path: Path
) -> None:
    rig = sqlite_rig
    rig.extra["script"] = ScriptProvisioner()
    params = {"script": str(EXAMPLES / "kind.sh"), "stateDir": str(tmp_path / "state")}
    await rig.clusters.apply_class(rig.env.id, "kind", {"provisioner": "script", "parameters": params})
    uid = await rig.request("pr-5", class_name="kind")
    ctl = rig.controller()
    await drive(ctl, lambda: _phase(rig, "pr-5", "Ready"), timeout=30)
    row = await rig.clusters.get_cluster(rig.env.id, "pr-5")
    ext = row.external_name
    assert ext and (fake_kind / "clusters" / ext).exists()
    tags = json.loads((tmp_path / "state" / f"{ext}.json").read_text())
    assert tags["uid"] == uid and tags["controller"] == "test-ctl"
    sealed = await rig.clusters.read_credentials(uid)
    assert sealed is not None and f"kind-{ext}" in rig.sealer.unseal(sealed.sealed)["kubeconfig"]
    owned = await Reaper(ctl).owned()
    assert [(p, r.external_name, r.tags.cluster_uid) for p, _, _, r in owned] == [("script", ext, uid)]

    # the agent is left to the controller: exit 30 (unsupported) for both agent verbs
    for verb in ("install-agent", "remove-agent"):
        proc = subprocess.run([str(EXAMPLES / "kind.sh"), verb, "--name", ext], input=json.dumps(
            {"name": ext, "parameters": params, "agent": {"name": "cluster-pr-5"}}), text=True,
            capture_output=True, check=False)
        assert proc.returncode == EXIT_UNSUPPORTED, proc.stderr

    await rig.clusters.signal(uid, teardown=True)
    await drive(ctl, lambda: _phase(rig, "pr-5", "Deprovisioned"), timeout=30)
    assert not (fake_kind / "clusters" / ext).exists()
    assert await Reaper(ctl).owned() == []


async def test_unknown_verb_and_bad_output_are_reported(tmp_path: Path) -> None:
    script = tmp_path / "broken.sh"
    script.write_text("#!/bin/sh\ncat >/dev/null\ncase $1 in observe) echo not-json ;; *) exit 3 ;; esac\n")
    script.chmod(0o755)
    prov = ScriptProvisioner()
    params = {"script": str(script)}
    assert prov.validate(params) == []
    assert prov.validate({"script": str(tmp_path / "missing")})
    with pytest.raises(ProvisionerError, match="printed no JSON"):
        await prov.observe("ec-1", params)
    with pytest.raises(ProvisionerError, match="exited 3") as err:
        await prov.ensure("ec-1", params, OwnerTags("c", "u", "n", "e", "k", 0))
    assert not err.value.permanent


async def _phase(rig: Rig, name: str, phase: str) -> bool:
    return await rig.phase(name) == phase

"""Requests that cannot work are refused when they are made, naming the field — not accepted and
left to fail later in the controller: an owner without a name, a lifetime of zero, parameters the
class does not let a request override, labels Kubernetes would refuse, a pool of a class that does not
exist, a class with a provisioner nobody drives, broken YAML, and a `--timeout` that does not parse
(nothing is created then)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.clusters.cli import app, shoal_json
from tests.harness import server_in_thread

CLASS = """
apiVersion: shoal.dev/v1
kind: EphemeralClusterClass
metadata: {name: quick}
spec: {provisioner: noop, parameters: {size: small}, allowedParameters: [size]}
"""


def test_bad_requests_are_refused_up_front(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOAL_CLUSTERS_POLL_S", "0.05")
    with server_in_thread(tmp_path / "home") as srv:
        url, token = srv.url, srv.admin_token
        docs = tmp_path / "class.yaml"
        docs.write_text(CLASS)
        shoal_json(url, token, "pool", "apply", "-f", str(docs))

        def refused(*args: str, code: int, says: str) -> None:
            result = CliRunner().invoke(app(), list(args), env={"SHOAL_SERVER": url, "SHOAL_TOKEN": token})
            said = result.stdout + result.stderr
            assert result.exit_code == code, said
            assert says in " ".join(said.split()), said  # the error text may be wrapped
            assert "Traceback" not in said

        refused("cluster", "provision", "--class", "quick", "--owner", "bogus", code=2, says="--owner 'bogus'")
        refused("cluster", "provision", "--class", "quick", "--owner", "execution/", code=2, says="KIND/NAME")
        refused("cluster", "provision", "--class", "quick", "--lifetime", "0s", code=1, says="spec.lifetime")
        refused("cluster", "provision", "--class", "quick", "--param", "region=eu", code=1,
                says="spec.parameters: parameters region may not be overridden (allowed: size)")
        refused("cluster", "provision", "--class", "quick", "--timeout", "xyz", "--wait", code=2,
                says="xyz")
        refused("cluster", "provision", "--class", "quick", "--label", "bad/key/x=1", code=1,
                says="metadata.labels.bad/key/x: expected a label key")
        refused("cluster", "provision", "--class", "quick", "--label", "pr=" + "7" * 70, code=1,
                says="is not a label value")
        assert shoal_json(url, token, "cluster", "get") == []  # none of them created a cluster

        ok = shoal_json(url, token, "cluster", "provision", "--class", "quick", "--param", "size=big", "--wait")
        assert ok["phase"] == "Ready"
        refused("cluster", "deprovision", ok["name"], "--timeout", "zz", "--wait", code=2, says="zz")
        assert shoal_json(url, token, "cluster", "get", ok["name"])["phase"] == "Ready"  # not signalled

        bad_pool = tmp_path / "pool.yaml"
        bad_pool.write_text("apiVersion: shoal.dev/v1\nkind: EphemeralClusterPool\nmetadata: {name: p}\n"
                            "spec: {classRef: nosuch}\n")
        refused("pool", "apply", "-f", str(bad_pool), code=1,
                says=f"{bad_pool}: spec.classRef: cluster class 'nosuch' not found")
        bad_class = tmp_path / "bad-class.yaml"
        bad_class.write_text("apiVersion: shoal.dev/v1\nkind: EphemeralClusterClass\nmetadata: {name: c}\n"
                             "spec: {provisioner: nosuch}\n")
        refused("pool", "apply", "-f", str(bad_class), code=1, says="spec.provisioner")
        broken = tmp_path / "broken.yaml"
        broken.write_text("kind: EphemeralClusterPool\nmetadata: {name: p\n")
        refused("pool", "apply", "-f", str(broken), code=2, says=f"{broken}:3:1: invalid YAML")
        assert [p["name"] for p in shoal_json(url, token, "pool", "get")] == []

"""The execution page reads JUnit reports from the artifacts (failed cases listed, DOCTYPEs refused) and
never shows sensitive config values."""

from __future__ import annotations

import pytest

from shoal.server.dashboard._junit import ReportUnreadable, failed_cases
from tests.dashboard.conftest import App

JUNIT = b"""<?xml version="1.0"?>
<testsuites>
  <testsuite name="api">
    <testcase classname="api.Users" name="test_create" time="0.1"/>
    <testcase classname="api.Users" name="test_delete" time="0.2">
      <failure message="expected 204, got 500">Traceback: boom</failure>
    </testcase>
    <testcase classname="api.Orders" name="test_list"><error message="timeout"/></testcase>
    <testcase classname="api.Orders" name="test_skip"><skipped/></testcase>
  </testsuite>
</testsuites>
"""


def test_failed_cases_are_read_in_order_and_doctypes_refused() -> None:
    cases = failed_cases(JUNIT)
    assert [(c.classname, c.name, c.kind, c.message) for c in cases] == [
        ("api.Users", "test_delete", "failure", "expected 204, got 500"),
        ("api.Orders", "test_list", "error", "timeout"),
    ]
    assert cases[0].suite == "api" and cases[0].text == "Traceback: boom"
    with pytest.raises(ReportUnreadable):
        failed_cases(b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><testsuite/>')


async def test_the_page_lists_failed_cases_and_hides_sensitive_values(app: App) -> None:
    store = app.state.store
    env = await store.get_environment(app.state.organization.id, "default")
    workflow = {
        "metadata": {"name": "api"},
        "spec": {"config": {"token": {"type": "string", "sensitive": True}, "region": {"default": "eu"}}},
    }
    ex = await store.create_execution(
        env.id,
        "api",
        workflow=workflow,
        config={"region": "us"},
        sealed_config=app.state.sealer.seal({"token": "s3cr3t-value"}),
        status="failed",
        signature=[{"ref": "r1", "name": "run tests"}],
    )
    await store.update_execution(
        ex.id,
        result={"status": "failed", "steps": {"r1": {"status": "failed", "exitCode": 1}}},
        reports=[
            {
                "ref": "r1",
                "kind": "junit",
                "file": "junit.xml",
                "summary": {
                    "tests": 4,
                    "passed": 1,
                    "failed": 1,
                    "errored": 1,
                    "skipped": 1,
                    "duration": 300,
                },
            }
        ],
    )
    key = f"executions/{ex.id}/artifacts/reports/junit.xml"
    size = await app.state.blobs.put(key, JUNIT)
    await store.add_artifact(ex.id, "reports/junit.xml", size, key)
    web = await app.signed_in(await app.token("viewer"))
    page = (await web.get(f"/dashboard/envs/default/executions/{ex.id}")).text
    assert "test_delete" in page and "expected 204, got 500" in page and "test_list" in page
    assert "test_create" not in page
    assert "s3cr3t-value" not in page and "hidden (sensitive)" in page
    assert ">us<" in page
    r = await web.get(f"/dashboard/envs/default/executions/{ex.id}/artifacts/reports/junit.xml")
    assert r.status_code == 200 and r.content == JUNIT
    await web.aclose()

"""Every page loads only what the server serves, keeps to its landmarks, and labels every control."""

from __future__ import annotations

from html.parser import HTMLParser

from shoal.store import Execution
from tests.dashboard.conftest import App


class _Audit(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.external: list[str] = []
        self.landmarks: set[str] = set()
        self.controls: list[dict[str, str | None]] = []
        self.label_for: set[str] = set()
        self.inside_label = 0
        self.inline_scripts = 0
        self.styles = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        for attr in ("src", "href"):
            value = a.get(attr) or ""
            if tag in ("script", "link", "img") and value.startswith(("http:", "https:", "//")):
                self.external.append(value)
        if tag in ("header", "main", "footer", "nav"):
            self.landmarks.add(tag)
        if tag == "label":
            self.inside_label += 1
            if a.get("for"):
                self.label_for.add(str(a["for"]))
        if tag in ("input", "select", "textarea") and a.get("type") != "hidden":
            self.controls.append({**a, "_wrapped": "yes" if self.inside_label else None})
        if tag == "script" and not a.get("src") and a.get("type") != "application/json":
            self.inline_scripts += 1
        if "style" in a:
            self.styles += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self.inside_label -= 1


async def test_pages_use_no_outside_resources_and_every_control_has_a_label(app: App) -> None:
    env = await app.state.store.get_environment(app.state.organization.id, "default")
    ex: Execution = await app.state.store.create_execution(
        env.id, "smoke", workflow={"metadata": {"name": "smoke"}}, signature=[{"ref": "r1", "name": "one"}]
    )
    web = await app.signed_in(await app.token("admin"))
    paths = [
        "/dashboard/envs",
        "/dashboard/envs/default",
        "/dashboard/envs/default/workflows",
        "/dashboard/envs/default/workflows/smoke",
        f"/dashboard/envs/default/executions/{ex.id}",
        "/dashboard/envs/default/clusters",
    ]
    async with app.client() as anonymous:
        login = (await anonymous.get("/dashboard/login")).text
    for path, html in [("/dashboard/login", login)] + [(p, (await web.get(p)).text) for p in paths]:
        audit = _Audit()
        audit.feed(html)
        assert audit.external == [], path
        assert {"header", "main", "footer"} <= audit.landmarks, path
        assert audit.inline_scripts == 0 and audit.styles == 0, path  # the CSP forbids both
        for control in audit.controls:
            labelled = (
                control.get("_wrapped")
                or control.get("aria-label")
                or (control.get("id") and control["id"] in audit.label_for)
            )
            assert labelled, f"{path}: unlabelled control {control}"
    static = await web.get("/dashboard/static/htmx.min.js")
    assert static.status_code == 200 and b"htmx" in static.content[:2000]
    await web.aclose()

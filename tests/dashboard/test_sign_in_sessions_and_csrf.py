"""Sign-in with an API token: signed HttpOnly/SameSite cookies, CSRF on every form, sessions that end."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

from tests.dashboard.conftest import App, csrf_of


async def test_pages_need_a_session_and_send_you_back_after_signing_in(app: App) -> None:
    async with app.client() as web:
        r = await web.get("/dashboard/envs/default/workflows?status=failed")
        assert r.status_code == 303
        target = urlparse(r.headers["location"])
        assert target.path == "/dashboard/login"
        assert parse_qs(target.query)["next"] == ["/dashboard/envs/default/workflows?status=failed"]
        form = await web.get(r.headers["location"])
        assert 'value="/dashboard/envs/default/workflows?status=failed"' in form.text
        token = await app.token("viewer")
        r = await web.post(
            "/dashboard/login",
            data={"token": token, "csrf": csrf_of(form.text), "next": "/dashboard/envs/default/workflows"},
        )
        assert r.status_code == 303 and r.headers["location"] == "/dashboard/envs/default/workflows"
        cookie = r.headers["set-cookie"]
        assert "shoal_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
        assert "Path=/dashboard" in cookie
        page = await web.get("/dashboard/envs/default/workflows")
        assert page.status_code == 200 and "Content-Security-Policy" in page.headers


async def test_sign_in_refuses_bad_tokens_agent_tokens_and_forged_forms(app: App) -> None:
    async with app.client() as web:
        form = await web.get("/dashboard/login")
        csrf = csrf_of(form.text)
        r = await web.post("/dashboard/login", data={"token": "shoal_nope", "csrf": csrf})
        assert r.status_code == 303 and "not+valid" in r.headers["location"]
        agent = await app.token("agent", "default")
        r = await web.post("/dashboard/login", data={"token": agent, "csrf": csrf})
        assert "agent+token+cannot" in r.headers["location"]
        assert "shoal_session" not in web.cookies
    async with app.client() as other:  # a form posted from elsewhere: no sign-in cookie, or a wrong CSRF
        admin = await app.token("admin")
        r = await other.post("/dashboard/login", data={"token": admin, "csrf": csrf})
        assert r.status_code == 403
        await other.get("/dashboard/login")
        r = await other.post("/dashboard/login", data={"token": admin, "csrf": csrf})
        assert r.status_code == 403 and "shoal_session" not in other.cookies


async def test_tampered_cookies_and_revoked_tokens_end_the_session(app: App) -> None:
    token = await app.token("viewer")
    web = await app.signed_in(token)
    assert (await web.get("/dashboard/envs")).status_code == 200
    value = web.cookies["shoal_session"]
    body, _, mac = value.partition(".")
    web.cookies.set(
        "shoal_session", body + "." + ("A" if mac[0] != "A" else "B") + mac[1:], path="/dashboard"
    )
    assert (await web.get("/dashboard/envs")).status_code == 303
    web.cookies.set("shoal_session", value, path="/dashboard")
    assert (await web.get("/dashboard/envs")).status_code == 200
    row = await app.state.store.authenticate(token)
    assert row is not None
    await app.state.store.revoke_token(row.id)
    r = await web.get("/dashboard/envs")
    assert r.status_code == 303 and r.headers["location"].startswith("/dashboard/login")
    await web.aclose()


async def test_forms_without_the_session_csrf_token_are_refused(app: App) -> None:
    admin = await app.token("admin")
    web = await app.signed_in(admin)
    other = await app.signed_in(admin)
    page = await other.get("/dashboard/envs")
    foreign_csrf = csrf_of(page.text)  # valid for the other session only
    r = await web.post("/dashboard/logout", data={})
    assert r.status_code == 403
    r = await web.post("/dashboard/logout", data={"csrf": foreign_csrf})
    assert r.status_code == 403
    own = csrf_of((await web.get("/dashboard/envs")).text)
    r = await web.post("/dashboard/logout", data={"csrf": own})
    assert r.status_code == 303 and 'shoal_session=""' in r.headers["set-cookie"]
    await web.aclose()
    await other.aclose()


async def test_an_htmx_refresh_without_a_session_moves_the_whole_page_to_sign_in(app: App) -> None:
    async with app.client() as web:
        r = await web.get("/dashboard/envs/default/live", headers={"HX-Request": "true"})
        assert r.status_code == 200 and r.headers["HX-Redirect"].startswith("/dashboard/login?next=")
        assert r.content == b""

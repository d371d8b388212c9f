"""`shoal dashboard link`: a short-lived, single-use URL that signs a browser in to the dashboard.

Like a notebook server's token link: the server keeps only a keyed digest of the link's secret, the
link expires after a few minutes and works once; the browser session it opens acts with the rights of
the token that asked for it.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import typer

from shoal.cli._client_cmds import EnvOpt, ServerOpt, TokenOpt, connect, fail

if TYPE_CHECKING:
    from shoal.client import Client


def request_link(client: Client, execution_id: str | None = None, path: str | None = None) -> dict[str, Any]:
    """Ask the server for a sign-in link (``POST /v1/dashboard/links``); returns ``{url, path, expiresAt}``."""
    import httpx

    from shoal.client import ClientError

    body: dict[str, Any] = {"environment": client.environment}
    if execution_id:
        body["executionId"] = execution_id
    if path:
        body["path"] = path
    try:
        response = client.http.post("/v1/dashboard/links", json=body)
    except httpx.HTTPError as exc:
        raise ClientError(f"cannot reach {client.server}: {exc}") from None
    if not response.is_success:
        try:
            message = str(response.json().get("error") or response.reason_phrase)
        except (ValueError, AttributeError):
            message = response.text[:300] or response.reason_phrase
        raise ClientError(f"{message} (HTTP {response.status_code})", response.status_code)
    data: dict[str, Any] = response.json()
    return data


def register(app: typer.Typer) -> None:
    dashboard = typer.Typer(help="The web dashboard served by the control plane.", no_args_is_help=True)
    app.add_typer(dashboard, name="dashboard")

    @dashboard.command("link")
    def link(
        execution: str = typer.Option(None, "--execution", "-e", help="Open this execution's page."),
        open_browser: bool = typer.Option(False, "--open", help="Also open the link in a browser."),
        server: str = ServerOpt,
        token: str = TokenOpt,
        env: str = EnvOpt,
    ) -> None:
        """Print a single-use link (valid a few minutes) that signs a browser in and opens the page."""
        from shoal.client import ClientError

        with connect(server, token, env) as c:
            try:
                data = request_link(c, execution)
            except ClientError as exc:
                raise fail(str(exc)) from None
        sys.stdout.write(f"{data['url']}\n")
        sys.stderr.write(f"single use, expires at {data['expiresAt']}\n")
        if open_browser:
            import webbrowser

            webbrowser.open(str(data["url"]))


__all__ = ["register", "request_link"]

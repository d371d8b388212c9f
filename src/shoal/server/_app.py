"""The FastAPI application of the control plane."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from shoal import __version__
from shoal.server._settings import ServerSettings
from shoal.server._state import ServerState
from shoal.server.api import routers
from shoal.server.dashboard import mount as mount_dashboard

log = logging.getLogger("shoal.server")


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    settings = settings or ServerSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = await ServerState.start(settings)
        app.state.shoal = state
        if state.admin_token and settings.print_admin_token:
            print(
                f"shoal: admin token (also in {settings.home / 'admin-token'}): {state.admin_token}",
                flush=True,
            )
        try:
            yield
        finally:
            await state.stop()

    app = FastAPI(
        title="shoal control plane",
        version=__version__,
        description="Workflows, environments, agents and results of shoal (Testkube-shaped paths under /v1).",
        lifespan=lifespan,
    )
    for router in routers:
        app.include_router(router)
    mount_dashboard(app)

    @app.get("/health", tags=["meta"])
    async def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__, "server": settings.server_id}

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        detail = exc.detail
        body = detail if isinstance(detail, dict) else {"error": str(detail)}
        return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            problems.append(f"{loc}: {err.get('msg', 'invalid')}")
        return JSONResponse({"error": "invalid request", "problems": problems}, status_code=422)

    @app.exception_handler(Exception)
    async def internal_error(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error")
        return JSONResponse({"error": f"internal error ({type(exc).__name__})"}, status_code=500)

    return app

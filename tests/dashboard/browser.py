"""Headless Chromium (Debian's) for the dashboard's browser tests, through Playwright's async API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests.dashboard.conftest import OUTPUT

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="browser tests need Debian's headless Chromium at /usr/bin/chromium"
)


@asynccontextmanager
async def browser_page(color_scheme: str = "light") -> AsyncIterator[object]:
    """A fresh page (1366x900, a laptop screen) that accepts confirmation dialogs and downloads."""
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            context = await browser.new_context(
                viewport={"width": 1366, "height": 900},
                color_scheme=color_scheme,  # type: ignore[arg-type]
                accept_downloads=True,
            )
            page = await context.new_page()
            page.on("dialog", lambda d: d.accept())
            yield page
        finally:
            await browser.close()


def shot_path(name: str) -> Path:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    return OUTPUT / f"{name}.png"

"""Browser tests: the dashboard in real headless Chromium (Debian's package), driven by
Playwright with its executable path set (Playwright's own browser downloads are not used).

``make test`` installs Chromium (Makefile, ``$(CHROMIUM)``) and passes its path in
``$AP_CHROMIUM``. Screenshots go to ``tests/artifacts/``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.e2e.conftest import PipelineMesh, small_repo  # noqa: F401 (a fixture)

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"

# The flags that keep Chromium from reaching for the network on this closed machine.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    path = os.environ.get("AP_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.fail(f"Chromium is not installed at {path}; run `make browser` (or make test)")
    return path


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    # Package scope: Playwright's sync API runs an event loop in this thread while it is
    # open, which the asyncio tests of the other packages must not find running.
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    context.close()
    assert not errors, f"the page threw: {errors}"


def dashboard_url(mesh: PipelineMesh) -> str:
    """The URL the broadcaster bound (``dashboard`` in mesh.json)."""
    url: str = json.loads((mesh.state_dir / "mesh.json").read_text())["dashboard"]
    return url


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page screenshot under tests/artifacts/ and return its path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


Wait = Callable[[], bool]

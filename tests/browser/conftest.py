"""Playwright driving Debian's Chromium (Playwright cannot download browsers here)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest

T = TypeVar("T")
CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # No calls home: the machine has no network and Chromium would retry them.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail(f"Chromium not found at {CHROMIUM}; run .ci/run or apt-get install chromium")
    # Playwright's sync API keeps an event loop running in this thread until it is closed (hence the
    # module scope: later tests may call asyncio.run). The ORM calls made by assertions here are
    # still synchronous and safe.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, asgi_server) -> Iterator[object]:
    context = browser.new_context(base_url=asgi_server)
    # As a user's click would allow it; headless Chromium otherwise leaves clipboard writes pending.
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.console_messages = []
    page.on("console", lambda message: page.console_messages.append(f"{message.type}: {message.text}"))
    yield page
    context.close()


def off_the_loop(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call a service that blocks on async work (a provider's connection test) from a plain thread.

    Playwright's sync API runs an event loop in the test's thread, where ``async_to_sync`` refuses to run. The
    thread's database connection goes back to the pool after (else every call would keep one of the process's).
    """
    from django.db import connection

    def call() -> T:
        try:
            return function(*args, **kwargs)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(call).result()


def sign_in(page: Any, username: str, workspace: str) -> None:
    """Log in as ``username`` (the factories' password) and switch to ``workspace``, which the user owns."""
    from playwright.sync_api import expect

    from tests.factories import PASSWORD

    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/")
    page.locator("#workspace-switcher").select_option(label=f"{workspace} (owner)")
    expect(page.get_by_role("heading", level=1)).to_have_text(workspace)
    page.wait_for_load_state("networkidle")

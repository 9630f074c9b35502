"""A knowledge base in a real browser: created from its form, filled by dropping several files on it at once
(a real worker ingests them), each file's progress and error shown live, then searched in the playground."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import sign_in
from tests.factories import make_user, make_workspace
from tests.knowledge_app.files import make_pdf

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def test_create_a_knowledge_base_drop_files_and_search_it(page, media, celery_worker):
    make_workspace(owner=make_user(username="kira"), name="Library")
    sign_in(page, "kira", "Library")

    page.get_by_role("link", name="Knowledge", exact=True).click()
    expect(page.get_by_text("No knowledge bases yet")).to_be_visible()
    page.get_by_role("link", name="Create a knowledge base").click()
    page.get_by_label("Name").fill("Manuals")
    page.get_by_label("Chunk size").fill("300")
    page.get_by_label("Chunk overlap").fill("0")
    page.get_by_role("button", name="Create knowledge base").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Manuals")
    expect(page.locator("#files-empty")).to_be_visible()

    # Several files at once, as a drop hands them over: sent in one request, listed at once.
    page.locator("#upload-input").set_input_files(
        [
            {"name": "kettle.pdf", "mimeType": "application/pdf", "buffer": make_pdf(["Descale the kettle monthly."])},
            {"name": "notes.md", "mimeType": "text/markdown", "buffer": b"# Oven\n\nPreheat the oven for ten minutes."},
            {"name": "scan.pdf", "mimeType": "application/pdf", "buffer": make_pdf([""])},
        ]
    )
    rows = page.locator("#files tbody tr")
    expect(rows).to_have_count(3)
    # The table polls itself until every file is done: no reload.
    expect(page.locator('#files tr[data-status="processed"]')).to_have_count(2, timeout=60_000)
    scan = page.locator("#files tr", has_text="scan.pdf")
    expect(scan).to_have_attribute("data-status", "error")
    expect(scan.locator(".file-error")).to_contain_text("no text")
    expect(page.locator("#files")).not_to_have_attribute("hx-trigger", "every 1s")

    page.get_by_label("Search for").fill("descale kettle")
    page.get_by_role("button", name="Search").click()
    first = page.locator(".search-hit").first
    expect(first).to_contain_text("Descale the kettle monthly.")
    expect(first).to_contain_text("kettle.pdf, page 1")
    expect(first.locator(".scores")).to_contain_text("rrf")
    blocked = [m for m in page.console_messages if "Content Security Policy" in m or m.startswith("error")]
    assert blocked == []

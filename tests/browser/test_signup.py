from __future__ import annotations

import pytest

from accounts_app.models import Membership

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_sign_up_and_land_on_the_dashboard(page):
    page.goto("/")
    assert "/accounts/login/" in page.url
    page.get_by_role("link", name="Create an account").click()

    page.get_by_label("Username").fill("dana")
    page.get_by_label("Email").fill("dana@example.com")
    page.get_by_label("Password", exact=True).fill("a long passphrase 42")
    page.get_by_label("Password again").fill("a long passphrase 42")
    page.get_by_role("button", name="Create account").click()

    page.wait_for_url("**/")
    assert page.get_by_role("heading", level=1).inner_text() == "dana's workspace"
    assert page.get_by_test_id("balance").inner_text() == "100"
    assert page.get_by_role("status").first.inner_text().startswith("Welcome!")
    assert Membership.objects.get(user__username="dana").role == "owner"

    # htmx is loaded from our own static files and swaps fragments under the CSP.
    page.get_by_role("link", name="Usage").click()
    page.wait_for_url("**/usage/")
    page.get_by_role("link", name="Reservations").click()
    page.get_by_text("No ledger entries yet").wait_for()
    assert page.url.endswith("/usage/?kind=reserve")
    assert page.evaluate("typeof window.htmx") == "object"

    blocked = [m for m in page.console_messages if "Content Security Policy" in m or m.startswith("error")]
    assert blocked == []


def test_sign_up_errors_are_shown(page):
    page.goto("/accounts/signup/")
    page.get_by_label("Username").fill("dana")
    page.get_by_label("Email").fill("dana@example.com")
    page.get_by_label("Password", exact=True).fill("short")
    page.get_by_label("Password again").fill("different")
    page.get_by_role("button", name="Create account").click()
    page.get_by_text("The two passwords differ.", exact=True).wait_for()
    assert "/accounts/signup/" in page.url

from __future__ import annotations

import pytest
from django.test import override_settings
from playwright.sync_api import expect

from providers_app.services import provider_create
from tests.factories import PASSWORD, make_user, make_workspace
from tests.fakes import Error, Reply

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_create_an_agent_chat_with_streaming_and_open_the_run(page, fake_openai):
    owner = make_workspace(owner=make_user(username="dana"), name="Studio")
    with override_settings(PROVIDER_EGRESS_ALLOWLIST=["127.0.0.1"]):
        provider_create(
            actor=owner,
            type="custom",
            name="Fake",
            base_url=fake_openai.base_url,
            models=["fake-model"],
        )
        # Slow enough to watch it arrive word by word.
        fake_openai.script(Reply("Hello Dana, streaming works word by word here.", chunk_delay=0.15))

        page.goto("/accounts/login/")
        page.get_by_label("Username").fill("dana")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url("**/")
        page.locator("#workspace-switcher").select_option(label="Studio (owner)")
        expect(page.get_by_role("heading", level=1)).to_have_text("Studio")

        # Adding a provider did not make it the default; making it one asks first, then tests and switches.
        page.get_by_role("link", name="Providers", exact=True).click()
        expect(page.locator("#agents-local")).to_have_text("0")
        page.locator("tr", has_text="Fake").get_by_role("link", name="Make default").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Make “Fake” the default?")
        page.get_by_role("button", name="Test the connection and make it the default").click()
        expect(page.locator("#messages")).to_contain_text("“Fake” is now the default")
        expect(page.locator("tr", has_text="Fake").locator(".badge-current")).to_have_text("default")

        page.get_by_role("link", name="Agents", exact=True).click()
        page.get_by_role("link", name="New agent").click()
        page.get_by_label("Name").fill("Greeter")
        page.get_by_label("Instructions").fill("Greet people warmly.")
        page.get_by_role("button", name="Create agent").click()
        page.wait_for_url("**/chat/")

        page.get_by_label("Message").fill("Hi, I am Dana")
        page.get_by_role("button", name="Send").click()
        bubble = page.locator(".msg.assistant").last
        # Part of the answer is visible while the rest is still streaming (page evals are refused by the CSP,
        # so this polls with locators).
        expect(page.locator(".msg.assistant.streaming")).to_contain_text("Hello")
        partial = bubble.inner_text()
        assert "Hello" in partial
        assert "word by word here." not in partial
        run_link = bubble.get_by_role("link", name="run #")
        run_link.wait_for()
        assert "Hello Dana, streaming works word by word here." in bubble.inner_text()
        assert "conversation=" in page.url
        trace_href = bubble.get_by_role("link", name="trace").get_attribute("href") or ""
        assert trace_href.startswith("/traces/trace_")  # every answer links to its trace
        meta = bubble.locator(".run-meta")
        box = meta.bounding_box()
        assert box is not None
        assert box["height"] < 30
        expect(page.locator("#conversation-list li")).to_have_count(1)  # the new conversation is listed at once
        expect(page.locator("#conversation-list a[aria-current=true]")).to_have_count(1)
        expect(page.locator("#runs-on")).to_contain_text("Runs on Fake (the workspace default) · fake-model")
        page.reload()  # the links are the server's, so they survive a reload
        expect(page.locator(".msg.assistant").last.get_by_role("link", name="trace")).to_have_attribute(
            "href", trace_href
        )
        run_link = page.locator(".msg.assistant").last.get_by_role("link", name="run #")

        run_link.click()
        page.wait_for_url("**/agents/runs/*/")
        assert page.get_by_test_id("run-output").inner_text() == "Hello Dana, streaming works word by word here."
        assert "Succeeded" in page.get_by_role("heading", level=1).inner_text()
        blocked = [m for m in page.console_messages if "Content Security Policy" in m or m.startswith("error")]
        assert blocked == []


def test_stop_cancels_the_run_and_a_provider_failure_links_to_the_fix(page, fake_openai):
    from accounts_app.models import LedgerEntry
    from agents_app.models import AgentRun
    from agents_app.services import agent_create

    owner = make_workspace(owner=make_user(username="stig"), name="Halt")
    with override_settings(PROVIDER_EGRESS_ALLOWLIST=["127.0.0.1"]):
        provider = provider_create(
            actor=owner, type="custom", name="Fake", base_url=fake_openai.base_url, models=["fake-model"]
        )
        agent = agent_create(actor=owner, name="Talker", instructions="Talk.", provider_id=provider.pk)
        fake_openai.script(Reply("one two three four five six seven eight nine ten eleven twelve", chunk_delay=0.4))
        page.goto("/accounts/login/")
        page.get_by_label("Username").fill("stig")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url("**/")
        page.locator("#workspace-switcher").select_option(label="Halt (owner)")
        expect(page.get_by_role("heading", level=1)).to_have_text("Halt")
        page.wait_for_load_state("networkidle")  # the switch is a form post: let it land before moving on
        page.goto(f"/agents/{agent.pk}/chat/")
        expect(page.locator("#runs-on")).to_contain_text("Runs on Fake · fake-model")

        page.get_by_label("Message").fill("Count slowly")
        page.get_by_role("button", name="Send").click()
        expect(page.locator(".msg.assistant.streaming")).to_contain_text("one")
        page.get_by_role("button", name="Stop").click()
        bubble = page.locator(".msg.assistant").last
        expect(bubble).to_contain_text("Stopped.")
        expect(bubble.locator(".run-meta")).to_have_attribute("data-status", "cancelled", timeout=20_000)
        expect(bubble.locator(".run-meta .badge")).to_have_text("Cancelled")
        expect(page.get_by_role("button", name="Stop")).to_be_hidden()
        run = AgentRun.objects.get(agent=agent)
        assert run.status == "cancelled"
        assert LedgerEntry.objects.filter(reservation_id=run.reservation_id, kind="refund").exists()
        assert "twelve" not in bubble.inner_text()

        fake_openai.script(Error(401, "Incorrect API key provided"))
        page.get_by_label("Message").fill("Again")
        page.get_by_role("button", name="Send").click()
        failed = page.locator(".msg.assistant").last
        expect(failed.get_by_role("link", name="Fix the provider")).to_have_attribute(
            "href", f"/providers/{provider.pk}/"
        )

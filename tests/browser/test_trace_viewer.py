from __future__ import annotations

import json
import threading

import pytest
from agents import flush_traces
from django.test import override_settings
from playwright.sync_api import expect

from agents_app.services import agent_create
from providers_app.services import provider_create
from tests.agents_app.test_runs import run_sync
from tests.browser.conftest import off_the_loop
from tests.factories import PASSWORD, make_user, make_workspace
from tests.fakes import Reply, ToolCall

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_open_a_runs_trace_expand_a_span_and_see_its_tool_arguments(page, fake_openai):
    owner = make_workspace(owner=make_user(username="tess"), name="Lab")
    with override_settings(PROVIDER_EGRESS_ALLOWLIST=["127.0.0.1"]):
        off_the_loop(
            provider_create,
            actor=owner,
            type="custom",
            name="Fake",
            base_url=fake_openai.base_url,
            models=["fake-model"],
            is_default=True,
        )
        owner.workspace.refresh_from_db()
        lookup = agent_create(actor=owner, name="Lookup", instructions="Look things up.")
        writer = agent_create(
            actor=owner,
            name="Writer",
            instructions="Write.",
            tools=[{"type": "agent", "name": "lookup", "params": {"agent_id": lookup.pk}}],
        )
        owner.workspace.refresh_from_db()
        fake_openai.script(
            ToolCall("lookup", {"input": "tallest mountain in Norway"}),
            Reply("Galdhøpiggen."),
            Reply("It is Galdhøpiggen."),
        )
        # Playwright's sync API keeps an event loop in this thread: the run goes on a thread of its own.
        done: list = []
        worker = threading.Thread(target=lambda: done.append(run_sync(owner, writer, "Which is the tallest?")))
        worker.start()
        worker.join(timeout=60)
        run = done[0]
    flush_traces()

    page.goto("/accounts/login/")
    page.get_by_label("Username").fill("tess")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/")
    page.locator("#workspace-switcher").select_option(label="Lab (owner)")
    expect(page.get_by_role("heading", level=1)).to_have_text("Lab")
    page.wait_for_load_state("networkidle")  # the switch is a form post: let it land before moving on

    page.goto(f"/agents/runs/{run.pk}/")
    page.get_by_test_id("trace-link").click()
    page.wait_for_url(f"**/traces/{run.trace_id}/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Writer")
    expect(page.locator(".span-row")).to_have_count(run_trace_span_count(run.trace_id))
    page.get_by_test_id("span-function").click()  # loads the span into the side panel (htmx)
    arguments = page.get_by_test_id("tool-arguments")
    expect(arguments).to_be_visible()
    assert json.loads(arguments.locator("pre").inner_text()) == {"input": "tallest mountain in Norway"}
    expect(arguments.locator(".j-str")).to_have_text('"tallest mountain in Norway"')  # coloured JSON
    expect(page.get_by_test_id("span-panel")).to_contain_text("Galdhøpiggen.")
    assert "/spans/" not in page.url  # the panel was swapped in, not a page load
    function_span = page.get_by_test_id("span-function")
    assert page.url.endswith("?span=" + (function_span.get_attribute("href") or "").split("=")[1])  # linkable
    expect(page.locator(".span-row.selected")).to_have_count(1)
    expect(page.locator(".span-row.selected [data-testid=span-function]")).to_have_count(1)
    page.reload()  # the link opens the same view
    expect(page.get_by_test_id("tool-arguments")).to_be_visible()
    expect(page.locator(".span-row.selected [data-testid=span-function]")).to_have_count(1)
    blocked = [m for m in page.console_messages if "Content Security Policy" in m or m.startswith("error")]
    assert blocked == []


def run_trace_span_count(trace_id: str) -> int:
    from traces_app.models import Span

    return Span.objects.filter(trace_id=trace_id).count()

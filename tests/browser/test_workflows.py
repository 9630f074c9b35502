"""A workflow in a real browser: two steps and a branch built on the designer (the graph redrawn as it is typed),
run from its page by a real worker, its progress followed live to the end."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from agents_app.services import agent_create
from tests.browser.conftest import off_the_loop, sign_in
from tests.factories import make_fake_provider, make_user, make_workspace
from tests.fakes import Reply

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def local_models(settings):
    """The fake model server is on this machine: allowed here and in the worker started after this."""
    settings.PROVIDER_EGRESS_ALLOWLIST = ["127.0.0.1"]


def test_build_a_branching_workflow_on_the_designer_run_it_and_watch_it_finish(
    page, fake_openai, local_models, celery_worker
):
    owner = make_workspace(owner=make_user(username="wren"), name="Newsroom")
    off_the_loop(make_fake_provider, owner, fake_openai.base_url)  # its connection test blocks on async work
    agent_create(actor=owner, name="Writer", instructions="Write a draft.")
    agent_create(actor=owner, name="Editor", instructions="Polish the draft.")
    # Slow enough to see the first step running before the second starts.
    fake_openai.script(Reply("The draft is ready.", delay=1.5), Reply("A polished article."))

    sign_in(page, "wren", "Newsroom")

    page.get_by_role("link", name="Workflows", exact=True).click()
    expect(page.get_by_text("No workflows yet")).to_be_visible()
    page.get_by_role("link", name="New workflow").click()
    page.get_by_label("Name", exact=True).fill("Article")
    page.locator('[name="steps[0].id"]').fill("draft")
    page.locator('[name="steps[0].agent_id"]').select_option(label="Writer")
    page.get_by_role("button", name="Add a step").click()
    expect(page.locator('[name="steps[1].id"]')).to_have_value("step2")
    page.locator('[name="steps[1].id"]').fill("polish")
    page.locator('[name="steps[1].agent_id"]').select_option(label="Editor")
    # The branch: when the draft says it is ready, polish it; otherwise the run ends after the draft.
    page.locator('[name="steps[0].next_step_id"]').fill("end")
    page.get_by_role("button", name="Add a condition").first.click()
    page.get_by_label("Condition 1 of step 1: value").fill("ready")
    page.get_by_label("Condition 1 of step 1: go to").fill("polish")
    page.get_by_label("Condition 1 of step 1: go to").blur()
    graph = page.get_by_test_id("workflow-graph")
    expect(graph).to_contain_text("contains “ready”")  # redrawn from what is typed, before saving
    expect(graph.locator(".wf-condition")).to_have_count(1)
    page.get_by_role("button", name="Create workflow").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Article")
    expect(page.get_by_test_id("workflow-graph").locator('[data-step="polish"]')).to_be_visible()
    page.get_by_label("Message").fill("Write about the tides")
    page.get_by_role("button", name="Run workflow").click()

    expect(page.get_by_role("heading", level=1)).to_contain_text("of Article")
    # Live: the first step is seen running, then both finish, without a reload.
    expect(page.locator('.wf-node[data-step="draft"]')).to_have_attribute("data-status", "running", timeout=30_000)
    expect(page.locator("#run-status")).to_have_text("succeeded", timeout=30_000)
    expect(page.locator('.wf-node[data-step="polish"]')).to_have_attribute("data-status", "succeeded")
    expect(page.locator("#run-path")).to_have_text("draft → polish")
    expect(page.locator(".final-output")).to_contain_text("A polished article.")
    expect(page.locator(".wf-edge.taken")).not_to_have_count(0)
    blocked = [m for m in page.console_messages if "Content Security Policy" in m or m.startswith("error")]
    assert blocked == [], page.console_messages

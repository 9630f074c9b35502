"""Every page, in Chromium: no page wider than a 390 px phone, no serious accessibility violation (axe-core,
vendored), light and dark; the integrator touches (code snippets that run, copy buttons) work.

``SCREENSHOTS_DIR=docs/screenshots`` also saves each main page at both widths in both themes.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import pytest
from agents import flush_traces
from django.test import override_settings
from playwright.sync_api import expect

from accounts_app.services import api_token_create
from agents_app.services import agent_create, context_create, handoff_add
from providers_app.services import provider_create
from tests.agents_app.test_runs import run_sync
from tests.browser.conftest import off_the_loop
from tests.factories import PASSWORD, make_user, make_workspace
from tests.fakes import Reply, ToolCall

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
SCREENSHOTS = os.environ.get("SCREENSHOTS_DIR", "")
# Pages worth a picture in the README, by file name.
MAIN_PAGES = {
    "dashboard": "/",
    "agent": "/agents/{agent}/",
    "chat": "/agents/{agent}/chat/?conversation={conv}",
    "run": "/agents/runs/{run}/",
    "trace": "/traces/{trace}/?span={span}",
    "providers": "/providers/",
    "usage": "/usage/",
}


SHOUT = {
    "code": "def main(text):\n    return text.upper()\n",
    "allow_code_execution": True,
    "parameters": [{"name": "text"}],
}
PIN = {"name": "pin", "implementation": "regex", "config": {"pattern": "\\d{4}", "message": "No PINs, please."}}


@pytest.fixture
def world(asgi_server, fake_openai):
    """A workspace with a provider, two agents wired by a handoff, a context, and a run that used a tool."""
    owner = make_workspace(owner=make_user(username="pia"), name="Pages")
    with override_settings(PROVIDER_EGRESS_ALLOWLIST=["127.0.0.1"]):
        provider = off_the_loop(
            provider_create,
            actor=owner,
            type="custom",
            name="Fake",
            base_url=fake_openai.base_url,
            models=["fake-model"],
            is_default=True,
        )
        helper = agent_create(actor=owner, name="Researcher", instructions="Find facts.")
        agent = agent_create(
            actor=owner,
            name="Writer",
            instructions="Write clearly.",
            tools=[
                {"type": "agent", "name": "research", "params": {"agent_id": helper.pk}},
                {"type": "function", "name": "shout", "params": SHOUT},
            ],
            input_guardrails=[PIN],
        )
        handoff_add(actor=owner, agent_id=agent.pk, target_id=helper.pk)
        context_create(actor=owner, agent_id=agent.pk, name="customer", content={"tier": "gold"}, is_default=True)
        fake_openai.script(ToolCall("research", {"input": "tallest peak"}), Reply("Galdhøpiggen."), Reply("It is."))
        done: list = []
        worker = threading.Thread(target=lambda: done.append(run_sync(owner, agent, "Which is the tallest?")))
        worker.start()
        worker.join(timeout=60)
    flush_traces()
    run = done[0]
    from traces_app.models import Span

    span = Span.objects.filter(trace_id=run.trace_id, kind="function").first()
    ids = {
        "agent": agent.pk,
        "run": run.pk,
        "conv": run.conversation_id or "",
        "trace": run.trace_id,
        "span": span.span_id if span else "",
        "provider": provider.pk,
    }
    return {"owner": owner, "ids": ids, "base": asgi_server}


def every_page(ids: dict) -> list[str]:
    pages = [
        "/",
        "/agents/",
        "/agents/new/",
        "/agents/{agent}/",
        "/agents/{agent}/edit/",
        "/agents/{agent}/chat/?conversation={conv}",
        "/agents/runs/{run}/",
        "/traces/",
        "/traces/{trace}/?span={span}",
        "/providers/",
        "/providers/add/",
        "/providers/{provider}/",
        "/providers/local/default/",
        "/workflows/",
        "/knowledge/",
        "/usage/",
        "/settings/",
        "/settings/tokens/",
        "/workspaces/",
    ]
    return [p.format(**ids) for p in pages]


def sign_in(page) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill("pia")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/")
    menu = page.get_by_role("button", name="Menu")
    if menu.is_visible():  # a phone: the switcher is behind the menu
        menu.click()
    page.locator("#workspace-switcher").select_option(label="Pages (owner)")
    expect(page.get_by_role("heading", level=1)).to_have_text("Pages")
    page.wait_for_load_state("networkidle")


def open_context(browser, base: str, *, width: int, height: int, scheme: str):
    # CSP bypass only so that the test can read layout sizes and run axe-core; the pages' own scripts are
    # checked under the real policy by the other browser tests.
    return browser.new_context(
        base_url=base, viewport={"width": width, "height": height}, color_scheme=scheme, bypass_csp=True
    )


@pytest.mark.parametrize(("width", "scheme"), [(390, "light"), (390, "dark"), (360, "light")])
def test_no_page_is_wider_than_a_phone(browser, world, width, scheme):
    context = open_context(browser, world["base"], width=width, height=844, scheme=scheme)
    page = context.new_page()
    page.set_default_timeout(15_000)
    sign_in(page)
    too_wide = {}
    for url in every_page(world["ids"]):
        response = page.goto(url)
        assert response is not None, url
        assert response.status == 200, url
        page.wait_for_load_state("networkidle")
        scroll_width = page.evaluate("document.documentElement.scrollWidth")
        if scroll_width > width:
            too_wide[url] = scroll_width
    topbar = page.locator(".topbar").bounding_box()
    assert topbar is not None
    assert topbar["height"] < 60
    page.get_by_role("button", name="Menu").click()
    expect(page.get_by_role("link", name="Traces", exact=True)).to_be_visible()
    if width == 390:
        save_screenshots(page, world["ids"], "phone", scheme)
    context.close()
    assert not too_wide, too_wide


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_no_serious_accessibility_violations(browser, world, scheme):
    context = open_context(browser, world["base"], width=1440, height=900, scheme=scheme)
    page = context.new_page()
    page.set_default_timeout(15_000)
    sign_in(page)
    found = {}
    for url in every_page(world["ids"]):
        page.goto(url)
        page.wait_for_load_state("networkidle")
        page.add_script_tag(path=str(AXE))
        violations = page.evaluate(
            "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
            ".filter(v => v.impact === 'serious' || v.impact === 'critical')"
            ".map(v => v.id + ': ' + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | '))"
        )
        if violations:
            found[url] = violations
    save_screenshots(page, world["ids"], "desktop", scheme)
    context.close()
    assert not found, "\n".join(f"{url}: {problems}" for url, problems in found.items())


def save_screenshots(page, ids: dict, width: str, scheme: str) -> None:
    if not SCREENSHOTS:
        return
    Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
    for name, url in MAIN_PAGES.items():
        page.goto(url.format(**ids))
        page.wait_for_load_state("networkidle")
        page.screenshot(path=f"{SCREENSHOTS}/{name}-{width}-{scheme}.png", full_page=False)


def test_the_agent_page_snippets_run_as_shown(page, world):
    sign_in(page)
    ids = world["ids"]
    page.goto(f"/agents/{ids['agent']}/")
    curl = page.get_by_test_id("curl-snippet").inner_text()
    assert f"{world['base']}/api/v1/agents/{ids['agent']}/run" in curl
    python = page.get_by_test_id("python-snippet").inner_text()
    copy_python = page.locator("#snippets").get_by_role("button", name="Copy the Python code")
    copy_python.click()
    expect(copy_python).to_have_text("Copied")
    # The Python snippet, run as a user would paste it, with a real token against this server.
    token = api_token_create(actor=world["owner"], name="snippet").raw
    printed: list[str] = []
    os.environ["AGENTS_TOKEN"] = token
    try:
        with override_settings(PROVIDER_EGRESS_ALLOWLIST=["127.0.0.1"]):
            exec(python, {"print": lambda *a: printed.append(" ".join(map(str, a)))})  # noqa: S102
    finally:
        del os.environ["AGENTS_TOKEN"]
    assert printed
    assert re.search(r"\d+$", printed[0])  # the output, then the run id


def test_ids_and_invite_links_have_copy_buttons(page, world):
    sign_in(page)
    ids = world["ids"]
    page.goto(f"/agents/runs/{ids['run']}/")
    copy = page.get_by_role("button", name="Copy trace id")
    expect(copy).to_have_attribute("data-copy-text", ids["trace"])
    copy.click()
    expect(copy).to_have_text("✓")
    expect(page.get_by_role("button", name="Copy run id")).to_have_attribute("data-copy-text", str(ids["run"]))
    page.goto("/settings/")
    page.get_by_label("Username or email").fill("someone@example.org")
    page.get_by_role("button", name="Invite").click()
    link = page.get_by_label("Invitation link")
    expect(link).to_have_value(re.compile(r"/accounts/invitations/"))
    copy_link = page.locator("[data-copy='#invite-link']")
    copy_link.click()
    expect(copy_link).to_have_text("Copied")


def test_form_errors_are_summarised_and_json_can_be_checked_in_place(page, world):
    sign_in(page)
    page.goto("/agents/new/")
    schema = page.get_by_label("Output type (JSON Schema)")
    schema.fill('{"type": "object",\n "properties": {,}}')
    format_schema = page.locator("#id_output_type + .json-tools button")
    status = page.locator("#id_output_type + .json-tools [role=status]")
    format_schema.click()
    expect(status).to_contain_text("Not valid JSON at line 2, column")
    schema.fill('{"type": "object", "properties": {"answer": {"type": "strin"}}}')
    format_schema.click()
    expect(status).to_have_text("Valid JSON.")
    assert schema.input_value().startswith('{\n  "type": "object",')  # pretty-printed in place
    page.get_by_role("button", name="Create agent").click()
    summary = page.locator("[data-error-summary]")
    expect(summary).to_contain_text("There are 2 problems")
    expect(summary).to_contain_text("Did you mean 'string'?")
    expect(page.get_by_label("Name", exact=True)).to_be_focused()  # the first bad field
    summary.get_by_role("link", name=re.compile("Output type")).click()
    assert page.url.endswith("#id_output_type")


def test_the_builder_groups_its_form_and_tests_the_agent_beside_it(page, world, fake_openai):
    sign_in(page)
    ids = world["ids"]
    page.goto(f"/agents/{ids['agent']}/edit/")
    legends = page.locator("fieldset.form-group > legend").all_inner_texts()
    assert legends == ["Basics", "Model", "Tools and guardrails", "Output schema"]
    expect(page.locator("details#group-advanced")).not_to_have_attribute("open", "")
    model = page.get_by_label("Model", exact=True)
    expect(model).to_have_attribute("list", "models-default")
    page.get_by_label("Provider").select_option(label="Fake")
    expect(model).to_have_attribute("list", f"models-{ids['provider']}")
    expect(page.locator(f"#models-{ids['provider']} option")).to_have_count(1)  # the provider's own list
    fake_openai.script(Reply("Tested beside the form."))
    with override_settings(PROVIDER_EGRESS_ALLOWLIST=["127.0.0.1"]):
        page.get_by_label("Message").fill("Does this work?")
        page.get_by_role("button", name="Send").click()
        answer = page.locator(".builder-chat .msg.assistant").last
        expect(answer).to_contain_text("Tested beside the form.")
        expect(answer.get_by_role("link", name=re.compile("run #"))).to_be_visible()
    box_form = page.locator(".builder-form").bounding_box()
    box_chat = page.locator(".builder-chat").bounding_box()
    assert box_form is not None
    assert box_chat is not None
    assert box_chat["x"] > box_form["x"] + box_form["width"] - 1  # two panes side by side


def test_the_theme_toggle_overrides_the_system_and_is_remembered(page, world):
    sign_in(page)
    toggle = page.locator("[data-theme-toggle]")
    expect(toggle).to_have_text("◐ Auto")
    toggle.click()
    expect(page.locator("html")).to_have_attribute("data-theme", "light")
    toggle.click()
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    expect(toggle).to_have_text("☾ Dark")
    page.goto("/agents/")
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")  # remembered across pages
    toggle.click()
    expect(page.locator("html")).not_to_have_attribute("data-theme", re.compile("."))  # back to the system's


def test_the_checklist_ticks_off_the_trace_once_opened(page, world):
    sign_in(page)
    page.goto("/")
    checklist = page.get_by_role("region", name=re.compile("Getting started"))
    expect(checklist).to_contain_text("3 of 4 done")
    checklist.get_by_role("link", name="Open the trace").click()
    page.wait_for_url(f"**/traces/{world['ids']['trace']}/")
    page.goto("/")
    expect(page.get_by_role("region", name=re.compile("Getting started"))).to_have_count(0)


def test_usage_charts_and_chat_steps(page, world):
    sign_in(page)
    page.goto("/usage/")
    expect(page.locator("[data-chart=runs] .chart-total")).to_have_text("1")
    expect(page.locator("[data-chart=runs] rect")).to_have_count(30)
    page.get_by_role("link", name="7 days").click()
    expect(page.locator("[data-chart=tokens] rect")).to_have_count(7)
    ids = world["ids"]
    page.goto(f"/agents/{ids['agent']}/chat/?conversation={ids['conv']}")
    steps = page.locator(".msg.assistant details.steps").first
    steps.get_by_text("Steps: tool calls and handoffs").click()
    expect(steps.locator(".bubble-tool_call")).to_contain_text("Called research")
    expect(steps.locator(".bubble-tool_result")).to_contain_text("Galdhøpiggen.")


def test_skip_link_focus_ring_and_loading_bar(page, world):
    sign_in(page)
    page.goto("/usage/")
    page.keyboard.press("Tab")
    skip = page.locator(".skip-link")
    expect(skip).to_be_focused()
    assert skip.bounding_box()["y"] >= 0  # shown on screen once focused, hidden above it otherwise
    page.keyboard.press("Enter")
    expect(page.locator("main#main")).to_be_focused()
    page.keyboard.press("Tab")
    focused = page.locator("main :focus")
    expect(focused).to_have_count(1)
    expect(focused).to_have_css("outline-style", "solid")  # keyboard focus is always visible
    expect(focused).to_have_css("outline-width", "2px")

    held: list = []
    # The answer waits until the test lets it through.
    page.route("**/usage/?kind=grant", lambda route: held.append(route))
    grants = page.locator("a[href='?kind=grant']")
    grants.click()
    expect(page.locator("body")).to_have_class(re.compile(r"\bis-loading\b"))
    expect(grants).to_have_attribute("aria-busy", "true")
    expect(page.locator(".progress")).to_have_css("opacity", "1")
    held[0].continue_()
    expect(page.locator("body")).not_to_have_class(re.compile(r"\bis-loading\b"))
    expect(page.locator("a[href='?kind=grant']")).not_to_have_attribute("aria-busy", "true")
    expect(page).to_have_url(re.compile(r"kind=grant"))


def test_the_builder_tries_a_tool_and_the_chat_shows_a_blocked_message(page, world, fake_openai):
    sign_in(page)
    page.goto(f"/agents/{world['ids']['agent']}/edit/")
    page.get_by_label("Tool or guardrail").select_option("tool:shout")
    page.get_by_label("Sample").fill('{"text": "quiet"}')
    page.get_by_role("button", name="Try it").click()
    result = page.locator("#try-result")
    expect(result).to_contain_text("Result")
    expect(result).to_contain_text("QUIET")
    expect(result).to_contain_text(re.compile(r"\d+\.\d ms"))
    page.get_by_label("Tool or guardrail").select_option("input:pin")
    page.get_by_label("Sample").fill("my pin is 1234")
    page.get_by_role("button", name="Try it").click()
    expect(result).to_contain_text("Tripped: No PINs, please.")
    requests_before = len(fake_openai.requests_to("/v1/chat/completions"))
    page.get_by_label("Message").fill("PIN 5555")
    page.get_by_role("button", name="Send").click()
    answer = page.locator(".builder-chat .msg.assistant").last
    expect(answer).to_contain_text("No PINs, please.")
    expect(answer).to_have_class(re.compile("blocked"))
    expect(page.locator(".builder-chat")).to_contain_text("input guardrail pin tripped")
    assert len(fake_openai.requests_to("/v1/chat/completions")) == requests_before

"""The Usage page: runs, tokens and credits per day as SVG charts, per agent and per provider, then the ledger."""

from __future__ import annotations

import re

import pytest
from django.utils import timezone

from agents_app.services import agent_create
from tests.agents_app.test_runs import run_sync
from tests.fakes import Reply

pytestmark = pytest.mark.django_db(transaction=True)


def test_usage_charts_and_breakdowns(team, page_client, helper, fake_openai):
    other = agent_create(actor=team, name="Other", instructions="x")
    fake_openai.script(Reply("a", usage=(100, 10)), Reply("b", usage=(200, 20)), Reply("c", usage=(50, 5)))
    runs = [run_sync(team, helper), run_sync(team, helper), run_sync(team, other)]
    html = page_client(team).get("/usage/").content.decode()
    charts = dict(re.findall(r'data-chart="(\w+)".*?class="chart-total">([\d.]+)<', html, re.S))
    assert charts["runs"] == "3"
    assert charts["tokens"] == str(sum(r.usage["total_tokens"] for r in runs))
    assert charts["credits"] != "0"
    assert html.count("<rect ") == 3 * 30  # a bar per day, for each chart
    today = timezone.localdate().isoformat()
    assert f"<title>{today}: 3 runs</title>" in html
    helper_row = re.search(r"<td>Helper</td><td class=\"num\">(\d+)</td><td class=\"num\">(\d+)</td>", html)
    assert helper_row.groups() == ("2", str(runs[0].usage["total_tokens"] + runs[1].usage["total_tokens"]))
    assert re.search(r"<td>Fake</td><td class=\"num\">3</td>", html)  # per provider
    assert 'id="ledger"' in html  # the ledger stays below


def test_usage_periods_and_empty_state(team, page_client):
    client = page_client(team)
    week = client.get("/usage/?days=7").content.decode()
    assert week.count("<rect ") == 3 * 7
    assert "No runs in this period." in week
    assert client.get("/usage/?days=abc").status_code == 200  # a bad period falls back to 30 days
    assert client.get("/usage/?days=-5").content.decode().count("<rect ") == 3 * 30

"""Usage over time for the Usage page: runs, tokens and credits per day, per agent and per provider."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, IntegerField, Sum
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Coalesce, TruncDate
from django.utils import timezone

from accounts_app.actor import Actor

PERIODS = (7, 30, 90)


@dataclass(frozen=True)
class Bar:
    """One bar of a chart, placed in a 100 by 40 box (the SVG's viewBox)."""

    label: str
    value: float
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Chart:
    title: str
    unit: str
    bars: list[Bar]
    total: float
    peak: float


@dataclass(frozen=True)
class UsageRow:
    name: str
    runs: int
    tokens: int
    credits: Decimal
    share: float = 0.0  # of the period's credits (or runs when nothing cost anything), in percent


@dataclass(frozen=True)
class Usage:
    days: int
    charts: list[Chart]
    by_agent: list[UsageRow] = field(default_factory=list)
    by_provider: list[UsageRow] = field(default_factory=list)


def _chart(title: str, unit: str, days: list[date], values: dict[date, float]) -> Chart:
    peak = max((values.get(d, 0.0) for d in days), default=0.0)
    step = 100 / len(days)
    bars = []
    for index, day in enumerate(days):
        value = values.get(day, 0.0)
        height = 38 * value / peak if peak else 0.0
        bars.append(Bar(day.isoformat(), value, index * step + step * 0.1, 40 - height, step * 0.8, height))
    return Chart(title, unit, bars, sum(values.get(d, 0.0) for d in days), peak)


def _rows(groups: list[dict[str, Any]], name_key: str) -> list[UsageRow]:
    total_credits = sum((g["credits"] for g in groups), Decimal(0))
    total_runs = sum(g["runs"] for g in groups) or 1
    rows = []
    for g in groups:
        share = float(g["credits"] / total_credits * 100) if total_credits else g["runs"] / total_runs * 100
        rows.append(UsageRow(str(g[name_key] or "—"), g["runs"], g["tokens"], g["credits"], round(share, 1)))
    return sorted(rows, key=lambda r: (r.credits, r.runs), reverse=True)


def usage_get(*, actor: Actor, days: int = 30) -> Usage:
    """Return the workspace's usage over the last ``days`` days (7, 30 or 90; anything else means 30)."""
    from agents_app.models import AgentRun

    days = days if days in PERIODS else 30
    today = timezone.localdate()
    first = today - timedelta(days=days - 1)
    runs = AgentRun.objects.filter(workspace=actor.workspace, created_at__date__gte=first)
    tokens = Coalesce(Sum(Cast(KeyTextTransform("total_tokens", "usage"), IntegerField())), 0)
    credits = Coalesce(Sum("cost"), Decimal(0))
    daily = (
        runs.annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(runs=Count("id"), tokens=tokens, credits=credits)
    )
    by_day = {row["day"]: row for row in daily}
    calendar = [first + timedelta(days=n) for n in range(days)]
    charts = [
        _chart("Runs", "runs", calendar, {d: float(r["runs"]) for d, r in by_day.items()}),
        _chart("Tokens", "tokens", calendar, {d: float(r["tokens"]) for d, r in by_day.items()}),
        _chart("Credits", "credits", calendar, {d: float(r["credits"]) for d, r in by_day.items()}),
    ]
    per_agent = list(runs.values("agent_name").annotate(runs=Count("id"), tokens=tokens, credits=credits))
    per_provider = list(
        runs.values("provider__name", "provider_type").annotate(runs=Count("id"), tokens=tokens, credits=credits)
    )
    for row in per_provider:
        row["provider__name"] = row["provider__name"] or (
            "Bundled local model" if row["provider_type"] == "local" else row["provider_type"] or "—"
        )
    return Usage(days, charts, _rows(per_agent, "agent_name"), _rows(per_provider, "provider__name"))

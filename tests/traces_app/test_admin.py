from __future__ import annotations

import pytest
from django.utils import timezone

from config import paginators
from traces_app.models import Span, Trace


@pytest.fixture
def traces_data(team):
    for n in range(12):
        trace = Trace.objects.create(trace_id=f"trace_{n:032x}", workspace=team.workspace, name=f"run {n}")
        for i in range(4):
            Span.objects.create(trace=trace, span_id=f"span_{i}", kind="generation", started_at=timezone.now())
    return Trace.objects.first()


def test_the_changelist_loads_without_n_plus_one(operator, traces_data, django_assert_max_num_queries):
    with django_assert_max_num_queries(12):
        assert operator.get("/admin/traces_app/trace/").status_code == 200
    found = operator.get(f"/admin/traces_app/trace/?q={traces_data.trace_id}")
    assert traces_data.trace_id in found.content.decode()


def test_traces_are_read_only(operator, traces_data, django_assert_max_num_queries):
    url = f"/admin/traces_app/trace/{traces_data.pk}/change/"  # its spans are listed on it
    with django_assert_max_num_queries(12):
        page = operator.get(url)
    assert page.status_code == 200
    assert page.content.decode().count("span_") >= 4
    assert operator.post(url, {"status": "ok"}).status_code == 403
    assert operator.get("/admin/traces_app/trace/add/").status_code == 403
    assert operator.post(f"/admin/traces_app/trace/{traces_data.pk}/delete/", {"post": "yes"}).status_code == 403
    assert operator.get("/admin/traces_app/span/").status_code == 404  # spans live on their trace's page


def test_large_unfiltered_lists_are_estimated_not_counted(team, traces_data, monkeypatch, django_assert_num_queries):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE traces_app_trace")
    monkeypatch.setattr(paginators, "ESTIMATE_ABOVE", 5)
    estimated = paginators.EstimatedCountPaginator(Trace.objects.order_by("trace_id"), 5)
    assert estimated.count == 12  # the statistics, exact here after ANALYZE
    with django_assert_num_queries(1) as captured:
        assert paginators.EstimatedCountPaginator(Trace.objects.order_by("trace_id"), 5).count == 12
    assert "reltuples" in captured.captured_queries[0]["sql"]
    filtered = paginators.EstimatedCountPaginator(Trace.objects.filter(name="run 3").order_by("trace_id"), 5)
    assert filtered.count == 1  # filtered lists are counted

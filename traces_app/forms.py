"""The trace list's filters."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from django import forms
from django.utils import timezone

from traces_app.models import TraceStatus


class TraceFilterForm(forms.Form):
    q = forms.CharField(required=False, max_length=200, label="Search")
    agent = forms.TypedChoiceField(required=False, coerce=int, empty_value=None, label="Agent")
    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *TraceStatus.choices])
    since = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))
    min_duration_ms = forms.IntegerField(required=False, min_value=0, label="Min ms")
    max_duration_ms = forms.IntegerField(required=False, min_value=0, label="Max ms")
    offset = forms.IntegerField(required=False, min_value=0, max_value=100_000, widget=forms.HiddenInput)

    def __init__(self, *args: Any, agents: list[tuple[int, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["agent"].choices = [("", "Any agent"), *agents]  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        low, high = data.get("min_duration_ms"), data.get("max_duration_ms")
        if low is not None and high is not None and low > high:
            self.add_error("max_duration_ms", "Must be at least the minimum.")
        return data

    def selector_filters(self) -> dict[str, Any]:
        """Return the filters as ``traces_app.selectors.trace_list`` takes them (dates as whole local days)."""
        data = self.cleaned_data
        zone = timezone.get_current_timezone()
        since = datetime.combine(data["since"], time.min, zone) if data.get("since") else None
        until = datetime.combine(data["until"] + timedelta(days=1), time.min, zone) if data.get("until") else None
        return {
            "agent_id": data.get("agent"),
            "status": data.get("status") or None,
            "since": since,
            "until": until,
            "min_duration_ms": data.get("min_duration_ms"),
            "max_duration_ms": data.get("max_duration_ms"),
            "search": (data.get("q") or "").strip(),
        }

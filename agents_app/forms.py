"""Agent builder forms. They parse text inputs into the services' terms."""

from __future__ import annotations

import json
from typing import Any, cast

from django import forms

from config.input import JsonFormField
from providers_app.models import Provider

_LISTS = ("tools", "input_guardrails", "output_guardrails")


def _json_list(rows: int, help_text: str) -> JsonFormField:
    """Return a text area for a JSON list (empty: no items), checked as the API checks a body."""
    return JsonFormField(
        object_only=False,
        required=False,
        empty_value=[],
        widget=forms.Textarea(attrs={"rows": rows, "class": "mono", "spellcheck": "false", "data-json": "list"}),
        help_text=help_text,
    )


class AgentForm(forms.Form):
    name = forms.CharField(max_length=100)
    instructions = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 12, "class": "editor"}),
        help_text="What the agent does and how. The selected context is appended as JSON.",
    )
    provider_id = forms.TypedChoiceField(label="Provider", required=False, coerce=int, empty_value=None)
    model = forms.CharField(
        label="Model",
        required=False,
        max_length=200,
        widget=forms.TextInput(attrs={"list": "models-default", "autocomplete": "off"}),
        help_text="Pick one of the provider's models or type any name. Empty: the provider's default model.",
    )
    temperature = forms.FloatField(required=False, min_value=0, max_value=2)
    top_p = forms.FloatField(required=False, min_value=0, max_value=1)
    max_tokens = forms.IntegerField(required=False, min_value=1, max_value=1_000_000)
    max_turns = forms.IntegerField(
        initial=10, min_value=1, max_value=100, help_text="Model calls a run may take (handoffs and tool calls count)."
    )
    handoff_description = forms.CharField(
        required=False, max_length=1000, help_text="Shown to agents that can hand off to this one."
    )
    output_type = JsonFormField(
        label="Output type (JSON Schema)",
        required=False,
        empty_value=None,
        widget=forms.Textarea(attrs={"rows": 6, "class": "mono", "spellcheck": "false", "data-json": "object"}),
        help_text='Empty for plain text answers. Otherwise an object schema, e.g. {"type": "object", ...}.',
    )
    tools = _json_list(
        4,
        'A JSON list of tools, as the API takes them: {"name", "description", "type", "params"}. '
        'Agents as tools: {"name": "ask_billing", "type": "agent", "params": {"agent_id": 7}}. '
        'Knowledge: {"name": "docs", "type": "file_search", "params": {"vector_store_id": 3}}.',
    )
    input_guardrails = _json_list(
        3, 'A JSON list: {"name", "description", "implementation": "regex" | "agent" | "function", "config"}.'
    )
    output_guardrails = _json_list(3, "A JSON list, as for input guardrails.")

    # The builder's sections, in order; "Advanced" starts folded unless it holds an error.
    GROUPS = (
        ("Basics", ("name", "instructions", "handoff_description")),
        ("Model", ("provider_id", "model", "temperature", "top_p", "max_tokens")),
        ("Tools and guardrails", ("tools", "input_guardrails", "output_guardrails")),
        ("Output schema", ("output_type",)),
        ("Advanced", ("max_turns",)),
    )

    def groups(self) -> list[dict[str, Any]]:
        """Return the bound fields by section: ``title``, ``fields``, ``slug`` and ``has_errors``."""
        return [
            {
                "title": title,
                "slug": title.lower().replace(" ", "-"),
                "fields": [self[name] for name in names],
                "has_errors": any(self[name].errors for name in names),
            }
            for title, names in self.GROUPS
        ]

    def __init__(self, *args: Any, providers: list[Provider], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        provider_field = cast(forms.ChoiceField, self.fields["provider_id"])
        provider_field.choices = [("", "Workspace default"), *((p.pk, p.name) for p in providers)]

    def clean_output_type(self) -> Any:
        """Check the schema here too (the service's own rule), so its error is listed with the others."""
        from agents_app.services import validate_output_type

        value = self.cleaned_data.get("output_type")
        problem = validate_output_type(value)
        if problem:
            raise forms.ValidationError(problem)
        return value

    def service_values(self) -> dict[str, Any]:
        """Return the cleaned data as agent service fields."""
        data = self.cleaned_data
        settings = {k: data[k] for k in ("temperature", "top_p", "max_tokens") if data.get(k) is not None}
        return {
            "name": data["name"],
            "instructions": data.get("instructions") or "",
            "provider_id": data.get("provider_id"),
            "model": data.get("model") or "",
            "model_settings": settings,
            "max_turns": data["max_turns"],
            "handoff_description": data.get("handoff_description") or "",
            "output_type": data.get("output_type"),
            **{key: data.get(key) or [] for key in _LISTS},
        }

    @staticmethod
    def initial_for(agent: Any) -> dict[str, Any]:
        settings = agent.model_settings or {}
        return {
            "name": agent.name,
            "instructions": agent.instructions,
            "provider_id": agent.provider_id,
            "model": agent.model,
            "max_turns": agent.max_turns,
            "handoff_description": agent.handoff_description,
            "output_type": json.dumps(agent.output_type, indent=2) if agent.output_type else "",
            **{key: json.dumps(getattr(agent, key), indent=2) if getattr(agent, key) else "" for key in _LISTS},
            **{k: settings.get(k) for k in ("temperature", "top_p", "max_tokens")},
        }


class HandoffForm(forms.Form):
    target_id = forms.TypedChoiceField(label="Hand off to", coerce=int)
    tool_name = forms.CharField(required=False, max_length=64, help_text="Optional tool name override.")

    def __init__(self, *args: Any, targets: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["target_id"]).choices = [(a.pk, a.name) for a in targets]


class ContextForm(forms.Form):
    name = forms.CharField(max_length=100)
    content = JsonFormField(
        label="Content",
        widget=forms.Textarea(attrs={"rows": 3, "class": "mono", "spellcheck": "false", "data-json": "object"}),
        initial="{}",
        help_text="A JSON object.",
    )
    is_default = forms.BooleanField(required=False, label="Default context")

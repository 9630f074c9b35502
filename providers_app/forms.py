"""Provider forms. The key field never shows the stored key: empty means "keep it"."""

from __future__ import annotations

from typing import Any

from django import forms

from providers_app.models import ProviderType


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.replace(",", "\n").splitlines() if line.strip()]


class ProviderForm(forms.Form):
    type = forms.ChoiceField(choices=[c for c in ProviderType.choices if c[0] != ProviderType.LOCAL])
    name = forms.CharField(max_length=100)
    api_key = forms.CharField(
        label="API key",
        required=False,
        max_length=1000,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
    )
    base_url = forms.CharField(
        label="Base URL",
        required=False,
        max_length=500,
        help_text="Leave empty for the vendor's OpenAI-compatible endpoint. Required for custom providers.",
    )
    organization = forms.CharField(required=False, max_length=200, help_text="OpenAI organization id, if any.")
    models = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One model name per line (or comma-separated). Empty: the vendor's usual models.",
    )
    default_model = forms.CharField(required=False, max_length=200)
    extra_headers = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "autocomplete": "off"}),
        help_text="One “Name: value” per line. Values are encrypted and never shown again.",
    )
    is_default = forms.BooleanField(required=False, label="Use as this workspace's default provider")

    def __init__(
        self,
        *args: Any,
        editing: bool = False,
        header_names: list[str] | None = None,
        on_default: int = 0,
        is_current_default: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.editing = editing
        moving = f"{on_default} agent{'' if on_default == 1 else 's'} without a provider of their own"
        self.fields["is_default"].help_text = (
            f"Unticked: the {moving} go back to the bundled local model."
            if is_current_default
            else f"Ticked: the {moving} will run on it. The connection is tested first; if it fails, nothing is saved."
        )
        if editing:
            self.fields["type"].disabled = True
            self.fields["api_key"].help_text = "Leave empty to keep the current key; type a new one to rotate it."
            names = ", ".join(header_names or []) or "none"
            self.fields[
                "extra_headers"
            ].help_text = f"Current headers: {names}. Leave empty to keep them; enter lines to replace them all."

    def clean_models(self) -> list[str]:
        return _lines(self.cleaned_data.get("models") or "")

    def clean_extra_headers(self) -> dict[str, str] | None:
        raw = self.cleaned_data.get("extra_headers") or ""
        if not raw.strip():
            return None
        headers: dict[str, str] = {}
        for line in raw.splitlines():
            if not line.strip():
                continue
            name, sep, value = line.partition(":")
            if not sep or not name.strip():
                raise forms.ValidationError(f"Write each header as “Name: value” (line: {name.strip()[:40]!r}).")
            headers[name.strip()] = value.strip()
        return headers

    def service_kwargs(self) -> dict[str, Any]:
        """Return the cleaned data in the services' terms (for create)."""
        data = dict(self.cleaned_data)
        data["extra_headers"] = data.get("extra_headers") or {}
        data["is_default"] = bool(data.get("is_default"))
        return data

    def changes(self) -> dict[str, Any]:
        """Return the changes for an update: the key and headers only when something was typed; the default
        box as ticked (unticking it on the default hands its agents back to the local model)."""
        data = {k: v for k, v in self.cleaned_data.items() if k != "type"}
        if not data.get("api_key"):
            data.pop("api_key", None)
        if data.get("extra_headers") is None:
            data.pop("extra_headers", None)
        data["is_default"] = bool(data.get("is_default"))
        return data

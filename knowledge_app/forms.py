"""Knowledge base forms: they parse the page's inputs into the services' terms."""

from __future__ import annotations

from typing import Any

from django import forms

from config.input import JsonFormField
from knowledge_app.models import ChunkUnit
from knowledge_app.search import MAX_RESULTS, MODES
from providers_app.models import Provider


class StoreForm(forms.Form):
    name = forms.CharField(max_length=100)
    description = forms.CharField(
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="What it holds. Agents' file search tools describe the knowledge base with it.",
    )
    embedding_provider_id = forms.TypedChoiceField(
        label="Embedding provider",
        required=False,
        coerce=int,
        empty_value=None,
        help_text="Fixed once the knowledge base is created: every chunk is embedded by the same model.",
    )
    embedding_model = forms.CharField(
        required=False,
        max_length=200,
        help_text="Empty: the provider's default (the bundled model: all-MiniLM-L6-v2, int8).",
    )
    chunk_size = forms.IntegerField(initial=1000, min_value=1, max_value=100_000)
    chunk_overlap = forms.IntegerField(initial=200, min_value=0, max_value=100_000)
    chunk_unit = forms.ChoiceField(choices=ChunkUnit.choices, initial=ChunkUnit.CHARACTERS)
    is_public = forms.BooleanField(
        label="Every member may search it", required=False, initial=True, help_text="Unticked: you and admins only."
    )

    def __init__(self, *args: Any, providers: list[Provider], editing: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choice_field = self.fields["embedding_provider_id"]
        assert isinstance(choice_field, forms.TypedChoiceField)
        choice_field.choices = [("", "Bundled local model (offline, free)")] + [(p.pk, p.name) for p in providers]
        if editing:  # the embedding is fixed at creation
            del self.fields["embedding_provider_id"]
            del self.fields["embedding_model"]

    def service_values(self) -> dict[str, Any]:
        return dict(self.cleaned_data)


class SearchForm(forms.Form):
    text = forms.CharField(
        label="Search for", max_length=10_000, widget=forms.TextInput(attrs={"placeholder": "Ask or type words…"})
    )
    mode = forms.ChoiceField(choices=[(m, m) for m in MODES], initial="hybrid")
    max_results = forms.IntegerField(initial=10, min_value=1, max_value=MAX_RESULTS)
    similarity_threshold = forms.FloatField(
        required=False, min_value=0, max_value=1, help_text="The least cosine similarity (vector and hybrid)."
    )
    filter = JsonFormField(
        required=False,
        empty_value=None,
        widget=forms.TextInput(attrs={"class": "mono", "placeholder": '{"page": 2}'}),
        help_text="Metadata the chunks must hold, as JSON.",
    )

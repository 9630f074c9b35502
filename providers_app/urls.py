from django.urls import path

from config.sections import section_index

app_name = "providers"

urlpatterns = [
    path(
        "",
        section_index(
            title="Providers",
            lead="Providers are the model endpoints your agents run on.",
            icon="⌬",
            empty_title="No providers added",
            empty_text=(
                "Until you add one, agents run on the bundled local model, offline and free. Add OpenAI or "
                "any OpenAI-compatible endpoint (Anthropic, Google, Hugging Face, Ollama, vLLM) with its "
                "key."
            ),
            empty_hint="Keys are encrypted at rest and never shown again after you save them.",
        ),
        name="index",
    ),
]

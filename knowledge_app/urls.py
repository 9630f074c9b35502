from django.urls import path

from config.sections import section_index

app_name = "knowledge"

urlpatterns = [
    path(
        "",
        section_index(
            title="Knowledge",
            lead="Knowledge bases hold your documents, split and embedded for agents to search.",
            icon="▤",
            empty_title="No knowledge bases yet",
            empty_text=(
                "Upload PDFs, Word files, spreadsheets or web pages into a knowledge base, and give agents "
                "a search tool over it."
            ),
            empty_hint="Embeddings use the bundled local model by default, so nothing leaves this server.",
            coming=(
                "Coming next: uploads split and embedded into pgvector in the background, a search tool for "
                "agents, and the same API under /api/v1/knowledge."
            ),
            action_url="/agents/",
            action_label="Build agents meanwhile",
        ),
        name="index",
    ),
]

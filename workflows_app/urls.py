from django.urls import path

from config.sections import section_index

app_name = "workflows"

urlpatterns = [
    path(
        "",
        section_index(
            title="Workflows",
            lead="Workflows chain agents into steps with conditions and branches.",
            icon="⇶",
            empty_title="No workflows yet",
            empty_text="A workflow runs agents one after another, or in branches, passing each step's output on.",
            empty_hint="Build agents first: workflows are made of them.",
        ),
        name="index",
    ),
]

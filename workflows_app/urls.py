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
            coming=(
                "Coming next: a canvas of steps (agents, conditions, loops), runs in the background with a "
                "trace per step, and the same API under /api/v1/workflows. Until then, handoffs chain agents."
            ),
            action_url="/agents/",
            action_label="Build agents",
        ),
        name="index",
    ),
]

from django.urls import path

from config.sections import section_index

app_name = "agents"

urlpatterns = [
    path(
        "",
        section_index(
            title="Agents",
            lead="Agents answer with your instructions, tools, guardrails and handoffs, on any of your providers.",
            icon="◎",
            empty_title="No agents yet",
            empty_text=(
                "An agent is a model with instructions, tools and the agents it can hand off to. Once you "
                "create one, you can chat with it and watch every run."
            ),
            empty_hint="Agents run on the bundled local model until you add a provider.",
        ),
        name="index",
    ),
]

from django.urls import path

from config.sections import section_index

app_name = "traces"

urlpatterns = [
    path(
        "",
        section_index(
            title="Traces",
            lead=(
                "Every run leaves a trace: model calls, tool calls and their arguments, handoffs and "
                "guardrail verdicts."
            ),
            icon="≋",
            empty_title="No traces yet",
            empty_text="Run an agent and its full trace appears here, with a timeline of every step.",
            empty_hint="",
        ),
        name="index",
    ),
]

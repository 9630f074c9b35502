from django.apps import AppConfig


class AgentsAppConfig(AppConfig):
    name = "agents_app"
    verbose_name = "Agents"

    def ready(self) -> None:
        # The SDK exports traces to OpenAI by default: never send a workspace's data there unasked.
        # The platform's own trace processor is registered by traces_app.
        from agents import set_trace_processors

        set_trace_processors([])

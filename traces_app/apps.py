from django.apps import AppConfig


class TracesAppConfig(AppConfig):
    name = "traces_app"
    verbose_name = "Traces"

    def ready(self) -> None:
        # The platform's processor replaces the SDK's default one, which would send every workspace's
        # traces to OpenAI unasked. Registered once per process (ready() runs once).
        from agents import set_trace_processors
        from django.conf import settings

        from traces_app.processor import PostgresTraceProcessor

        set_trace_processors([PostgresTraceProcessor()] if settings.TRACES_ENABLED else [])

"""The dashboard's getting-started checklist: each step ticks itself off from what the workspace holds."""

from __future__ import annotations

from dataclasses import dataclass

from django.urls import reverse

from accounts_app.actor import Actor
from accounts_app.models import Membership

TRACE_OPENED = "trace_opened"


@dataclass(frozen=True)
class Step:
    """One step of the checklist, with the one action that does it."""

    key: str
    title: str
    text: str
    done: bool
    url: str
    action: str


def getting_started(*, actor: Actor) -> list[Step]:
    """Return the first-run steps for the actor's workspace, done or not, in the order to do them."""
    from agents_app.models import Agent, AgentRun
    from providers_app.models import Provider

    workspace = actor.workspace
    first_agent = Agent.objects.filter(workspace=workspace).order_by("created_at").values_list("pk", flat=True).first()
    last_run = AgentRun.objects.filter(workspace=workspace).order_by("-created_at").values("pk", "trace_id").first()
    milestones = (
        Membership.objects.filter(workspace=workspace, user=actor.user).values_list("milestones", flat=True).first()
        or []
    )
    has_provider = Provider.objects.filter(workspace=workspace).exists()
    chat_url = reverse("agents:chat", args=[first_agent]) if first_agent else reverse("agents:new")
    trace_url = reverse("traces:detail", args=[last_run["trace_id"]]) if last_run else reverse("traces:index")
    return [
        Step(
            "agent",
            "Create an agent",
            "Give it a name and instructions; it runs on the bundled local model until you add a provider.",
            first_agent is not None,
            reverse("agents:new"),
            "New agent",
        ),
        Step(
            "chat",
            "Chat with it",
            "Answers stream in as the model writes them.",
            last_run is not None,
            chat_url,
            "Open the chat",
        ),
        Step(
            "trace",
            "Open its trace",
            "Every run is traced: each model call, tool call and handoff, with timings and tokens.",
            TRACE_OPENED in milestones,
            trace_url,
            "Open the trace",
        ),
        Step(
            "provider",
            "Add a provider",
            "OpenAI or any OpenAI-compatible endpoint (Anthropic, Google, Ollama, vLLM, ...) for larger models.",
            has_provider,
            reverse("providers:add"),
            "Add a provider",
        ),
    ]

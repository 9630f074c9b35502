"""Agents, their handoffs and contexts, conversations with their items, and runs."""

from __future__ import annotations

from typing import Any, ClassVar

from django.conf import settings
from django.db import models
from django.utils import timezone
from encrypted_fields.fields import EncryptedJSONField

from accounts_app.models import credit_field


class Agent(models.Model):
    """An agent definition: instructions, model, tools, guardrails, handoffs and structured output."""

    workspace = models.ForeignKey("accounts_app.Workspace", on_delete=models.CASCADE, related_name="agents")
    name = models.CharField(max_length=100)
    instructions = models.TextField(blank=True)
    # None: the workspace's default provider (or the bundled local model).
    provider = models.ForeignKey(
        "providers_app.Provider", null=True, blank=True, on_delete=models.SET_NULL, related_name="agents"
    )
    # Empty: the provider's default model.
    model = models.CharField(max_length=200, blank=True)
    model_settings = models.JSONField(default=dict, blank=True)
    handoff_description = models.CharField(max_length=1000, blank=True)
    # A JSON Schema (type object) for structured output; None means plain text.
    output_type = models.JSONField(null=True, blank=True)
    # The spec's ToolCreate and GuardrailCreate shapes, checked by agents_app.tool_specs; header values are
    # masked there and kept in ``secrets``.
    tools = models.JSONField(default=list, blank=True)
    input_guardrails = models.JSONField(default=list, blank=True)
    output_guardrails = models.JSONField(default=list, blank=True)
    # {"tools" | "input_guardrails" | "output_guardrails": {item name: {"headers": {...}}}}, encrypted at rest
    # with the provider keys' key; never returned, logged or traced.
    secrets = EncryptedJSONField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    max_turns = models.PositiveSmallIntegerField(default=10)
    # Moved by a database trigger on every change of the row or of its handoffs (migration 0003).
    version = models.PositiveIntegerField(default=1)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("name", "id")
        constraints: ClassVar = [
            models.UniqueConstraint(fields=("workspace", "name"), name="agent_unique_name"),
            models.CheckConstraint(condition=models.Q(max_turns__gte=1, max_turns__lte=100), name="agent_max_turns"),
        ]

    def __str__(self) -> str:
        return self.name


class AgentHandoff(models.Model):
    """``source`` may hand the conversation to ``target`` (cycles allowed; max_turns bounds them)."""

    source = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="handoffs")
    target = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="incoming_handoffs")
    tool_name = models.CharField(max_length=64, blank=True)
    tool_description = models.CharField(max_length=1000, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("id",)
        constraints: ClassVar = [
            models.UniqueConstraint(fields=("source", "target"), name="handoff_unique_pair"),
            models.CheckConstraint(condition=~models.Q(source=models.F("target")), name="handoff_not_self"),
        ]

    def __str__(self) -> str:
        return f"{self.source_id} -> {self.target_id}"


class AgentContext(models.Model):
    """A named JSON object given to an agent's runs: shown to the model and passed to tools."""

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="contexts")
    name = models.CharField(max_length=100)
    content = models.JSONField(default=dict)
    is_default = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-is_default", "name")
        constraints: ClassVar = [
            models.UniqueConstraint(fields=("agent", "name"), name="context_unique_name"),
            models.UniqueConstraint(fields=("agent",), condition=models.Q(is_default=True), name="context_one_default"),
        ]

    def __str__(self) -> str:
        return self.name


class Conversation(models.Model):
    """A multi-turn chat with an agent; its items are the SDK session's memory."""

    workspace = models.ForeignKey("accounts_app.Workspace", on_delete=models.CASCADE, related_name="conversations")
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="conversations")
    title = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-updated_at", "-id")

    def __str__(self) -> str:
        return self.title or f"Conversation {self.pk}"


class ConversationItem(models.Model):
    """One Responses-format input item (user message, assistant message, tool call, tool output...)."""

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="items")
    data = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("id",)
        indexes: ClassVar = [models.Index(fields=("conversation", "id"), name="conv_item_order")]

    def __str__(self) -> str:
        return f"Item {self.pk} of conversation {self.conversation_id}"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    BLOCKED = "blocked", "Blocked by a guardrail"


TERMINAL_STATUSES = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.BLOCKED)


class AgentRun(models.Model):
    """One run of an agent: what went in, everything that came out, what it cost, and how long it took.

    Written twice per run (inserted at its start, updated at its end), so it carries no index it does not
    need: workspace and agent are served by the two ``*_recent`` indexes, whose first column they are, and
    the table keeps free room in each page (fillfactor, migration 0002) so that the end's update usually
    stays on the row's page and touches no index at all (a HOT update).
    """

    # db_index=False: the run_ws_recent and run_agent_recent indexes serve these keys.
    workspace = models.ForeignKey(
        "accounts_app.Workspace", on_delete=models.CASCADE, related_name="agent_runs", db_index=False
    )
    agent = models.ForeignKey(Agent, null=True, on_delete=models.SET_NULL, related_name="runs", db_index=False)
    agent_name = models.CharField(max_length=100)
    conversation = models.ForeignKey(
        Conversation, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED)
    mode = models.CharField(max_length=10, default="sync")  # sync, stream, background
    input = models.JSONField()
    context_name = models.CharField(max_length=100, blank=True)
    # The context as it was when the run started (contexts may change later).
    context_data = models.JSONField(default=dict, blank=True)
    final_output = models.JSONField(null=True, blank=True)
    new_items = models.JSONField(default=list, blank=True)
    last_agent_name = models.CharField(max_length=100, blank=True)
    error = models.TextField(blank=True)
    error_code = models.CharField(max_length=50, blank=True)
    usage = models.JSONField(default=dict, blank=True)
    # Every guardrail check of the run, in order (agents_app/guardrails.Verdict.as_json).
    guardrails = models.JSONField(default=list, blank=True)
    # What the run's file searches found, numbered as the model was told to cite them (agents_app/file_search.py).
    citations = models.JSONField(default=list, blank=True)
    cost = credit_field(default=0)
    reservation = models.ForeignKey(
        "accounts_app.CreditReservation", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    provider = models.ForeignKey(
        "providers_app.Provider", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    provider_type = models.CharField(max_length=20, blank=True)
    model_name = models.CharField(max_length=200, blank=True)
    trace_id = models.CharField(max_length=64, blank=True)  # a trace names its run (Trace.run), not the reverse
    metadata = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes: ClassVar = [
            models.Index(fields=("workspace", "-created_at"), name="run_ws_recent"),
            models.Index(fields=("agent", "-created_at"), name="run_agent_recent"),
        ]

    def __str__(self) -> str:
        return f"Run {self.pk} of {self.agent_name} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def guardrail_triggered(self) -> dict[str, Any] | None:
        """The verdict of the guardrail that blocked the run (its name, type and output), or None."""
        if self.status != RunStatus.BLOCKED:
            return None
        return next((v for v in reversed(self.guardrails or []) if v.get("tripwire_triggered")), None)

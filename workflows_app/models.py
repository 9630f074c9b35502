"""Workflows (steps of agents, checked by workflows_app/definition.py), their runs, and each step's run."""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts_app.models import credit_field


class Workflow(models.Model):
    """A named list of steps (workflows_app/definition.py's StepSpec as JSON)."""

    workspace = models.ForeignKey("accounts_app.Workspace", on_delete=models.CASCADE, related_name="workflows")
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    steps = models.JSONField(default=list)
    metadata = models.JSONField(default=dict, blank=True)
    # Moved by every change of the steps: a run records the version it ran.
    version = models.PositiveIntegerField(default=1)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("name", "id")
        constraints: ClassVar = [
            models.UniqueConstraint(fields=("workspace", "name"), name="workflow_unique_name"),
        ]

    def __str__(self) -> str:
        return self.name


class WorkflowRunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


WORKFLOW_TERMINAL = (WorkflowRunStatus.SUCCEEDED, WorkflowRunStatus.FAILED, WorkflowRunStatus.CANCELLED)


class WorkflowRun(models.Model):
    """One run of a workflow: its input, the steps it ran in order (``path``), their results, cost and timing."""

    workspace = models.ForeignKey(
        "accounts_app.Workspace", on_delete=models.CASCADE, related_name="workflow_runs", db_index=False
    )
    # Runs outlive their workflow: the name and the steps as they ran are kept here.
    workflow = models.ForeignKey(Workflow, null=True, on_delete=models.SET_NULL, related_name="runs", db_index=False)
    workflow_name = models.CharField(max_length=100)
    workflow_version = models.PositiveIntegerField(default=1)
    steps = models.JSONField(default=list)
    status = models.CharField(max_length=10, choices=WorkflowRunStatus.choices, default=WorkflowRunStatus.QUEUED)
    mode = models.CharField(max_length=10, default="sync")  # sync, stream, background
    message = models.TextField()
    context_name = models.CharField(max_length=100, blank=True)
    context_data = models.JSONField(default=dict, blank=True)
    # {step id: {"output", "last_agent", "usage", "status", ...}} as the spec's answer keys them.
    results = models.JSONField(default=dict, blank=True)
    path = models.JSONField(default=list, blank=True)  # step ids in the order they ran
    # Where a resumed run goes on from: the next step to run (None: not started, or ended), and the jumps taken.
    next_step_id = models.CharField(max_length=64, blank=True)
    jumps = models.JSONField(default=dict, blank=True)
    final_output = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    error_code = models.CharField(max_length=50, blank=True)
    usage = models.JSONField(default=dict, blank=True)
    cost = credit_field(default=0)
    trace_id = models.CharField(max_length=64, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    # Set by the worker that runs it (background runs), to hand it back if that worker dies.
    claimed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes: ClassVar = [
            models.Index(fields=("workspace", "-created_at"), name="wfrun_ws_recent"),
            models.Index(fields=("workflow", "-created_at"), name="wfrun_workflow_recent"),
        ]

    def __str__(self) -> str:
        return f"Workflow run {self.pk} of {self.workflow_name} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in WORKFLOW_TERMINAL


class StepRun(models.Model):
    """One step of a workflow run (a loop runs a step more than once; a parallel group's branches each have one).

    An agent step is an agent run (``agent_run``) made through the one run lifecycle, with its own trace, usage
    and cost; this row keeps what the workflow needs of it.
    """

    workflow_run = models.ForeignKey(WorkflowRun, on_delete=models.CASCADE, related_name="step_runs")
    step_id = models.CharField(max_length=64)
    sequence = models.PositiveIntegerField()  # the order steps started in this run (branches share their group's)
    iteration = models.PositiveIntegerField(default=1)  # the how-manieth time this step ran in this run
    group_id = models.CharField(max_length=64, blank=True)  # a branch's parallel group
    agent = models.ForeignKey("agents_app.Agent", null=True, on_delete=models.SET_NULL, related_name="+")
    agent_run = models.ForeignKey(
        "agents_app.AgentRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="workflow_steps"
    )
    status = models.CharField(max_length=10, choices=WorkflowRunStatus.choices, default=WorkflowRunStatus.RUNNING)
    input = models.TextField(blank=True)
    output = models.JSONField(null=True, blank=True)
    last_agent_name = models.CharField(max_length=100, blank=True)
    guardrail_tripped = models.BooleanField(default=False)
    usage = models.JSONField(default=dict, blank=True)
    cost = credit_field(default=0)
    error = models.TextField(blank=True)
    error_code = models.CharField(max_length=50, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ("sequence", "id")
        constraints: ClassVar = [
            models.UniqueConstraint(fields=("workflow_run", "step_id", "iteration"), name="steprun_unique_iteration"),
        ]

    def __str__(self) -> str:
        return f"{self.step_id} #{self.iteration} ({self.status})"

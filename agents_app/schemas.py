"""Request and response schemas of the agents API."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from ninja import Field, Schema

from agents_app.tool_specs import MAX_GUARDRAILS, MAX_TOOLS, GuardrailCreate, ToolCreate
from config.input import InputSchema, QuerySchema


class AgentIn(InputSchema):
    """The spec's ``AgentCreate`` (``AgentBase``), with the platform's ``provider_id``, ``model_settings`` and
    ``max_turns``. Where the spec allows null, null means the default."""

    name: str = Field(min_length=1, max_length=100)
    instructions: str = Field("", max_length=100_000)
    model: str | None = Field(None, max_length=200, description="Empty or null: the provider's default model")
    provider_id: int | None = Field(None, description="None: the workspace's default provider")
    model_settings: dict[str, Any] | None = Field(None, description="temperature, top_p, max_tokens, extra")
    handoff_description: str | None = Field(None, max_length=1000)
    input_guardrails: list[GuardrailCreate] | None = Field(None, max_length=MAX_GUARDRAILS)
    output_guardrails: list[GuardrailCreate] | None = Field(None, max_length=MAX_GUARDRAILS)
    output_type: dict[str, Any] | None = Field(None, description="JSON Schema (type object) of a structured answer")
    tools: list[ToolCreate] | None = Field(None, max_length=MAX_TOOLS)
    metadata: dict[str, Any] | None = None
    max_turns: int = Field(10, ge=1, le=100)

    def service_values(self, *, partial: bool = False) -> dict[str, Any]:
        """Return the agent service's fields, null as each field's default, tools and guardrails as sent (their
        defaults not filled in). ``partial``: only the fields the client sent (a PATCH)."""
        sent = self.model_dump(mode="json", exclude_unset=partial)
        for key in ("tools", "input_guardrails", "output_guardrails"):
            items = getattr(self, key)
            if items is not None:
                sent[key] = [item.model_dump(mode="json", exclude_unset=True) for item in items]
        return {key: _NULL_MEANS[key] if value is None and key in _NULL_MEANS else value for key, value in sent.items()}


# A spec client sends null for an optional field it leaves out: it means the field's default.
_NULL_MEANS: dict[str, Any] = {
    "model": "",
    "model_settings": {},
    "handoff_description": "",
    "input_guardrails": [],
    "output_guardrails": [],
    "tools": [],
    "metadata": {},
}


class AgentPatch(AgentIn):
    """Any fields of ``AgentIn``; those left out keep their value (null: the field's default)."""

    name: str = Field(None, min_length=1, max_length=100)  # type: ignore[assignment]
    instructions: str = Field(None, max_length=100_000)  # type: ignore[assignment]
    max_turns: int = Field(None, ge=1, le=100)  # type: ignore[assignment]


class HandoffIn(InputSchema):
    target_id: int
    tool_name: str = Field("", max_length=64)
    tool_description: str = Field("", max_length=1000)


class FileSearchToolCreate(InputSchema):
    vector_store_id: int | str = Field(
        description="One of the workspace's knowledge bases, or an OpenAI vector store id (vs_...) for agents on "
        "an OpenAI provider"
    )
    name: str | None = Field(None, pattern=r"^[a-zA-Z0-9_-]{1,64}$", description="Default: file_search")
    description: str | None = Field(None, max_length=1000, description="Default: from the knowledge base")
    max_results: int | None = Field(None, ge=1, le=50, description="Passages per search (default 3)")
    similarity_threshold: float | None = Field(
        None, ge=0, le=1, description="The least cosine similarity a passage needs (default: none)"
    )


class ToolOut(Schema):
    id: str = Field(description="The tool's name: unique in its agent, it identifies it (/tools/{name}/...)")
    agent_id: int
    name: str
    description: str
    type: str
    params: dict[str, Any]


class HandoffOut(Schema):
    target_id: int
    target_name: str
    tool_name: str
    tool_description: str


class ModelIn(InputSchema):
    """The spec's ``ModelConfig``: the agent's provider (None: the workspace default), model and its settings."""

    provider_id: int | None = None
    model: str = Field(max_length=200, description="Empty: the provider's default model")
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    max_tokens: int | None = Field(None, ge=1, le=1_000_000)
    additional_params: dict[str, Any] | None = Field(None, description="Provider-specific request parameters")

    def model_settings(self) -> dict[str, Any]:
        """Return the settings as the agent stores them (``extra`` holds the additional parameters)."""
        settings: dict[str, Any] = {
            k: v
            for k, v in (("temperature", self.temperature), ("top_p", self.top_p), ("max_tokens", self.max_tokens))
            if v is not None
        }
        if self.additional_params:
            settings["extra"] = self.additional_params
        return settings


class ContextIn(InputSchema):
    """The spec's ``ContextCreate``; its ``agent_id``, if sent, must be the path's."""

    name: str = Field(min_length=1, max_length=100)
    content: dict[str, Any] = Field(default_factory=dict, description="Shown to the model and passed to tools")
    is_default: bool | None = None
    agent_id: int | None = None


class ContextPatch(InputSchema):
    name: str | None = Field(None, min_length=1, max_length=100)
    content: dict[str, Any] | None = None
    is_default: bool | None = None


class ContextOut(Schema):
    id: int
    agent_id: int
    name: str
    content: dict[str, Any]
    is_default: bool


class AgentOut(Schema):
    """The spec's ``AgentResponse`` with the platform's fields (provider, settings, turns, version, wiring)."""

    id: int
    user_id: int | None = Field(description="Who created it; None once that account is gone")
    name: str
    instructions: str
    model: str
    provider_id: int | None
    model_settings: dict[str, Any]
    handoff_description: str
    input_guardrails: list[dict[str, Any]]
    output_guardrails: list[dict[str, Any]]
    output_type: dict[str, Any] | None
    tools: list[dict[str, Any]]
    metadata: dict[str, Any]
    max_turns: int
    version: int
    handoffs: list[HandoffOut]
    contexts: list[ContextOut]
    created_at: datetime
    updated_at: datetime


class AgentSummaryOut(Schema):
    id: int
    name: str
    provider_id: int | None
    model: str
    handoff_description: str
    version: int
    updated_at: datetime


class ToolTryIn(InputSchema):
    arguments: dict[str, Any] = Field(default_factory=dict, description="The arguments, as the model would send")


class GuardrailTryIn(InputSchema):
    sample: Any = Field(
        description="A user's message (input guardrails) or an agent's answer (output guardrails: text or JSON)"
    )


class TryOut(Schema):
    """One try of a tool or guardrail: ``value`` when ``ok``, else ``error`` and its ``kind``; what the code
    printed in ``logs``."""

    ok: bool
    value: Any = None
    error: str | None = None
    kind: str | None = None
    logs: str | None = None
    duration_ms: float


class ImportIn(InputSchema):
    """Give the exported document as JSON (``document``) or as JSON/YAML text (``text``)."""

    document: dict[str, Any] | None = None
    text: str | None = Field(None, max_length=2_000_000)


class AgentRunInput(InputSchema):
    message: str = Field(min_length=1, max_length=100_000)
    context_id: int | None = None
    conversation_id: int | None = Field(None, description="Continue a conversation; omitted: a new one")
    stream: bool = Field(False, description="Answer with Server-Sent Events")
    background: bool = Field(False, description="Answer 202 at once; a worker runs it; poll GET /runs/{run_id}")
    provider_id: int | None = Field(None, description="Run the first agent on another provider")
    metadata: dict[str, Any] | None = Field(None, description="Kept with the run; null: none")

    def run_fields(self) -> dict[str, Any]:
        """Return the keyword arguments of ``start_run`` that come from this input."""
        return {
            "message": self.message,
            "context_id": self.context_id,
            "conversation_id": self.conversation_id,
            "provider_id": self.provider_id,
            "metadata": self.metadata or {},
        }


class AgentUsage(Schema):
    """One agent's model requests in a run, priced at the provider and model it ran on."""

    agent_id: int
    agent: str
    provider_id: int | None = Field(description="None: the bundled local model")
    provider_type: str
    model: str
    requests: int
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost: Decimal


class Usage(Schema):
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    agents: list[AgentUsage] = Field(default_factory=list, description="Per agent and model")


class GuardrailVerdictOut(Schema):
    type: str = Field(description='"input" or "output"')
    name: str
    implementation: str
    tripwire_triggered: bool
    output_info: Any = Field(description="What the guardrail reported (a regex: the text it matched)")
    message: str = Field(description="What the user is told when it trips")
    error: str | None = Field(description="Why it could not decide (it trips then)")
    duration_ms: float


class GuardrailTryOut(GuardrailVerdictOut):
    run_id: str | None = Field(description="The judging agent's run, when an agent judged")


class CitationOut(Schema):
    ref: int = Field(description="Its number, as the model was told to cite it ([1])")
    store_id: int
    store: str = Field(description="The knowledge base's name")
    file_id: int
    file: str = Field(description="The file's original name")
    position: int = Field(description="The chunk's position in its file")
    page: int | None = Field(None, description="PDF: the page")
    sheet: str | None = Field(None, description="XLSX: the sheet")
    heading: list[str] | None = Field(None, description="The headings above the passage, outermost first")
    chunk_id: int
    snippet: str = Field(description="The start of the passage found")
    score: float = Field(description="Its score in the search that found it")


class AgentRunResponse(Schema):
    run_id: str = Field(description="The run's id, as a string (the spec's type); GET /runs/{run_id} takes it")
    status: str
    output: Any
    messages: list[dict[str, Any]]
    usage: Usage
    cost: Decimal
    trace_id: str
    conversation_id: int | None
    last_agent: str
    guardrails: list[GuardrailVerdictOut] = Field(description="Every guardrail check of the run, in order")
    guardrail_triggered: GuardrailVerdictOut | None = Field(
        description='The guardrail that blocked the run (status "blocked"); its message is the output'
    )
    citations: list[CitationOut] = Field(description="What the run's file search tools found, numbered")


class RunQueuedOut(Schema):
    run_id: str
    status: str
    conversation_id: int | None
    trace_id: str


class RunErrorOut(Schema):
    detail: str
    code: str
    run_id: str


# The answers of POST /agents/{id}/run by status (agents_app/runs/answer.py renders their bodies).
RUN_ANSWERS: dict[int, type[Schema]] = {200: AgentRunResponse, 202: RunQueuedOut, 502: RunErrorOut}


class RunOut(Schema):
    id: int
    agent_id: int | None
    agent_name: str
    conversation_id: int | None
    status: str
    mode: str
    final_output: Any
    last_agent_name: str
    error: str
    error_code: str
    usage: dict[str, Any]
    cost: Decimal
    provider_id: int | None
    provider_type: str
    model_name: str
    trace_id: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None


class RunDetailOut(RunOut):
    input: Any
    new_items: list[dict[str, Any]]
    metadata: dict[str, Any]
    guardrails: list[GuardrailVerdictOut] = Field(description="Every guardrail check of the run, in order")
    citations: list[CitationOut] = Field(description="What the run's file search tools found, numbered")


class RunFilter(QuerySchema):
    status: str | None = Field(None, pattern="^(queued|running|succeeded|failed|cancelled|blocked)$")

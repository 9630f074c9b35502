"""The shapes of an agent's tools and guardrails: the spec's ``ToolCreate`` and ``GuardrailCreate``, validated per
``type`` and per ``implementation`` (one discriminated schema each).

One home for these rules: the API's request schema is built from these models, and the services check what the
pages, the admin and imports store with the same models (``clean_tools``, ``clean_guardrails``). Whether an
``agent_id`` names an agent of the workspace is the services' check; this module knows no database.
"""

from __future__ import annotations

import ast
import difflib
import functools
import re
from typing import Annotated, Any, Literal

import re2
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, best_match
from pydantic import Field, TypeAdapter, ValidationError, field_validator, model_validator

from config.input import InputSchema
from providers_app.egress import check_base_url

TOOL_NAME = r"^[a-zA-Z0-9_-]{1,64}$"
MAX_TOOLS = 64
MAX_GUARDRAILS = 32
MAX_CODE = 100_000


def schema_problem(exc: SchemaError) -> str:
    """Return a schema error as people can act on it: where it is, what is wrong, and the likely fix.

    jsonschema reports a bad ``"type": "strin"`` as "not valid under any of the given schemas"; the most
    relevant inner error says what is allowed, and a close match is offered.
    """
    detail = best_match(exc.context) if exc.context else exc
    place = ".".join(str(part) for part in exc.absolute_path) or "the root"
    message = f"Not a valid JSON Schema at {place}: {detail.message}"
    if detail.validator == "enum" and isinstance(detail.instance, str):
        close = difflib.get_close_matches(detail.instance, [str(v) for v in detail.validator_value], n=1)
        if close:
            message += f". Did you mean '{close[0]}'?"
    return message


def _json_schema_problem(schema: dict[str, Any]) -> str | None:
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        return schema_problem(exc)
    return None


def code_problem(code: str) -> str | None:
    """Return why ``code`` is not a Python module defining ``main``, or None. Parsed, never run."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError) as exc:
        line = getattr(exc, "lineno", None)
        return f"Not valid Python{f' (line {line})' if line else ''}: {getattr(exc, 'msg', None) or exc}"
    except (RecursionError, MemoryError):
        return "The code is nested too deeply."
    if not any(isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == "main" for node in tree.body):
        return "Define a function named main; it is called with the arguments as keyword arguments."
    return None


HEADER_MASK = "********"
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")
_HOP_HEADERS = {"host", "content-length", "content-type", "transfer-encoding", "connection"}


class CodeOrEndpoint(InputSchema):
    """What a function tool or guardrail runs: ``code`` (Python defining ``main``, run in the sandbox only) or
    ``endpoint`` (an HTTP URL that receives a JSON POST), exactly one of them."""

    code: str | None = Field(None, min_length=1, max_length=MAX_CODE, description="Python that defines main")
    allow_code_execution: bool = Field(False, description="Must be true for code to be run (in the sandbox)")
    endpoint: str | None = Field(None, max_length=2000, description="An http(s) URL called with a JSON POST")
    headers: dict[str, str] | None = Field(
        None,
        max_length=20,
        description=f"Sent to the endpoint; stored encrypted and shown back as {HEADER_MASK!r} (send that to keep one)",
    )

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for name, header in (value or {}).items():
            if not _HEADER_NAME.match(name):
                raise ValueError(f"{name!r} is not a valid header name.")
            if name.lower() in _HOP_HEADERS:
                raise ValueError(f"The {name} header is set by the platform.")
            if len(header) > 4000 or any(c in header for c in "\r\n\0"):
                raise ValueError(f"The value of {name} must be one line of at most 4,000 characters.")
        return value

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is not None:
            problem = check_base_url(value)
            if problem:
                raise ValueError(problem)
        return value

    @field_validator("code")
    @classmethod
    def _code(cls, value: str | None) -> str | None:
        if value is not None:
            problem = code_problem(value)
            if problem:
                raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _one_implementation(self) -> CodeOrEndpoint:
        if (self.code is None) == (self.endpoint is None):
            raise ValueError("Give either code or endpoint.")
        if self.headers and self.endpoint is None:
            raise ValueError("Headers are sent to an endpoint; this one runs code.")
        if self.code is not None and not self.allow_code_execution:
            raise ValueError("Set allow_code_execution to true to run this code (in the sandbox).")
        return self


class ToolParameter(InputSchema):
    """One argument of a function tool, as the spec lists them (``type`` is never evaluated)."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    type: Literal["str", "int", "float", "bool", "list", "dict"] = "str"
    default: Any = Field(None, description="Omitted: the argument is required")
    description: str = Field("", max_length=1000)


class FunctionParams(CodeOrEndpoint):
    parameters: list[ToolParameter] | dict[str, Any] | None = Field(
        None, description="The spec's list of {name, type, default, description}, or a JSON Schema object"
    )

    @field_validator("parameters")
    @classmethod
    def _parameters(cls, value: list[ToolParameter] | dict[str, Any] | None) -> Any:
        if isinstance(value, dict):
            problem = _json_schema_problem(value)
            if problem:
                raise ValueError(problem)
            if value.get("type") != "object":
                raise ValueError('A JSON Schema of the arguments needs "type": "object".')
        elif isinstance(value, list):
            names = [p.name for p in value]
            if len(names) != len(set(names)):
                raise ValueError("Two parameters have the same name.")
        return value


class WebSearchParams(InputSchema):
    max_search_results: int = Field(5, ge=1, le=20)
    search_context_size: Literal["low", "medium", "high"] = "medium"


OPENAI_STORE_ID = r"^vs_[A-Za-z0-9_-]{1,100}$"


class FileSearchParams(InputSchema):
    vector_store_id: int | str = Field(
        description="The id of one of the workspace's knowledge bases, or of an OpenAI vector store (vs_...: "
        "searched by OpenAI's hosted tool, for agents on an OpenAI provider)"
    )
    max_num_results: int = Field(3, ge=1, le=50)
    similarity_threshold: float | None = Field(None, ge=0, le=1)

    @field_validator("vector_store_id")
    @classmethod
    def _store_id(cls, value: int | str) -> int | str:
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, int):
            if value < 1:
                raise ValueError("Give the id of one of the workspace's knowledge bases.")
            return value
        if not re.fullmatch(OPENAI_STORE_ID, value):
            raise ValueError(
                "Give the id of one of the workspace's knowledge bases (a number) or of an OpenAI vector store "
                "(vs_...)."
            )
        return value


class ComputerParams(InputSchema):
    allowed_commands: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(None, max_length=100)
    blocked_paths: list[Annotated[str, Field(min_length=1, max_length=1000)]] | None = Field(None, max_length=100)
    read_only: bool = True


class AgentToolParams(InputSchema):
    agent_id: int = Field(ge=1, description="An agent of the same workspace, asked as a tool")


class _Tool(InputSchema):
    name: str = Field(pattern=TOOL_NAME, description="The name the model calls it by")
    description: str = Field("", max_length=1000)


class FunctionTool(_Tool):
    type: Literal["function"]
    params: FunctionParams


class WebSearchTool(_Tool):
    type: Literal["web_search"]
    params: WebSearchParams = Field(default_factory=lambda: WebSearchParams.model_validate({}))


class FileSearchTool(_Tool):
    type: Literal["file_search"]
    params: FileSearchParams


class ComputerTool(_Tool):
    type: Literal["computer"]
    params: ComputerParams = Field(default_factory=lambda: ComputerParams.model_validate({}))


class AgentTool(_Tool):
    type: Literal["agent"]
    params: AgentToolParams


ToolCreate = Annotated[
    FunctionTool | WebSearchTool | FileSearchTool | ComputerTool | AgentTool, Field(discriminator="type")
]


def _options(ignore_case: bool) -> re2.Options:
    options = re2.Options()
    options.case_sensitive = not ignore_case
    options.log_errors = False  # RE2 writes parse errors to stderr; they are reported to the user instead
    return options


@functools.lru_cache(maxsize=512)
def compile_pattern(pattern: str, ignore_case: bool = False) -> Any:
    """Return the compiled RE2 pattern; raise ValueError saying why it is not one (RE2 syntax)."""
    try:
        return re2.compile(pattern, _options(ignore_case))
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise ValueError(
            f"Not a supported regular expression ({reason}). Patterns use RE2 syntax, which matches in linear "
            "time: backreferences and lookaround are not available."
        ) from None


class RegexConfig(InputSchema):
    pattern: str = Field(min_length=1, max_length=1000)
    ignore_case: bool = False
    message: str | None = Field(None, max_length=2000, description="An input guardrail's answer when it trips")
    replacement: str | None = Field(None, max_length=2000, description="An output guardrail's replacement output")

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        compile_pattern(value)  # whether it matches case-blind or not does not change what RE2 accepts
        return value


class AgentJudgeConfig(InputSchema):
    agent_id: int = Field(ge=1, description="An agent of the same workspace that judges")


class _Guardrail(InputSchema):
    name: str = Field(min_length=1, max_length=100)
    description: str = Field("", max_length=1000)
    type: Literal["input", "output"] | None = Field(None, description="Omitted: the list it is in")


class RegexGuardrail(_Guardrail):
    implementation: Literal["regex"]
    config: RegexConfig


class AgentGuardrail(_Guardrail):
    implementation: Literal["agent"]
    config: AgentJudgeConfig


class FunctionGuardrail(_Guardrail):
    implementation: Literal["function"]
    config: CodeOrEndpoint


GuardrailCreate = Annotated[RegexGuardrail | AgentGuardrail | FunctionGuardrail, Field(discriminator="implementation")]

_TOOLS: TypeAdapter[list[Any]] = TypeAdapter(list[ToolCreate])
_GUARDRAILS: TypeAdapter[list[Any]] = TypeAdapter(list[GuardrailCreate])


def _problems(exc: ValidationError, field: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for error in exc.errors():
        # As the API reports them (config.api): the path holds the type it was checked as ("tools.0.agent.params").
        where = ".".join(str(p) for p in error["loc"])
        fields.setdefault(f"{field}.{where}" if where else field, error["msg"].removeprefix("Value error, "))
    return fields


def clean_tools(value: Any, *, field: str = "tools") -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Return the tools as stored (what was sent, checked) and the problems found, by field path.

    Checks each tool against its ``type``'s schema and that names are unique; not whether an agent exists.
    """
    if value is None:
        return [], {}
    if isinstance(value, list) and len(value) > MAX_TOOLS:
        return [], {field: f"At most {MAX_TOOLS} tools."}
    try:
        tools = _TOOLS.validate_python(value)
    except ValidationError as exc:
        return [], _problems(exc, field)
    names = [tool.name for tool in tools]
    duplicate = next((name for name in names if names.count(name) > 1), None)
    if duplicate:
        return [], {field: f"Two tools are named {duplicate!r}; the model tells them apart by name."}
    return [tool.model_dump(mode="json", exclude_unset=True) for tool in tools], {}


def clean_guardrails(
    value: Any, *, kind: Literal["input", "output"], field: str
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Return the guardrails as stored (each with its ``type``) and the problems found, by field path."""
    if value is None:
        return [], {}
    if isinstance(value, list) and len(value) > MAX_GUARDRAILS:
        return [], {field: f"At most {MAX_GUARDRAILS} guardrails."}
    try:
        guardrails = _GUARDRAILS.validate_python(value)
    except ValidationError as exc:
        return [], _problems(exc, field)
    cleaned = []
    names = [guardrail.name for guardrail in guardrails]
    for i, guardrail in enumerate(guardrails):
        if guardrail.type not in (None, kind):
            return [], {f"{field}.{i}.type": f"This list holds {kind} guardrails."}
        if names.count(guardrail.name) > 1:
            return [], {f"{field}.{i}.name": f"Two {kind} guardrails are named {guardrail.name!r}."}
        cleaned.append({**guardrail.model_dump(mode="json", exclude_unset=True), "type": kind})
    return cleaned, {}


def referenced_agent_ids(tools: list[dict[str, Any]], *guardrail_lists: list[dict[str, Any]]) -> dict[str, int]:
    """Return the agent ids the stored tools and guardrails name, by field path (``tools.0.params.agent_id``)."""
    found: dict[str, int] = {}
    for i, tool in enumerate(tools):
        if tool.get("type") == "agent":
            found[f"tools.{i}.params.agent_id"] = tool["params"]["agent_id"]
    for guardrails in guardrail_lists:
        for i, guardrail in enumerate(guardrails):
            if guardrail.get("implementation") == "agent":
                found[f"{guardrail['type']}_guardrails.{i}.config.agent_id"] = guardrail["config"]["agent_id"]
    return found


def split_secrets(
    items: list[dict[str, Any]], *, key: str, stored: dict[str, dict[str, Any]], field: str
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Move header values out of stored tools or guardrails (``key``: "params" or "config"), in place.

    Returns the secrets by item name (``{"headers": {...}}``) and the problems found. Each header value left
    in the item becomes HEADER_MASK; a value sent as HEADER_MASK keeps the one ``stored`` for that item.
    """
    secrets: dict[str, dict[str, Any]] = {}
    problems: dict[str, str] = {}
    for i, item in enumerate(items):
        headers = (item.get(key) or {}).get("headers")
        if not headers:
            continue
        kept = (stored.get(item["name"]) or {}).get("headers") or {}
        values: dict[str, str] = {}
        for name, value in headers.items():
            if value != HEADER_MASK:
                values[name] = value
            elif name in kept:
                values[name] = kept[name]
            else:
                problems[f"{field}.{i}.{key}.headers.{name}"] = "Give this header's value; none is stored."
        secrets[item["name"]] = {"headers": values}
        item[key]["headers"] = dict.fromkeys(values, HEADER_MASK)
    return secrets, problems

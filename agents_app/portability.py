"""Moving agents in and out: JSON or YAML documents (an agent and every agent it reaches), and a standalone
Python script with the equivalent openai-agents SDK code.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import yaml
import yaml.composer
from django.db import transaction

from accounts_app.actor import Actor
from agents_app import file_search
from agents_app.exceptions import InvalidInputError
from agents_app.guardrails import Kind, default_message, regex_message
from agents_app.legacy import convert_tools, split_guardrails
from agents_app.models import Agent, AgentContext
from agents_app.runtime import load_graph
from agents_app.selectors import agent_get
from agents_app.services import agent_create, agent_update, context_create, handoff_add
from agents_app.tools import parameters_schema
from config.db import free_name
from config.input import check_json_value
from knowledge_app.models import VectorStore
from knowledge_app.services import store_create
from providers_app.models import Provider

FORMAT = "agents-platform/agents"
# Version 2 uses the spec's names (model, output_type, input_guardrails, output_guardrails, tools as ToolCreate,
# contexts' content); version 1 exports still import (agents_app/legacy.py converts them).
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
MAX_AGENTS = 200
_FIELDS = ("instructions", "model", "model_settings", "handoff_description", "output_type", "metadata", "max_turns")
_V1_NAMES = {"model_name": "model", "output_schema": "output_type"}
_WIRED = ("tools", "input_guardrails", "output_guardrails")


def _agent_ref(item: dict[str, Any], part: str, names: dict[Any, Any], *, to: str) -> dict[str, Any]:
    """Return a tool or guardrail with its agent reference (``params``/``config``) swapped from id to name (or
    back, ``to="agent_id"``); unchanged when it names no agent or an agent ``names`` does not hold."""
    holder = item.get(part)
    key = "agent" if to == "agent_id" else "agent_id"
    if not isinstance(holder, dict) or holder.get(key) not in names:
        return item
    return {**item, part: {**{k: v for k, v in holder.items() if k != key}, to: names[holder[key]]}}


def _swap_references(row: dict[str, Any], names: dict[Any, Any], *, to: str) -> dict[str, Any]:
    """Return the row's tools and guardrails with their agent references swapped (``_agent_ref``); entries
    that are not objects, and lists that are not lists, stay as they are for the services to refuse."""
    wired: dict[str, Any] = {}
    for key, part, tag, value in (
        ("tools", "params", ("type", "agent"), row.get("tools")),
        ("input_guardrails", "config", ("implementation", "agent"), row.get("input_guardrails")),
        ("output_guardrails", "config", ("implementation", "agent"), row.get("output_guardrails")),
    ):
        if not isinstance(value, list):
            wired[key] = value if value is not None else []
            continue
        wired[key] = [
            _agent_ref(entry, part, names, to=to) if isinstance(entry, dict) and entry.get(tag[0]) == tag[1] else entry
            for entry in value
        ]
    return wired


def _without_header_values(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return tools or guardrails without their endpoint headers: their values are secrets of this workspace
    (set them again after an import)."""
    return [
        {**item, part: {k: v for k, v in item[part].items() if k != "headers"}}
        if isinstance(item.get(part := "params" if "params" in item else "config"), dict)
        else item
        for item in items
    ]


def agent_export(*, actor: Actor, agent_id: int) -> dict[str, Any]:
    """Return a document with the agent and every agent it reaches (handoffs, agent tools, guardrail judges),
    naming agents by name.

    Providers are named, never included: their keys stay in this workspace.
    """
    root = agent_get(actor=actor, agent_id=agent_id)
    return {"format": FORMAT, "version": FORMAT_VERSION, "root": root.name, "agents": agent_items([root])}


def agent_items(roots: list[Agent]) -> list[dict[str, Any]]:
    """Return the export entries of ``roots`` and of every agent they reach, each once, naming agents by name."""
    rows: dict[int, Agent] = {}
    edges: dict[int, list[Any]] = {}
    for root in roots:
        if root.pk in rows:
            continue
        graph = load_graph(root=root)
        rows |= graph.agents
        edges |= graph.handoffs
    names = {pk: row.name for pk, row in rows.items()}
    contexts: dict[int, list[AgentContext]] = {}
    for context in AgentContext.objects.filter(agent_id__in=names):
        contexts.setdefault(context.agent_id, []).append(context)
    store_ids = {i for row in rows.values() for i in file_search.store_ids(row.tools).values()}
    stores = dict(VectorStore.objects.filter(pk__in=store_ids).values_list("pk", "name"))
    agents = []
    for pk, row in rows.items():
        wired = {key: _without_header_values(getattr(row, key)) for key in _WIRED}
        wired["tools"] = [_store_by_name(tool, stores) for tool in wired["tools"]]
        agents.append(
            {
                "name": row.name,
                **{field: getattr(row, field) for field in _FIELDS},
                "provider": row.provider.name if row.provider else None,
                **_swap_references(wired, names, to="agent"),
                "handoffs": [
                    {"target": names[e.target_id], "tool_name": e.tool_name, "tool_description": e.tool_description}
                    for e in edges.get(pk, [])
                ],
                "contexts": [
                    {"name": c.name, "content": c.content, "is_default": c.is_default}
                    for c in sorted(contexts.get(pk, []), key=lambda c: c.name)
                ],
            }
        )
    return agents


def _store_by_name(tool: dict[str, Any], names: dict[int, str]) -> dict[str, Any]:
    """Return a file search tool naming its knowledge base by name (``vector_store``), not by this workspace's id."""
    params = tool.get("params")
    if tool.get("type") != "file_search" or not isinstance(params, dict):
        return tool
    store_id = params.get("vector_store_id")
    if store_id not in names:
        return tool
    kept = {k: v for k, v in params.items() if k != "vector_store_id"}
    return {**tool, "params": {"vector_store": names[store_id], **kept}}


def _store_by_id(actor: Actor, tools: Any) -> Any:
    """Return the tools with each file search tool's ``vector_store`` (a name) made the id of this workspace's
    knowledge base of that name, created empty when there is none (upload its documents after the import)."""
    if not isinstance(tools, list):
        return tools
    result = []
    for tool in tools:
        params = tool.get("params") if isinstance(tool, dict) else None
        if (
            tool.get("type") == "file_search"
            and isinstance(params, dict)
            and isinstance(params.get("vector_store"), str)
        ):
            name = params["vector_store"].strip()[:100]
            store = VectorStore.objects.filter(workspace=actor.workspace, name=name).first()
            if store is None:
                store = store_create(actor=actor, name=name)
            kept = {k: v for k, v in params.items() if k != "vector_store"}
            tool = {**tool, "params": {"vector_store_id": store.pk, **kept}}
        result.append(tool)
    return result


def agent_export_yaml(*, actor: Actor, agent_id: int) -> str:
    return yaml.safe_dump(agent_export(actor=actor, agent_id=agent_id), sort_keys=False, allow_unicode=True)


class _JsonYamlLoader(yaml.SafeLoader):
    """YAML as JSON can say it: no aliases (a few bytes of them expand to gigabytes), and no tags beyond JSON's
    types (timestamps stay strings; binary and sets are refused)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed in an import", event.start_mark
            )
        return super().compose_node(parent, index)


_JsonYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _tag in ("tag:yaml.org,2002:binary", "tag:yaml.org,2002:set", "tag:yaml.org,2002:omap", "tag:yaml.org,2002:pairs"):
    _JsonYamlLoader.add_constructor(_tag, _JsonYamlLoader.construct_undefined)  # type: ignore[type-var]


def parse_document(text: str) -> dict[str, Any]:
    """Parse a JSON or YAML export into JSON values (checked as the API checks a body, config/input.py).

    Raises InvalidInputError when it is neither JSON nor YAML, uses aliases or non-JSON types, is not an
    object, or holds what cannot be stored (a NUL byte, nesting deeper than API_MAX_JSON_DEPTH, ...).
    """
    try:
        data = yaml.load(text, Loader=_JsonYamlLoader)  # noqa: S506 (a SafeLoader without aliases); JSON is YAML too
    except yaml.YAMLError as exc:
        raise InvalidInputError(
            "The document is neither JSON nor YAML.", fields={"document": str(exc).splitlines()[0][:200]}
        ) from None
    except RecursionError:
        raise InvalidInputError(
            "The document is nested too deeply.", fields={"document": "Nested too deeply."}
        ) from None
    if not isinstance(data, dict):
        raise InvalidInputError("The document must be an object.", fields={"document": "Give an exported document."})
    check_json_value(data, field="document")
    return data


def _v1_wiring(item: dict[str, Any], ids: dict[str, int], metadata: dict[str, Any]) -> dict[str, Any]:
    """Return a version-1 agent's tools and guardrails in the spec's shapes; what fits none goes to
    ``metadata`` (``legacy_tools``, ``legacy_guardrails``), as migration 0004 did with stored agents."""
    tools = item.get("tools") or []
    if isinstance(tools, list):
        unknown = [t for t in tools if isinstance(t, dict) and t.get("type") == "agent" and t.get("agent") not in ids]
        if unknown:
            raise InvalidInputError(
                f"Agent {item['name']!r} uses an unknown agent as a tool.",
                fields={f"agents.{item['name']}.tools": "Unknown agent."},
            )
        tools = [
            {**{k: v for k, v in t.items() if k != "agent"}, "agent_id": ids[t["agent"]]}
            if isinstance(t, dict) and t.get("type") == "agent"
            else t
            for t in tools
        ]
    tools, left_tools = convert_tools(tools, {pk: name for name, pk in ids.items()})
    inputs, outputs, left_guardrails = split_guardrails(item.get("guardrails") or [])
    if left_tools:
        metadata["legacy_tools"] = left_tools
    if left_guardrails:
        metadata["legacy_guardrails"] = left_guardrails
    return {"tools": tools, "input_guardrails": inputs, "output_guardrails": outputs}


def _unknown_agents(wiring: dict[str, Any]) -> list[str]:
    """Return the paths of agent references an import could not resolve (still naming an agent)."""
    unknown = []
    for key, part in (("tools", "params"), ("input_guardrails", "config"), ("output_guardrails", "config")):
        entries = wiring[key] if isinstance(wiring[key], list) else []
        unknown += [
            f"{key}.{i}"
            for i, entry in enumerate(entries)
            if isinstance(entry, dict) and isinstance(entry.get(part), dict) and "agent" in entry[part]
        ]
    return unknown


@transaction.atomic
def agent_import(*, actor: Actor, document: dict[str, Any]) -> Agent:
    """Create the agents of an export (version 1 or 2) in the actor's workspace and wire them; returns the root.

    Names that exist already get a suffix (" (2)"). Providers are matched by name, else the workspace
    default is used. All or nothing: raises InvalidInputError naming the problem, and nothing is created.
    """
    actor.require_write()
    _, items = _export_items(document)
    if document.get("root") not in {item["name"] for item in items}:
        raise InvalidInputError("The root agent is missing.", fields={"root": "Name one of the agents."})
    created = agents_import(actor=actor, document=document)
    return Agent.objects.get(pk=created[document["root"]].pk)  # as wired, after the updates


def _export_items(document: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
    """Return the version and the agents of an agents export, with version 1's names made version 2's.

    Raises InvalidInputError when it is not an export this platform reads, or an agent has no name.
    """
    version = document.get("version")
    if document.get("format") != FORMAT or version not in READABLE_VERSIONS:
        raise InvalidInputError(
            "This is not an agents export this platform can read.",
            fields={"format": f"Expected format {FORMAT!r}, version {' or '.join(map(str, READABLE_VERSIONS))}."},
        )
    items = document.get("agents")
    if not isinstance(items, list) or not items or len(items) > MAX_AGENTS:
        raise InvalidInputError("The export has no agents.", fields={"agents": f"Give 1 to {MAX_AGENTS} agents."})
    if not all(isinstance(item, dict) and isinstance(item.get("name"), str) for item in items):
        raise InvalidInputError("Every agent needs a name.", fields={"agents": "Every agent needs a name."})
    if version == 1:
        items = [{_V1_NAMES.get(k, k): v for k, v in item.items()} for item in items]
    return version, items


@transaction.atomic
def agents_import(*, actor: Actor, document: dict[str, Any]) -> dict[str, Agent]:
    """Create and wire the agents of an agents export, as ``agent_import`` does; returns them by their name in
    the document (their names here may carry a suffix). Raises what ``agent_import`` raises."""
    actor.require_write()
    version, items = _export_items(document)
    by_name = {item["name"]: item for item in items}
    providers = {p.name: p.pk for p in Provider.objects.filter(workspace=actor.workspace)}
    created: dict[str, Agent] = {}
    for name, item in by_name.items():
        values = {field: item[field] for field in _FIELDS if item.get(field) is not None}
        with _naming(name):
            created[name] = agent_create(
                actor=actor,
                name=free_name(Agent.objects.filter(workspace=actor.workspace), name),
                provider_id=providers.get(item.get("provider") or ""),
                **values,
            )
    ids = {name: agent.pk for name, agent in created.items()}
    for name, item in by_name.items():
        agent = created[name]
        metadata = dict(agent.metadata)
        if version == 1:
            wiring = _v1_wiring(item, ids, metadata)
        else:
            wiring = _swap_references(item, ids, to="agent_id")
            wiring["tools"] = _store_by_id(actor, wiring["tools"])
            unknown = _unknown_agents(wiring)
            if unknown:
                raise InvalidInputError(
                    f"Agent {name!r} names an agent the export does not hold.",
                    fields={f"agents.{name}.{path}": "Unknown agent." for path in unknown},
                )
        changes = {key: value for key, value in wiring.items() if value != []}
        if metadata != agent.metadata:
            changes["metadata"] = metadata
        if changes:
            with _naming(name):
                agent_update(actor=actor, agent_id=agent.pk, changes=changes)
        for edge in item.get("handoffs") or []:
            target = created.get(str(edge.get("target"))) if isinstance(edge, dict) else None
            if target is None:
                raise InvalidInputError(
                    f"Agent {name!r} hands off to an unknown agent.",
                    fields={f"agents.{name}.handoffs": "Unknown agent."},
                )
            handoff_add(
                actor=actor,
                agent_id=agent.pk,
                target_id=target.pk,
                tool_name=edge.get("tool_name") or "",
                tool_description=edge.get("tool_description") or "",
            )
        for context in item.get("contexts") or []:
            if isinstance(context, dict):
                with _naming(name):
                    context_create(
                        actor=actor,
                        agent_id=agent.pk,
                        name=str(context.get("name", "")),
                        content=context.get("content" if version > 1 else "data") or {},
                        is_default=bool(context.get("is_default")) or None,
                    )
    return created


@contextmanager
def _naming(name: str) -> Iterator[None]:
    """Re-raise a service's InvalidInputError with the agent's name in its message and field paths."""
    try:
        yield
    except InvalidInputError as exc:
        raise InvalidInputError(
            f"Agent {name!r}: {exc.message}", fields={f"agents.{name}.{k}": v for k, v in exc.fields.items()}
        ) from None


def _identifier(name: str, used: set[str]) -> str:
    base = re.sub(r"\W+", "_", name).strip("_").lower() or "agent"
    if base[0].isdigit():
        base = f"agent_{base}"
    candidate, n = base, 1
    while candidate in used:
        n += 1
        candidate = f"{base}_{n}"
    used.add(candidate)
    return candidate


def _tool_description(tool: dict[str, Any], target: dict[str, Any]) -> str:
    """Return an agent tool's description as runs give it (agents_app.runtime.build_sdk_graph)."""
    return tool.get("description") or target["handoff_description"] or f"Ask the {target['name']} agent."


# Written at the top of an exported script: how function tools and guardrails decide, as the platform does
# (agents_app/tools.py, agents_app/guardrails.py), in plain SDK code.
_PYTHON_HELPERS = """
CONTEXT = {}  # the run's context, given to function guardrails (set in build)
TRIPPED = []  # the messages of the guardrails that tripped
ENDPOINT_HEADERS = json.loads(os.environ.get("ENDPOINT_HEADERS") or "{}")


def as_text(value):
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def load_main(code):
    \"\"\"Return the main function the code defines (the platform runs it in its sandbox).\"\"\"
    namespace = {"__name__": "__main__"}
    exec(compile(code, "<code>", "exec"), namespace)  # noqa: S102 - the agent's own code, as exported
    return namespace["main"]


def code_call(code):
    main = load_main(code)

    async def call(args):
        value = main(**args)
        return await value if inspect.isawaitable(value) else value

    return call


class NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a redirect is an error, as on the platform


def endpoint_call(url):
    def post(args):
        headers = {**ENDPOINT_HEADERS, "Content-Type": "application/json"}
        request = urllib.request.Request(url, data=json.dumps(args).encode(), headers=headers, method="POST")
        with urllib.request.build_opener(NoRedirects).open(request, timeout=30) as response:
            body = response.read().decode()
            return json.loads(body) if "json" in response.headers.get("Content-Type", "") else body

    async def call(args):
        return await asyncio.to_thread(post, args)

    return call


def function_tool(name, description, schema, call):
    async def invoke(ctx, arguments):
        try:
            args = json.loads(arguments or "{}")
            errors = list(Draft202012Validator(schema).iter_errors(args))
            if errors:
                return f"Error: Invalid arguments: {errors[0].message}"
            properties = schema.get("properties") or {}
            defaults = {k: p["default"] for k, p in properties.items() if "default" in p and k not in args}
            return as_text(await call({**defaults, **args}))
        except Exception as exc:
            return f"Error: {type(exc).__name__}: {exc}"

    return FunctionTool(
        name=name, description=description, params_json_schema=schema, on_invoke_tool=invoke, strict_json_schema=False
    )


def verdict_of(value):
    if not isinstance(value, dict) or not isinstance(value.get("tripwire_triggered"), bool):
        raise ValueError("A guardrail must return an object with tripwire_triggered.")
    return value["tripwire_triggered"], value.get("message") or value.get("override_message")


def regex_check(pattern, flags, message):
    async def decide(value):
        return re.search(pattern, as_text(value), flags) is not None, message

    return decide


def judge_check(judge, max_turns):
    async def decide(value):
        result = await Runner.run(judge, as_text(value), max_turns=max_turns)
        return verdict_of(result.final_output)

    return decide


def function_check(kind, call):
    async def decide(value):
        return verdict_of(await call({kind: value, "context": CONTEXT}))

    return decide


def guardrail(kind, name, decide, default_message):
    async def check(ctx, agent, value):
        try:
            tripped, message = await decide(value)
        except Exception:  # a guardrail that cannot decide trips, as on the platform
            tripped, message = True, None
        if tripped:
            TRIPPED.append(message or default_message)
        return GuardrailFunctionOutput(output_info={"message": message}, tripwire_triggered=tripped)

    if kind == "input":  # checked before the model is asked anything
        return InputGuardrail(guardrail_function=check, name=name, run_in_parallel=False)
    return OutputGuardrail(guardrail_function=check, name=name)
"""


def _python_call(spec: dict[str, Any]) -> str:
    """Return the script's expression that runs a function tool's or guardrail's code or endpoint."""
    if spec.get("code") is not None:
        return f"code_call({spec['code']!r})"
    return f"endpoint_call({spec['endpoint']!r})"


def _python_function_tool(tool: dict[str, Any]) -> str:
    params = tool["params"]
    schema = parameters_schema(params.get("parameters"))
    description = tool.get("description") or f"Call {tool['name']}."
    return f"function_tool({tool['name']!r}, {description!r}, {schema!r}, {_python_call(params)})"


def _python_guardrail(kind: Kind, spec: dict[str, Any], ids: dict[str, str], turns: dict[str, int]) -> str:
    config = spec["config"]
    if spec["implementation"] == "regex":
        # ASCII classes (\d, \w, \b), as RE2 has them; patterns were checked to be RE2 when saved.
        flags = "re.ASCII | re.IGNORECASE" if config.get("ignore_case") else "re.ASCII"
        decide = f"regex_check({config['pattern']!r}, {flags}, {regex_message(kind, config) or None!r})"
    elif spec["implementation"] == "agent":
        judge = config.get("agent")
        decide = f"judge_check({ids[judge]}, {turns[judge]})" if judge in ids else "judge_check(None, 1)"
    else:
        decide = f"function_check({kind!r}, {_python_call(config)})"
    return f"guardrail({kind!r}, {spec['name']!r}, {decide}, {default_message(kind, spec['name'])!r})"


def agent_export_python(*, actor: Actor, agent_id: int) -> str:
    """Return a runnable script with the same agents in plain openai-agents SDK code.

    The model endpoint comes from OPENAI_BASE_URL and OPENAI_API_KEY and is called through Chat
    Completions; the starting agent's default context is written into every agent's instructions, as the
    platform does. Function tools and guardrails are SDK code that decides as the platform does (arguments
    checked, failures given to the model, a guardrail that cannot decide trips), except that code runs in the
    script's own process, not in a sandbox; header values are not exported (ENDPOINT_HEADERS sets them). Web
    search, file search and computer tools are listed as comments.
    """
    document = agent_export(actor=actor, agent_id=agent_id)
    used: set[str] = set()
    ids = {a["name"]: _identifier(a["name"], used) for a in document["agents"]}
    lines = [
        '"""Agents exported from Agents Platform; run: python this_file.py "your message"',
        "",
        "Needs: pip install openai-agents jsonschema. Set OPENAI_BASE_URL (an OpenAI-compatible endpoint, e.g.",
        "https://api.openai.com/v1) and OPENAI_API_KEY. Tools and guardrails that call an endpoint send the",
        'headers in ENDPOINT_HEADERS (a JSON object, e.g. {"Authorization": "Bearer ..."}).',
        "",
        "Function code runs in this process; the platform runs it in a sandbox. Run only code you trust.",
        '"""',
        "",
        "import asyncio",
        "import inspect",
        "import json",
        "import os",
        "import re",
        "import sys",
        "import urllib.request",
        "",
        "from agents import Agent, AgentOutputSchemaBase, FunctionTool, GuardrailFunctionOutput, InputGuardrail",
        "from agents import InputGuardrailTripwireTriggered, ModelBehaviorError, ModelSettings, OutputGuardrail",
        "from agents import OpenAIChatCompletionsModel, OutputGuardrailTripwireTriggered, RunConfig, Runner, handoff",
        "from jsonschema import Draft202012Validator",
        "from openai import AsyncOpenAI",
        "",
        *_PYTHON_HELPERS.splitlines(),
        "",
        "class JsonSchemaOutput(AgentOutputSchemaBase):",
        "    def __init__(self, schema):",
        "        self._schema, self._validator = schema, Draft202012Validator(schema)",
        "",
        "    def is_plain_text(self):",
        "        return False",
        "",
        "    def name(self):",
        '        return "final_output"',
        "",
        "    def json_schema(self):",
        "        return self._schema",
        "",
        "    def is_strict_json_schema(self):",
        "        return False",
        "",
        "    def validate_json(self, json_str):",
        "        data = json.loads(json_str)",
        "        errors = list(self._validator.iter_errors(data))",
        "        if errors:",
        '            raise ModelBehaviorError(f"Output does not match the schema: {errors[0].message}")',
        "        return data",
        "",
        "",
        "def build(client):",
    ]
    # As in the platform, a run's context is the starting agent's (default) context, and every agent of
    # the run sees it.
    by_name = {a["name"]: a for a in document["agents"]}
    root_item = by_name[document["root"]]
    run_context = next((c["content"] for c in root_item["contexts"] if c["is_default"]), None)
    turns = {a["name"]: a["max_turns"] for a in document["agents"]}
    if run_context:
        lines.append(f"    CONTEXT.update({run_context!r})")
    for item in document["agents"]:
        var = ids[item["name"]]
        instructions = item["instructions"] or ""
        if run_context:
            instructions += "\n\n# Context\n" + json.dumps(run_context, ensure_ascii=False, indent=2)
        settings = {
            k: v for k, v in (item["model_settings"] or {}).items() if k in ("temperature", "top_p", "max_tokens")
        }
        model = item["model"] or "gpt-4.1-mini"
        if item["provider"] is None and not item["model"]:
            lines.append(f"    # {item['name']!r} used the workspace's default model; set OPENAI_MODEL to choose one.")
        lines += [
            f"    {var} = Agent(",
            f"        name={item['name']!r},",
            f"        instructions={instructions!r},",
            f"        handoff_description={item['handoff_description'] or None!r},",
            f"        model=OpenAIChatCompletionsModel(model=os.environ.get('OPENAI_MODEL', {model!r}), "
            "openai_client=client),",
            f"        model_settings=ModelSettings(include_usage=True, **{settings!r}),",
            f"        output_type=JsonSchemaOutput({item['output_type']!r}) if {bool(item['output_type'])!r} "
            "else None,",
            "    )",
        ]
        for tool in item["tools"]:
            if tool.get("type") not in ("agent", "function"):
                lines.append(f"    # Stored tool, not exported as code: {json.dumps(tool)}")
    for item in document["agents"]:
        var = ids[item["name"]]
        handoffs = [
            f"handoff({ids[e['target']]}, tool_name_override={e['tool_name'] or None!r}, "
            f"tool_description_override={e['tool_description'] or None!r})"
            for e in item["handoffs"]
        ]
        tools = [
            f"{ids[t['params']['agent']]}.as_tool(tool_name={t['name']!r}, tool_description="
            f"{_tool_description(t, by_name[t['params']['agent']])!r})"
            if t.get("type") == "agent"
            else _python_function_tool(t)
            for t in item["tools"]
            if t.get("type") in ("agent", "function")
        ]
        for kind in ("input", "output"):
            made = [_python_guardrail(kind, g, ids, turns) for g in item[f"{kind}_guardrails"]]
            if made:
                lines.append(f"    {var}.{kind}_guardrails = [{', '.join(made)}]")
        if handoffs:
            lines.append(f"    {var}.handoffs = [{', '.join(handoffs)}]")
        if tools:
            lines.append(f"    {var}.tools = [{', '.join(tools)}]")
    root_turns = next(a["max_turns"] for a in document["agents"] if a["name"] == document["root"])
    lines += [
        f"    return {ids[document['root']]}",
        "",
        "",
        "async def main(message):",
        '    async with AsyncOpenAI(base_url=os.environ["OPENAI_BASE_URL"], api_key=os.environ["OPENAI_API_KEY"]) '
        "as client:",
        "        agent = build(client)",
        "        try:",
        f"            result = await Runner.run(agent, message, max_turns={root_turns}, "
        "run_config=RunConfig(tracing_disabled=True))",
        "        except (InputGuardrailTripwireTriggered, OutputGuardrailTripwireTriggered):",
        "            print(TRIPPED[-1])  # the guardrail's message, as the platform answers",
        "            return",
        "        output = result.final_output",
        "        print(output if isinstance(output, str) else json.dumps(output))",
        "",
        "",
        'if __name__ == "__main__":',
        '    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else input("> ")))',
        "",
    ]
    return "\n".join(lines)

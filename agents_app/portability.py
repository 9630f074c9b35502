"""Moving agents in and out: JSON or YAML documents (an agent and every agent it reaches), and a standalone
Python script with the equivalent openai-agents SDK code.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml
import yaml.composer
from django.db import transaction

from accounts_app.actor import Actor
from agents_app.exceptions import InvalidInputError
from agents_app.models import Agent, AgentContext
from agents_app.runtime import load_graph
from agents_app.selectors import agent_get
from agents_app.services import agent_create, context_create, handoff_add
from config.input import check_json_value
from providers_app.models import Provider

FORMAT = "agents-platform/agents"
FORMAT_VERSION = 1
MAX_AGENTS = 200
_FIELDS = (
    "instructions",
    "model_name",
    "model_settings",
    "handoff_description",
    "output_schema",
    "guardrails",
    "metadata",
    "max_turns",
)


def agent_export(*, actor: Actor, agent_id: int) -> dict[str, Any]:
    """Return a document with the agent and every agent it reaches (handoffs and agent tools), by name.

    Providers are named, never included: their keys stay in this workspace.
    """
    root = agent_get(actor=actor, agent_id=agent_id)
    graph = load_graph(root=root)
    names = {pk: row.name for pk, row in graph.agents.items()}
    contexts: dict[int, list[AgentContext]] = {}
    for context in AgentContext.objects.filter(agent_id__in=names):
        contexts.setdefault(context.agent_id, []).append(context)
    agents = []
    for pk, row in graph.agents.items():
        tools = []
        for tool in row.tools or []:
            if tool.get("type") == "agent" and tool.get("agent_id") in names:
                tool = {**{k: v for k, v in tool.items() if k != "agent_id"}, "agent": names[tool["agent_id"]]}
            tools.append(tool)
        agents.append(
            {
                "name": row.name,
                **{field: getattr(row, field) for field in _FIELDS},
                "provider": row.provider.name if row.provider else None,
                "tools": tools,
                "handoffs": [
                    {"target": names[e.target_id], "tool_name": e.tool_name, "tool_description": e.tool_description}
                    for e in graph.handoffs.get(pk, [])
                ],
                "contexts": [
                    {"name": c.name, "data": c.data, "is_default": c.is_default}
                    for c in sorted(contexts.get(pk, []), key=lambda c: c.name)
                ],
            }
        )
    return {"format": FORMAT, "version": FORMAT_VERSION, "root": root.name, "agents": agents}


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


def _free_name(workspace_id: int, name: str, taken: set[str]) -> str:
    candidate, n = name, 1
    while candidate in taken or Agent.objects.filter(workspace_id=workspace_id, name=candidate).exists():
        n += 1
        candidate = f"{name} ({n})"[:100]
    taken.add(candidate)
    return candidate


@transaction.atomic
def agent_import(*, actor: Actor, document: dict[str, Any]) -> Agent:
    """Create the agents of an export in the actor's workspace and wire them; returns the root agent.

    Names that exist already get a suffix (" (2)"). Providers are matched by name, else the workspace
    default is used. All or nothing: raises InvalidInputError naming the problem, and nothing is created.
    """
    actor.require_write()
    if document.get("format") != FORMAT or document.get("version") != FORMAT_VERSION:
        raise InvalidInputError(
            "This is not an agents export this platform can read.",
            fields={"format": f"Expected format {FORMAT!r}, version {FORMAT_VERSION}."},
        )
    items = document.get("agents")
    if not isinstance(items, list) or not items or len(items) > MAX_AGENTS:
        raise InvalidInputError("The export has no agents.", fields={"agents": f"Give 1 to {MAX_AGENTS} agents."})
    if not all(isinstance(item, dict) and isinstance(item.get("name"), str) for item in items):
        raise InvalidInputError("Every agent needs a name.", fields={"agents": "Every agent needs a name."})
    by_name = {item["name"]: item for item in items}
    if document.get("root") not in by_name:
        raise InvalidInputError("The root agent is missing.", fields={"root": "Name one of the agents."})
    providers = {p.name: p.pk for p in Provider.objects.filter(workspace=actor.workspace)}
    taken: set[str] = set()
    created: dict[str, Agent] = {}
    for name, item in by_name.items():
        values = {field: item[field] for field in _FIELDS if item.get(field) is not None}
        try:
            created[name] = agent_create(
                actor=actor,
                name=_free_name(actor.workspace.pk, name, taken),
                provider_id=providers.get(item.get("provider") or ""),
                **values,
            )
        except InvalidInputError as exc:
            raise InvalidInputError(
                f"Agent {name!r}: {exc.message}", fields={f"agents.{name}.{k}": v for k, v in exc.fields.items()}
            ) from None
    for name, item in by_name.items():
        agent = created[name]
        tools = []
        for tool in item.get("tools") or []:
            if isinstance(tool, dict) and tool.get("type") == "agent":
                target = created.get(str(tool.get("agent")))
                if target is None:
                    raise InvalidInputError(
                        f"Agent {name!r} uses an unknown agent as a tool.",
                        fields={f"agents.{name}.tools": "Unknown agent."},
                    )
                tool = {**{k: v for k, v in tool.items() if k != "agent"}, "agent_id": target.pk}
            tools.append(tool)
        if tools:
            Agent.objects.filter(pk=agent.pk).update(tools=tools)
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
                context_create(
                    actor=actor,
                    agent_id=agent.pk,
                    name=str(context.get("name", "")),
                    data=context.get("data") or {},
                    is_default=bool(context.get("is_default")) or None,
                )
    return created[document["root"]]


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


def agent_export_python(*, actor: Actor, agent_id: int) -> str:
    """Return a runnable script with the same agents in plain openai-agents SDK code.

    The model endpoint comes from OPENAI_BASE_URL and OPENAI_API_KEY and is called through Chat
    Completions; the starting agent's default context is written into every agent's instructions, as the
    platform does; stored function tools and guardrails are listed as comments.
    """
    document = agent_export(actor=actor, agent_id=agent_id)
    used: set[str] = set()
    ids = {a["name"]: _identifier(a["name"], used) for a in document["agents"]}
    lines = [
        '"""Agents exported from Agents Platform; run: python this_file.py "your message"',
        "",
        "Needs: pip install openai-agents jsonschema. Set OPENAI_BASE_URL (an OpenAI-compatible endpoint, e.g.",
        "https://api.openai.com/v1) and OPENAI_API_KEY.",
        '"""',
        "",
        "import asyncio",
        "import json",
        "import os",
        "import sys",
        "",
        "from agents import Agent, AgentOutputSchemaBase, ModelBehaviorError, ModelSettings, handoff",
        "from agents import OpenAIChatCompletionsModel, RunConfig, Runner",
        "from jsonschema import Draft202012Validator",
        "from openai import AsyncOpenAI",
        "",
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
    root_item = next(a for a in document["agents"] if a["name"] == document["root"])
    run_context = next((c["data"] for c in root_item["contexts"] if c["is_default"]), None)
    for item in document["agents"]:
        var = ids[item["name"]]
        instructions = item["instructions"] or ""
        if run_context:
            instructions += "\n\n# Context\n" + json.dumps(run_context, ensure_ascii=False, indent=2)
        settings = {
            k: v for k, v in (item["model_settings"] or {}).items() if k in ("temperature", "top_p", "max_tokens")
        }
        model = item["model_name"] or "gpt-4.1-mini"
        if item["provider"] is None and not item["model_name"]:
            lines.append(f"    # {item['name']!r} used the workspace's default model; set OPENAI_MODEL to choose one.")
        lines += [
            f"    {var} = Agent(",
            f"        name={item['name']!r},",
            f"        instructions={instructions!r},",
            f"        handoff_description={item['handoff_description'] or None!r},",
            f"        model=OpenAIChatCompletionsModel(model=os.environ.get('OPENAI_MODEL', {model!r}), "
            "openai_client=client),",
            f"        model_settings=ModelSettings(include_usage=True, **{settings!r}),",
            f"        output_type=JsonSchemaOutput({item['output_schema']!r}) if {bool(item['output_schema'])!r} "
            "else None,",
            "    )",
        ]
        for tool in item["tools"]:
            if tool.get("type") != "agent":
                lines.append(f"    # Stored tool, not exported as code: {json.dumps(tool)}")
        for guardrail in item["guardrails"] or []:
            lines.append(f"    # Stored guardrail, not exported as code: {json.dumps(guardrail)}")
    for item in document["agents"]:
        var = ids[item["name"]]
        handoffs = [
            f"handoff({ids[e['target']]}, tool_name_override={e['tool_name'] or None!r}, "
            f"tool_description_override={e['tool_description'] or None!r})"
            for e in item["handoffs"]
        ]
        tools = [
            f"{ids[t['agent']]}.as_tool(tool_name={t.get('name')!r}, tool_description="
            f"{t.get('description') or 'Ask the ' + t['agent'] + ' agent.'!r})"
            for t in item["tools"]
            if t.get("type") == "agent"
        ]
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
        f"        result = await Runner.run(agent, message, max_turns={root_turns}, "
        "run_config=RunConfig(tracing_disabled=True))",
        "        output = result.final_output",
        "        print(output if isinstance(output, str) else json.dumps(output))",
        "",
        "",
        'if __name__ == "__main__":',
        '    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else input("> ")))',
        "",
    ]
    return "\n".join(lines)

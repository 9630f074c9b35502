"""The spec's names: ``model``, ``output_type``, ``input_guardrails`` and ``output_guardrails`` on agents, ``content``
on contexts, and tools in the spec's ``ToolCreate`` shape (``{name, description, type, params}``).

Stored tools and guardrails are converted (agents_app/legacy.py); entries that fit no spec shape, or name an
agent outside the workspace, move to the agent's ``metadata`` (``legacy_tools``, ``legacy_guardrails``) rather
than being lost. Backwards, tools and guardrails go back to the old shapes and one list. The old ``guardrails``
column goes in 0005, in a transaction of its own (a schema change after row updates in one transaction can meet
pending trigger events).
"""

from typing import Any

from django.db import migrations, models


def forward(apps: Any, schema_editor: Any) -> None:
    from agents_app.legacy import convert_tools, split_guardrails

    agent_model = apps.get_model("agents_app", "Agent")
    names: dict[int, dict[int, str]] = {}
    for pk, workspace_id, name in agent_model.objects.values_list("pk", "workspace_id", "name"):
        names.setdefault(workspace_id, {})[pk] = name
    for agent in agent_model.objects.all().iterator():
        same_workspace = {pk: name for pk, name in names[agent.workspace_id].items() if pk != agent.pk}
        tools, left_tools = convert_tools(agent.tools, same_workspace)
        inputs, outputs, left_guardrails = split_guardrails(agent.guardrails)
        for guardrails in (inputs, outputs):
            for guardrail in list(guardrails):
                if guardrail["implementation"] == "agent" and guardrail["config"]["agent_id"] not in same_workspace:
                    guardrails.remove(guardrail)
                    left_guardrails.append(guardrail)
        metadata = dict(agent.metadata) if isinstance(agent.metadata, dict) else {"legacy_metadata": agent.metadata}
        if left_tools:
            metadata["legacy_tools"] = left_tools
        if left_guardrails:
            metadata["legacy_guardrails"] = left_guardrails
        agent_model.objects.filter(pk=agent.pk).update(
            tools=tools, input_guardrails=inputs, output_guardrails=outputs, metadata=metadata
        )


def backward(apps: Any, schema_editor: Any) -> None:
    agent_model = apps.get_model("agents_app", "Agent")
    for agent in agent_model.objects.all().iterator():
        tools = [
            {
                "type": "agent",
                "agent_id": t["params"]["agent_id"],
                "name": t["name"],
                "description": t.get("description", ""),
            }
            if t.get("type") == "agent"
            else t
            for t in agent.tools
        ]
        agent_model.objects.filter(pk=agent.pk).update(
            tools=tools, guardrails=[*agent.input_guardrails, *agent.output_guardrails]
        )


class Migration(migrations.Migration):
    dependencies = [("agents_app", "0003_configuration_triggers")]

    operations = [
        migrations.RenameField("agent", "model_name", "model"),
        migrations.RenameField("agent", "output_schema", "output_type"),
        migrations.RenameField("agentcontext", "data", "content"),
        migrations.AddField("agent", "input_guardrails", models.JSONField(blank=True, default=list)),
        migrations.AddField("agent", "output_guardrails", models.JSONField(blank=True, default=list)),
        migrations.RunPython(forward, backward),
    ]

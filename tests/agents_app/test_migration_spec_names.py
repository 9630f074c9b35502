"""Migration 0004 moves stored agents to the spec's names and shapes without losing anything, and back."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from tests.factories import make_workspace

BEFORE = [("agents_app", "0003_configuration_triggers")]
AFTER = [("agents_app", "0005_drop_mixed_guardrails")]


def _migrate(targets: list[tuple[str, str]]):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def _latest() -> list[tuple[str, str]]:
    """Every app's last migration: going back in agents_app also unapplied the apps whose migrations follow it."""
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


@pytest.mark.django_db(transaction=True)
def test_stored_agents_move_to_the_spec_shapes_and_back(owner):
    workspace_id = make_workspace(owner=owner, name="Migrated").workspace.pk
    other_id = make_workspace(owner=owner, name="Other").workspace.pk
    try:
        old = _migrate(BEFORE)
        agent = old.get_model("agents_app", "Agent")
        context = old.get_model("agents_app", "AgentContext")
        target = agent.objects.create(workspace_id=workspace_id, name="Billing Desk", model_name="m-1")
        foreign = agent.objects.create(workspace_id=other_id, name="Theirs")
        regex = {"name": "pin", "implementation": "regex", "config": {"pattern": "\\d{4}"}}
        source = agent.objects.create(
            workspace_id=workspace_id,
            name="Front",
            model_name="m-2",
            output_schema={"type": "object"},
            tools=[
                {"type": "agent", "agent_id": target.pk},
                {"type": "agent", "agent_id": target.pk, "name": "billing", "description": "Invoices."},
                {"type": "agent", "agent_id": foreign.pk, "name": "theirs"},
                {"type": "function", "name": "unfinished"},
            ],
            guardrails=[
                {**regex, "type": "input"},
                {**regex, "name": "leak", "type": "output"},
                {"name": "judge", "implementation": "agent", "config": {"agent_id": foreign.pk}},
                "junk",
            ],
            metadata={"team": "cx"},
        )
        context.objects.create(agent=source, name="shop", data={"shop": "Acme"})

        new = _migrate(AFTER)
        row = new.get_model("agents_app", "Agent").objects.get(pk=source.pk)
        assert (row.model, row.output_type) == ("m-2", {"type": "object"})
        assert row.tools == [
            {"name": "billing_desk", "description": "", "type": "agent", "params": {"agent_id": target.pk}},
            {"name": "billing", "description": "Invoices.", "type": "agent", "params": {"agent_id": target.pk}},
        ]
        assert row.input_guardrails == [{**regex, "type": "input"}]
        assert row.output_guardrails == [{**regex, "name": "leak", "type": "output"}]
        assert row.metadata == {  # kept, not lost: what fits no spec shape or names another workspace's agent
            "team": "cx",
            "legacy_tools": [
                {"type": "agent", "agent_id": foreign.pk, "name": "theirs"},
                {"type": "function", "name": "unfinished"},
            ],
            "legacy_guardrails": [
                "junk",
                {"name": "judge", "implementation": "agent", "config": {"agent_id": foreign.pk}, "type": "input"},
            ],
        }
        assert new.get_model("agents_app", "AgentContext").objects.get(agent_id=source.pk).content == {"shop": "Acme"}

        back = _migrate(BEFORE).get_model("agents_app", "Agent").objects.get(pk=source.pk)
        assert back.model_name == "m-2"
        assert back.tools[0] == {"type": "agent", "agent_id": target.pk, "name": "billing_desk", "description": ""}
        assert [g["name"] for g in back.guardrails] == ["pin", "leak"]
    finally:
        _migrate(_latest())  # the following tests need every migration, not only those this test is about

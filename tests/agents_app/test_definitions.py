from __future__ import annotations

import pytest

from accounts_app.selectors import workspace_get_for_user
from agents_app.definitions import agent_definition
from agents_app.exceptions import NotFoundError
from agents_app.services import agent_create, agent_update, context_create, handoff_add
from providers_app.services import provider_update


def fresh(actor):
    """The actor as a new request would build it (auth reloads the workspace row every time)."""
    return workspace_get_for_user(user=actor.user, workspace_id=actor.workspace.pk)


def test_a_hit_costs_no_query(team, helper, django_assert_num_queries):
    first = agent_definition(actor=fresh(team), agent_id=helper.pk)
    actor = fresh(team)
    with django_assert_num_queries(0):
        assert agent_definition(actor=actor, agent_id=helper.pk) is first


@pytest.mark.parametrize("change", ["agent", "context", "handoff", "provider", "new agent"])
def test_every_configuration_change_is_seen_by_the_next_request(team, helper, fake_provider, change):
    before = agent_definition(actor=fresh(team), agent_id=helper.pk)
    if change == "agent":
        agent_update(actor=team, agent_id=helper.pk, changes={"instructions": "Changed."})
    elif change == "context":
        context_create(actor=team, agent_id=helper.pk, name="c", content={"a": 1})
    elif change == "handoff":
        handoff_add(actor=team, agent_id=helper.pk, target_id=agent_create(actor=team, name="B").pk)
    elif change == "provider":
        provider_update(actor=team, provider_id=fake_provider.pk, changes={"models": ["other"]})
    else:
        agent_create(actor=team, name="Unrelated")
    after = agent_definition(actor=fresh(team), agent_id=helper.pk)
    assert after is not before
    if change == "agent":
        assert after.agent.instructions == "Changed."
    if change == "context":
        assert [c.name for c in after.contexts] == ["c"]
    if change == "handoff":
        assert len(after.graph.agents) == 2
    if change == "provider":
        assert after.default_provider.model_names == ["other"]


def test_the_cache_never_crosses_workspaces(team, helper, outsider):
    agent_definition(actor=fresh(team), agent_id=helper.pk)
    with pytest.raises(NotFoundError):
        agent_definition(actor=fresh(outsider), agent_id=helper.pk)

from __future__ import annotations

import pytest
from django.test import override_settings

from agents_app.services import agent_create
from providers_app.services import provider_create


@pytest.fixture
def fake_provider(team, fake_openai):
    """A priced custom provider on the fake server, the team's default."""
    with override_settings(PROVIDER_EGRESS_ALLOWLIST=["127.0.0.1"]):
        provider = provider_create(
            actor=team,
            type="custom",
            name="Fake",
            api_key="sk-fake-0123456789",
            base_url=fake_openai.base_url,
            models=["fake-model"],
            config={"prices": {"fake-model": {"input": 1000, "output": 2000}}},
            is_default=True,
        )
        fake_openai.requests.clear()  # the connection test made it the default; tests count their own calls
        yield provider


@pytest.fixture
def helper(team, fake_provider):
    return agent_create(actor=team, name="Helper", instructions="You help.")

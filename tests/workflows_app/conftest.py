from tests.agents_app.conftest import fake_provider, helper  # noqa: F401  (the same agents and provider)

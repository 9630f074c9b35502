from tests.agents_app.conftest import fake_provider, helper  # noqa: F401  (the same agents and provider)
from tests.knowledge_app.conftest import media  # noqa: F401  (uploads under the test's own folder)

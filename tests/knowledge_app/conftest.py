from __future__ import annotations

import pytest


@pytest.fixture
def media(settings, tmp_path):
    """Uploads stored under this test's own folder (and the worker's, when it is started after this)."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


from tests.agents_app.conftest import api, fake_provider  # noqa: E402, F401 - the agents' fixtures, shared

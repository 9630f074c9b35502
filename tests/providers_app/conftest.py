from __future__ import annotations

import pytest
from django.test import override_settings


@pytest.fixture
def allow_loopback():
    """Let providers reach the fake server on 127.0.0.1, as an operator's allowlist would."""
    with override_settings(PROVIDER_EGRESS_ALLOWLIST=["127.0.0.1"]):
        yield

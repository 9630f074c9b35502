"""Schema fuzzing: schemathesis runs every operation of ``/api/v1/openapi.json`` against the app under uvicorn
(as deployed, with the run hot path), with a token: no server error, every status and body as documented.

A bounded run (FUZZ_EXAMPLES examples per operation, derandomized) is part of ``make test``; ``make fuzz`` runs
longer. Each finding becomes a fix and a regression test of its own (tests/test_hostile_input.py).
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from accounts_app.services import api_token_create
from config.api import api

pytestmark = pytest.mark.django_db(transaction=True)


@schemathesis.check
def forbidden_input_refused(ctx: Any, response: Any, case: Any) -> bool | None:
    """schemathesis's negative data rejection, except that 413 (body too large) is a refusal too, and a case
    that only lacks the Authorization header proves nothing here: the test sends the token with every call."""
    if response.status_code == 413:
        return None
    data = getattr(case.meta.phase, "data", None) if case.meta else None
    names = [getattr(data, "parameter", None), *(m.parameter for m in getattr(data, "mutations", []) or [])]
    if any((name or "").lower() == "authorization" for name in names):
        return None
    result: bool | None = negative_data_rejection(ctx, response, case)
    return result


# No server error; statuses, content types and bodies as documented; input the schema forbids refused. (Not
# "positive data acceptance": a schema-valid body may still break a rule of the domain, which is a 4xx.)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    forbidden_input_refused,
]
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "6"))
TRANSPORT_HEADERS = {"content-length", "transfer-encoding", "host", "connection", "expect", "te", "upgrade"}


@pytest.fixture
def fuzz_headers(team) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_token_create(actor=team, name='fuzz').raw}"}


# The document the server serves at /api/v1/openapi.json (pytest-django has set Django up by collection time).
schema = schemathesis.openapi.from_dict(api.get_openapi_schema())


@schema.parametrize()
@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(case, asgi_server, fuzz_headers):
    # Headers that frame the HTTP message belong to the client, not to the API: a forged Content-Length is
    # answered by the HTTP server (uvicorn) before the app, in its own format.
    case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() not in TRANSPORT_HEADERS}
    case.call_and_validate(base_url=asgi_server, headers=fuzz_headers, checks=CHECKS)

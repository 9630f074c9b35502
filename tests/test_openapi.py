"""The OpenAPI document is one a client generator accepts: names for operation ids, one security scheme, and every
error response documented with the one error schema."""

from __future__ import annotations

import pytest
from django.test import Client

from config.api import api


@pytest.fixture
def document() -> dict:
    return Client().get("/api/v1/openapi.json").json()


def operations(document: dict) -> list[tuple[str, str, dict]]:
    return [(method, path, op) for path, ops in document["paths"].items() for method, op in ops.items()]


@pytest.mark.django_db
def test_operation_ids_are_the_endpoints_names_and_unique(document):
    ids = [op["operationId"] for _, _, op in operations(document)]
    assert len(ids) == len(set(ids)) == len(operations(document)) > 40
    assert all(op_id.isidentifier() and "_api_" not in op_id for op_id in ids)
    assert {"agent_run", "agent_list", "trace_get", "provider_create"} <= set(ids)


@pytest.mark.django_db
def test_one_bearer_security_scheme(document):
    schemes = document["components"]["securitySchemes"]
    assert list(schemes) == ["bearerAuth"]
    assert (schemes["bearerAuth"]["type"], schemes["bearerAuth"]["scheme"]) == ("http", "bearer")
    for _, _, op in operations(document):
        assert op.get("security") in (None, [{"bearerAuth": []}])


@pytest.mark.django_db
def test_every_error_is_documented_with_the_error_schema(document):
    error = {"$ref": "#/components/schemas/Error"}
    for method, path, op in operations(document):
        responses = op["responses"]
        for status in ("400", "401", "403", "422", "429"):
            assert responses[status]["content"]["application/json"]["schema"] == error, (method, path, status)
        if "{" in path:
            assert "404" in responses, (method, path)
        if "requestBody" in op:
            assert "413" in responses, (method, path)
    assert document["components"]["schemas"]["Error"]["required"] == ["detail", "code"]


def test_the_served_document_is_the_one_the_fuzzer_reads(db, document):
    import json

    assert json.loads(json.dumps(api.get_openapi_schema())) == document

"""The OpenAPI document as a client generator needs it: operation ids that read as names, one security scheme,
and every error an operation can answer documented with the API's one error schema (config/api.py)."""

from __future__ import annotations

import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

BEARER = "bearerAuth"

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "description": "Every error of the API. Validation errors (422) add `errors`; some add context (402: `balance`).",
    "properties": {
        "detail": {"type": "string", "description": "What went wrong, for a person."},
        "code": {"type": "string", "description": "What went wrong, for a program (stable)."},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "field": {"type": "string"},
                    "message": {"type": "string"},
                    "type": {"type": ["string", "null"]},
                },
                "required": ["field", "message"],
            },
        },
    },
    "required": ["detail", "code"],
}

_DESCRIPTIONS = {
    "400": "The request could not be read (not JSON, a bad Host, a NUL byte in the path).",
    "401": "No valid token (or session).",
    "402": "The workspace's credits cannot cover it.",
    "403": "The actor's role does not allow it.",
    "404": "Not found, or another workspace's.",
    "409": "It clashes with the current state (a duplicate, an object in the wrong state).",
    "413": "The body is larger than API_MAX_BODY_BYTES.",
    "422": "The input is invalid; `errors` names each field.",
    "429": "Too many requests; wait for `Retry-After` seconds.",
}


def _errors_of(method: str, path: str, operation: dict[str, Any]) -> list[str]:
    """Return the error statuses ``operation`` can answer."""
    statuses = ["400", "401", "403", "422", "429"]
    if "{" in path:
        statuses.append("404")
    if method != "get":
        statuses.append("409")
    if "requestBody" in operation:
        statuses.append("413")
    if path.endswith("/run"):
        statuses.append("402")
    return statuses


def refine(schema: dict[str, Any]) -> dict[str, Any]:
    """Return ``schema`` (ninja's document) as plain JSON values (Django's lazy texts made strings), with one bearer
    security scheme and every error response documented."""
    schema = json.loads(json.dumps(schema, cls=DjangoJSONEncoder))
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    components["securitySchemes"] = {
        BEARER: {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token: `Authorization: Bearer <token>` (Settings → API tokens).",
        }
    }
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            if operation.get("security"):
                operation["security"] = [{BEARER: []}]
            responses = operation.setdefault("responses", {})
            for status in _errors_of(method, path, operation):
                responses.setdefault(
                    status,
                    {
                        "description": _DESCRIPTIONS[status],
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                    },
                )
    return schema

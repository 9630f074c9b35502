"""The API's one input layer: what every JSON body and query string must be before an endpoint reads it.

Every endpoint gets it through ``ApiParser`` (config/api.py), and the run hot path through ``parse_json_body``,
so that no endpoint checks these one field at a time:

- a body is one JSON object of at most API_MAX_BODY_BYTES, standard JSON (no NaN or Infinity), else 413 or 400;
- no string or key anywhere in it holds a NUL byte or a lone UTF-16 surrogate (Postgres cannot store either);
- no number is beyond what Postgres's bigint and double can hold, and nothing nests deeper than
  API_MAX_JSON_DEPTH objects and arrays (a stored value is read, exported and walked recursively later);
- query values hold no NUL byte, and a query names only parameters its endpoint declares.

Body and query schemas refuse fields they do not know (``InputSchema``, ``QuerySchema``), and bodies refuse
values of another JSON type; the path is checked by
config.middleware.ApiErrorShapeMiddleware. Violations are 422 with the offending field, in the API's format.
"""

from __future__ import annotations

import functools
import json
import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any

from django import forms
from django.conf import settings
from django.http import HttpRequest
from django.utils.datastructures import MultiValueDict
from ninja import Schema
from ninja.parser import Parser
from pydantic import BeforeValidator, ConfigDict, Field

from config.errors import ApplicationError, InvalidInputError

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# Offsets deeper than this are refused: a page that far in is never what a client means, and an OFFSET is
# read row by row up to it.
MAX_OFFSET = 1_000_000
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class InputSchema(Schema):
    """The base of every request body schema: a field it does not know is an error, not ignored, and a value of
    another JSON type is an error, not converted (``0`` is not ``false``, ``"10"`` not ``10``)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class QuerySchema(Schema):
    """The base of every query schema: a parameter it does not know is an error. Values arrive as text and are
    converted to the field's type (``?limit=10``)."""

    model_config = ConfigDict(extra="forbid")


def _iso_text(value: Any) -> Any:
    try:
        # Text only: pydantic would also read a number of seconds. In UTC: Postgres refuses offsets beyond
        # ±15:59, which ISO 8601 allows up to ±23:59. Without an offset, UTC is meant.
        when = datetime.fromisoformat(value) if isinstance(value, str) else value
        if isinstance(when, datetime):
            return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    except (ValueError, OverflowError):
        pass
    raise ValueError("Give a date and time in ISO 8601, e.g. 2026-12-31T23:59:00Z.")


# A date and time given as ISO 8601 text (in a body or a query), never a number.
IsoDatetime = Annotated[datetime, BeforeValidator(_iso_text), Field(strict=False)]


class MalformedBodyError(ApplicationError):
    """The body is not JSON (or not standard JSON)."""

    status_code = 400
    code = "bad_request"


class BodyTooLargeError(ApplicationError):
    """The body is larger than API_MAX_BODY_BYTES."""

    status_code = 413
    code = "too_large"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _problem(value: str) -> str:
    return "holds a NUL byte" if "\x00" in value else "holds a lone UTF-16 surrogate (not valid Unicode)"


def check_json_value(value: Any, *, field: str = "", depth: int = 0) -> None:
    """Raise InvalidInputError naming the field of the first thing in ``value`` that cannot be stored: a NUL
    byte or lone surrogate in a string or key, a key that is not text, a number beyond bigint or double, nesting
    deeper than API_MAX_JSON_DEPTH, or a value JSON has no type for. Returns None when ``value`` is fine."""
    name = field or "__all__"
    if isinstance(value, str):
        if _UNSTORABLE.search(value):
            raise InvalidInputError(f"{name} {_problem(value)}.", fields={name: f"This text {_problem(value)}."})
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise InvalidInputError(
                f"{name} is out of range.", fields={name: "Numbers must fit in 64 bits (±9223372036854775807)."}
            )
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInputError(f"{name} is out of range.", fields={name: "Numbers must be finite."})
    elif isinstance(value, dict | list):
        limit = settings.API_MAX_JSON_DEPTH
        if depth >= limit:
            raise InvalidInputError(
                f"{name} is nested too deeply.",
                fields={name: f"At most {limit} levels of objects and arrays (API_MAX_JSON_DEPTH)."},
            )
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if isinstance(value, dict) and not isinstance(key, str):  # YAML allows any key; JSON only text
                raise InvalidInputError(f"A key in {name} is not text.", fields={name: "Keys must be text."})
            if isinstance(key, str) and _UNSTORABLE.search(key):
                raise InvalidInputError(f"A key in {name} {_problem(key)}.", fields={name: f"A key {_problem(key)}."})
            check_json_value(item, field=f"{field}.{key}" if field else str(key), depth=depth + 1)
    else:
        raise InvalidInputError(f"{name} is not a JSON value.", fields={name: f"Got {type(value).__name__}."})


def _loads(raw: bytes | str) -> Any:
    """Return the JSON value ``raw`` holds, checked by ``check_json_value``. Raises MalformedBodyError for what is
    not standard JSON (its message follows "... is "), and InvalidInputError for what cannot be stored or nests
    deeper than API_MAX_JSON_DEPTH, however deep (past Python's recursion limit the parser itself gives up)."""
    try:
        data = json.loads(raw, parse_constant=_reject_constant)
    except RecursionError:
        depth = settings.API_MAX_JSON_DEPTH
        raise InvalidInputError(
            "It is nested too deeply.",
            fields={"__all__": f"At most {depth} levels of objects and arrays (API_MAX_JSON_DEPTH)."},
        ) from None
    except ValueError as exc:  # JSONDecodeError, a bad encoding, NaN or Infinity, an integer of thousands of digits
        raise MalformedBodyError(f"not valid JSON: {exc}") from None
    check_json_value(data)
    return data


def parse_json_body(raw: bytes) -> dict[str, Any]:
    """Return the JSON object ``raw`` holds, checked by ``check_json_value``.

    Raises BodyTooLargeError (413) above API_MAX_BODY_BYTES, MalformedBodyError (400) for what is not standard
    JSON, and InvalidInputError (422) for a body that is not an object, nests too deeply or holds what cannot be
    stored.
    """
    limit = settings.API_MAX_BODY_BYTES
    if len(raw) > limit:
        raise BodyTooLargeError(f"The request body is larger than {limit} bytes (API_MAX_BODY_BYTES).")
    try:
        data = _loads(raw)
    except MalformedBodyError as exc:
        raise MalformedBodyError(f"The request body is {exc.message}.") from None
    if not isinstance(data, dict):
        raise InvalidInputError(
            "The request body must be a JSON object.", fields={"__all__": f"Got {type(data).__name__}."}
        )
    return data


class JsonFormField(forms.CharField):
    """A form's JSON text field (a textarea), read and checked as the API reads a body: an object when
    ``object_only``, else any JSON value; empty is ``empty_value``."""

    def __init__(self, *, object_only: bool = True, **kwargs: Any) -> None:
        self.object_only = object_only
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> Any:
        text = super().to_python(value)
        if not text or not text.strip():
            return self.empty_value
        try:
            data = _loads(text)
        except MalformedBodyError as exc:
            raise forms.ValidationError(f"This is {exc.message}.") from None
        except InvalidInputError as exc:
            raise forms.ValidationError(next(iter(exc.fields.values()), exc.message)) from None
        if self.object_only and not isinstance(data, dict):
            raise forms.ValidationError("Give a JSON object.")
        return data


def check_query(data: MultiValueDict[str, Any]) -> None:
    """Raise InvalidInputError naming the first query parameter whose name or value holds a NUL byte."""
    for key, values in data.lists():
        for value in [key, *values]:
            if isinstance(value, str) and "\x00" in value:
                raise InvalidInputError(f"{key} {_problem(value)}.", fields={key: f"This value {_problem(value)}."})


@functools.cache
def _query_names() -> dict[tuple[str, str], frozenset[str]]:
    """Return the query parameters of every API operation, by (method, path template), from the OpenAPI
    document (the endpoints' own declarations)."""
    from config.api import api

    names: dict[tuple[str, str], frozenset[str]] = {}
    for path, operations in api.get_openapi_schema()["paths"].items():
        for method, operation in operations.items():
            query = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
            names[method.upper(), path] = frozenset(query)
    return names


def check_query_names(data: MultiValueDict[str, Any], request: HttpRequest) -> None:
    """Raise InvalidInputError naming the query parameters the request's operation does not declare."""
    match = request.resolver_match
    if match is None:
        return
    template = "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", match.route)
    known = _query_names().get((request.method or "", template))
    if known is None:
        return
    unknown = sorted(set(data) - known)
    if unknown:
        expected = ", ".join(sorted(known)) or "none"
        raise InvalidInputError(
            f"Unknown query parameter: {', '.join(unknown)} (this endpoint takes {expected}).",
            fields=dict.fromkeys(unknown, "Unknown parameter."),
        )


class ApiParser(Parser):
    """ninja's parser with the input layer's checks (every endpoint's body and query go through it)."""

    def parse_body(self, request: HttpRequest) -> dict[str, Any]:
        return parse_json_body(request.body)

    def parse_querydict(
        self, data: MultiValueDict[str, Any], list_fields: list[str], request: HttpRequest
    ) -> dict[str, Any]:
        check_query(data)
        if data is request.GET:
            check_query_names(data, request)
        return super().parse_querydict(data, list_fields, request)

"""The root NinjaAPI at /api/v1, its authentication, and the one error format of the whole API.

Every error body is ``{"detail": <message>, "code": <machine code>}``; validation errors add
``"errors": [{"field": ..., "message": ..., "type": ...}]``.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.operation import Operation

from config.auth import BrowserSessionAuth, TokenAuth
from config.errors import ApplicationError, InvalidInputError
from config.input import ApiParser
from config.middleware import bearer_token
from config.openapi import refine
from config.throttle import token_failure

logger = logging.getLogger(__name__)


class PlatformAPI(NinjaAPI):
    """ninja's API with a document client generators accept (config/openapi.py)."""

    def get_openapi_operation_id(self, operation: Operation) -> str:
        return operation.view_func.__name__  # unique across the API (a test checks)

    def get_openapi_schema(self, *, path_prefix: str | None = None, path_params: dict[str, Any] | None = None) -> Any:
        return refine(super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params))


api = PlatformAPI(
    title="Agents Platform API",
    version="1",
    description=(
        "Everything the pages do. Authenticate with `Authorization: Bearer <token>` (create tokens under "
        "Settings → API tokens, or `manage.py issue_token`). A token acts for one user in one workspace. "
        'Errors are `{"detail": ..., "code": ...}`.'
    ),
    auth=[TokenAuth(), BrowserSessionAuth()],
    urls_namespace="api",
    parser=ApiParser(),
)


def _error(request: HttpRequest, status: int, detail: str, code: str, **extra: Any) -> HttpResponse:
    return api.create_response(request, {"detail": detail, "code": code, **extra}, status=status)


def _field_name(loc: list[Any] | tuple[Any, ...]) -> str:
    # ninja prefixes locations with the source ("body", "query", "path") and the parameter name.
    # pydantic adds union-member and validator names such as "literal['']" or "function-after[...]": drop them.
    parts = [str(p) for p in loc if not any(c in str(p) for c in "[](")]
    if parts and parts[0] in {"body", "query", "path", "header", "cookie", "form", "file"}:
        parts = parts[1:]
        if len(parts) > 1 and parts[0] in {"payload", "data", "filters"}:
            parts = parts[1:]
    return ".".join(parts) or "__all__"


@api.exception_handler(ValidationError)
def on_validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    for err in exc.errors:
        field = _field_name(err.get("loc", ()))
        if field not in seen:  # one message per field is what a form can show
            seen.add(field)
            errors.append({"field": field, "message": err.get("msg", "Invalid value."), "type": err.get("type")})
    fields = ", ".join(sorted({e["field"] for e in errors}))
    return _error(request, 422, f"Invalid input: {fields}.", "validation_error", errors=errors)


@api.exception_handler(InvalidInputError)
def on_invalid_input(request: HttpRequest, exc: InvalidInputError) -> HttpResponse:
    errors = [{"field": field, "message": message, "type": "invalid"} for field, message in exc.fields.items()]
    extra = {k: v for k, v in exc.extra.items() if k != "fields"}  # e.g. provider_test_failed's test_code
    return _error(request, 422, exc.message, exc.code, errors=errors, **extra)


@api.exception_handler(ApplicationError)
def on_application_error(request: HttpRequest, exc: ApplicationError) -> HttpResponse:
    extra = {k: v for k, v in exc.extra.items() if k != "fields"}
    response = _error(request, exc.status_code, exc.message, exc.code, **extra)
    for name, value in exc.headers.items():
        response[name] = value
    return response


@api.exception_handler(DjangoValidationError)
def on_django_validation_error(request: HttpRequest, exc: DjangoValidationError) -> HttpResponse:
    if hasattr(exc, "error_dict"):
        errors = [
            {"field": field, "message": " ".join(m for e in errs for m in e.messages), "type": "invalid"}
            for field, errs in exc.error_dict.items()
        ]
    else:
        errors = [{"field": "__all__", "message": " ".join(exc.messages), "type": "invalid"}]
    return _error(request, 422, "Invalid input.", "validation_error", errors=errors)


@api.exception_handler(AuthenticationError)
def on_authentication_error(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    if bearer_token(request.headers.get("Authorization", "")) is not None:  # a token was tried and failed
        wait = token_failure(request)
        if wait is not None:
            throttled = _error(
                request,
                429,
                f"Too many failed token checks from this address; try again in {wait} s.",
                "throttled",
            )
            throttled["Retry-After"] = str(wait)
            return throttled
    response = _error(
        request,
        401,
        "Authentication required: send a valid, unrevoked API token as 'Authorization: Bearer <token>'.",
        "not_authenticated",
    )
    response["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


@api.exception_handler(HttpError)
def on_http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    cause = exc.__cause__  # ninja wraps whatever the body parser raised (config/input.py)
    if isinstance(cause, InvalidInputError):
        return on_invalid_input(request, cause)
    if isinstance(cause, ApplicationError):
        return on_application_error(request, cause)
    codes = {
        400: "bad_request",
        403: "permission_denied",
        404: "not_found",
        405: "method_not_allowed",
        429: "throttled",
    }
    return _error(request, exc.status_code, str(exc), codes.get(exc.status_code, "error"))


@api.exception_handler(Http404)
def on_not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return _error(request, 404, "Not found.", "not_found")


@api.exception_handler(PermissionDenied)
def on_permission_denied(request: HttpRequest, exc: PermissionDenied) -> HttpResponse:
    return _error(request, 403, str(exc) or "You do not have permission to do this.", "permission_denied")


@api.exception_handler(RequestDataTooBig)
def on_request_too_big(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return _error(
        request, 413, f"The request body is larger than {limit} bytes (DATA_UPLOAD_MAX_MEMORY_SIZE).", "too_large"
    )


@api.exception_handler(MultiPartParserError)
def on_bad_multipart(request: HttpRequest, exc: MultiPartParserError) -> HttpResponse:
    return _error(request, 400, f"The multipart body could not be read: {exc}.", "bad_request")


@api.exception_handler(Exception)
def on_unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
    # Log the traceback for operators; tell the client nothing internal.
    logger.exception("Unhandled error in %s %s", request.method, request.path)
    return _error(request, 500, "Internal server error.", "server_error")


def _mount_routers() -> None:
    from accounts_app.api import credits_router, me_router, tokens_router, workspaces_router

    api.add_router("/me", me_router)
    api.add_router("/workspaces", workspaces_router)
    api.add_router("/tokens", tokens_router)
    api.add_router("/credits", credits_router)

    from providers_app.api import router as providers_router

    api.add_router("/providers", providers_router)

    from agents_app.api import router as agents_router
    from agents_app.api import runs_router

    api.add_router("/agents", agents_router)
    api.add_router("/runs", runs_router)

    from traces_app.api import agent_traces_router
    from traces_app.api import router as traces_router

    api.add_router("/agents", agent_traces_router)
    api.add_router("/traces", traces_router)

    from knowledge_app.api import files_router
    from knowledge_app.api import router as knowledge_router

    api.add_router("/vector-stores", knowledge_router)
    api.add_router("/files", files_router)

    from workflows_app.api import router as workflows_router
    from workflows_app.api import runs_router as workflow_runs_router

    api.add_router("/workflows", workflows_router)
    api.add_router("/workflow-runs", workflow_runs_router)


_mount_routers()

"""The one exception family every service raises, and that every interface translates.

The ninja API turns these into ``{"detail": ..., "code": ...}`` with the class's status; HTML views turn
them into form errors or messages; Celery tasks list them in ``throws=``.
"""

from __future__ import annotations


class ApplicationError(Exception):
    """A failure the caller can understand and act on. Never carries secrets."""

    status_code = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        extra: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.extra = extra or {}
        self.headers = headers or {}  # sent with the answer, e.g. Retry-After


class NotFoundError(ApplicationError):
    """The object does not exist or belongs to another workspace (the two look the same on purpose)."""

    status_code = 404
    code = "not_found"


class PermissionDeniedError(ApplicationError):
    """The actor can see the object but their role does not allow this action."""

    status_code = 403
    code = "permission_denied"


class ConflictError(ApplicationError):
    """The action clashes with the current state (a duplicate, or an object in the wrong state)."""

    status_code = 409
    code = "conflict"


class InvalidInputError(ApplicationError):
    """Input that passed schema validation but breaks a domain rule; ``fields`` maps field to message."""

    status_code = 422
    code = "validation_error"

    def __init__(self, message: str, *, fields: dict[str, str] | None = None) -> None:
        super().__init__(message, extra={"fields": fields or {}})
        self.fields = fields or {}


class RateLimitedError(ApplicationError):
    """Too much at once or too often: try again after ``Retry-After`` seconds."""

    status_code = 429
    code = "rate_limited"

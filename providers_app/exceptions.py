"""Errors of the providers app. Messages never hold a key, a header value or a URL with credentials."""

from __future__ import annotations

from config.errors import ApplicationError, InvalidInputError, NotFoundError

__all__ = [
    "InvalidInputError",
    "NotFoundError",
    "ProviderError",
    "ProviderKeyUnreadableError",
    "ProviderTestFailedError",
]


class ProviderError(ApplicationError):
    """Calling a provider failed; ``code`` says how (provider_auth_failed, provider_unreachable, ...)."""

    status_code = 502
    code = "provider_error"


class ProviderKeyUnreadableError(ApplicationError):
    """The stored key cannot be decrypted (SECRET_KEY or FIELD_ENCRYPTION_SALT changed)."""

    status_code = 409
    code = "provider_key_unreadable"


class ProviderTestFailedError(InvalidInputError):
    """A provider was not made the default because its connection test failed; ``test_code`` says how."""

    code = "provider_test_failed"

    def __init__(self, message: str, *, fields: dict[str, str], test_code: str) -> None:
        super().__init__(message, fields=fields)
        self.extra["test_code"] = test_code

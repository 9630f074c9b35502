"""Errors raised by the accounts, workspaces, tokens and credits services."""

from __future__ import annotations

from config.errors import ApplicationError, ConflictError, InvalidInputError, NotFoundError, PermissionDeniedError

__all__ = [
    "ApplicationError",
    "ConflictError",
    "InsufficientCreditsError",
    "InvalidInputError",
    "LastOwnerError",
    "NotFoundError",
    "PermissionDeniedError",
]


class InsufficientCreditsError(ApplicationError):
    """The workspace's balance cannot cover the reservation."""

    status_code = 402
    code = "insufficient_credits"


class LastOwnerError(ConflictError):
    """The change would leave a workspace without an owner."""

    code = "last_owner"

"""Errors of the workflows app."""

from __future__ import annotations

from config.errors import ApplicationError, ConflictError, InvalidInputError, NotFoundError, PermissionDeniedError

__all__ = ["ApplicationError", "ConflictError", "InvalidInputError", "NotFoundError", "PermissionDeniedError"]

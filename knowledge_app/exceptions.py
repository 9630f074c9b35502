"""Errors of the knowledge app."""

from __future__ import annotations

from config.errors import ApplicationError, ConflictError, InvalidInputError, NotFoundError

__all__ = ["ApplicationError", "ConflictError", "InvalidInputError", "NotFoundError"]

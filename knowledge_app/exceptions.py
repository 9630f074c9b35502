"""Errors of the knowledge app."""

from __future__ import annotations

from config.errors import ApplicationError, InvalidInputError, NotFoundError

__all__ = ["ApplicationError", "InvalidInputError", "NotFoundError"]

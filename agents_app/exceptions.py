"""Errors of the agents app."""

from __future__ import annotations

from config.errors import ApplicationError, ConflictError, InvalidInputError, NotFoundError

__all__ = ["ApplicationError", "ConflictError", "InvalidInputError", "NotFoundError", "RunFailedError"]


class RunFailedError(ApplicationError):
    """A run ended in error; ``code`` says why (provider_*, max_turns_exceeded, output_invalid, ...)."""

    status_code = 502
    code = "run_failed"

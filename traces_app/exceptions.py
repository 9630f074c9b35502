"""Errors of the traces app."""

from __future__ import annotations

from config.errors import NotFoundError

__all__ = ["NotFoundError"]

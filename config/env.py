"""Strict helpers that read settings from the environment.

Each helper raises ``ImproperlyConfigured`` naming the variable when a value is present but malformed,
so a typo in a deployment fails at start-up instead of silently falling back to a default.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_str(name: str, default: str = "") -> str:
    """Return the variable's value, or ``default`` when it is unset or empty."""
    value = os.environ.get(name, "")
    return value if value != "" else default


def env_bool(name: str, default: bool) -> bool:
    """Return a boolean; accepts 1/0, true/false, yes/no, on/off in any case."""
    raw = os.environ.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean; use true or false.")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return an integer within the optional bounds."""
    raw = os.environ.get(name, "").strip()
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer.") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} is below the minimum of {minimum}.")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name}={value} is above the maximum of {maximum}.")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    """Return a comma-separated list with blanks removed."""
    raw = os.environ.get(name, "")
    if raw.strip() == "":
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_int_tuple(name: str, default: tuple[int, ...], *, minimum: int | None = None) -> tuple[int, ...]:
    """Return comma-separated integers, as many as ``default`` has, each at least ``minimum``."""
    raw = os.environ.get(name, "").strip()
    if raw == "":
        return default
    parts = [part.strip() for part in raw.split(",")]
    try:
        values = tuple(int(part) for part in parts)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} must be {len(default)} comma-separated integers.") from None
    if len(values) != len(default):
        raise ImproperlyConfigured(f"{name}={raw!r} must be {len(default)} comma-separated integers.")
    if minimum is not None and min(values) < minimum:
        raise ImproperlyConfigured(f"{name}={raw!r}: each value must be at least {minimum}.")
    return values


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    """Return one of ``choices`` (case-insensitive)."""
    raw = os.environ.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw not in choices:
        raise ImproperlyConfigured(f"{name}={raw!r} must be one of: {', '.join(choices)}.")
    return raw


def env_secret(name: str, default: str = "") -> str:
    """Return a secret from ``NAME`` or from the file named by ``NAME_FILE`` (Docker and Kubernetes secrets).

    Setting both is an error, since it is ambiguous which one wins.
    """
    value = os.environ.get(name, "")
    file_name = os.environ.get(f"{name}_FILE", "")
    if value and file_name:
        raise ImproperlyConfigured(f"Set {name} or {name}_FILE, not both.")
    if file_name:
        path = Path(file_name)
        try:
            return path.read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={file_name!r} cannot be read: {exc.strerror}.") from None
    return value if value else default

"""Keeping secrets out of stored spans: the keys a run uses, and anything shaped like a well-known key.

A builder may paste a key into instructions, or a model may echo one into a tool's arguments. Before a span is
stored, every string in it is searched for the secrets of its run (its providers' keys and extra header
values, registered when the run starts) and for common key formats, and each is replaced by ``[redacted]``.
Long strings are cut, so that one huge payload cannot bloat the tables.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

REDACTED = "[redacted]"
MIN_SECRET_LENGTH = 8  # shorter values would redact ordinary words
MAX_TRACES = 10_000  # secrets of traces that never ended (a crashed run) are forgotten past this many

# Common key formats: OpenAI and compatible (sk-...), this platform's API tokens (ap_...), Hugging Face, AWS
# access key ids, Slack, GitHub and Google API keys.
KEY_PATTERN = re.compile(
    r"sk-[A-Za-z0-9_\-]{16,}|ap_[A-Za-z0-9_\-]{16,}|hf_[A-Za-z0-9]{20,}|AKIA[0-9A-Z]{16}"
    r"|xox[abprs]-[A-Za-z0-9\-]{10,}|gh[pousr]_[A-Za-z0-9]{20,}|AIza[0-9A-Za-z_\-]{35}"
)

_secrets: OrderedDict[str, tuple[str, ...]] = OrderedDict()
_lock = threading.Lock()


def remember(trace_id: str, secrets: Iterable[str | None]) -> None:
    """Register the secrets a trace's spans must never contain (until ``forget``)."""
    kept = tuple(sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True))
    if not kept:
        return
    with _lock:
        _secrets[trace_id] = kept
        while len(_secrets) > MAX_TRACES:
            _secrets.popitem(last=False)


def secrets_for(trace_id: str) -> tuple[str, ...]:
    with _lock:
        return _secrets.get(trace_id, ())


def forget(trace_id: str) -> None:
    with _lock:
        _secrets.pop(trace_id, None)


def redact_json(value: Any, secrets: tuple[str, ...] = (), *, max_chars: int = 0) -> str:
    """Return ``value`` as JSON text, redacted as ``redact`` does.

    The fast way for the trace writer: secrets and key formats are plain ASCII, so they appear verbatim in
    the JSON text and are replaced there in one pass; only a text long enough to hold a string over
    ``max_chars`` is walked value by value to cut it.
    """
    text = json.dumps(value, ensure_ascii=False, default=str)
    # Long texts may hold strings to cut, and NUL (escaped in JSON text; Postgres refuses it in jsonb)
    # must be removed from the strings themselves: both need the walk.
    if (max_chars and len(text) > max_chars) or "\\u0000" in text:
        return json.dumps(redact(value, secrets, max_chars=max_chars), ensure_ascii=False, default=str)
    for secret in secrets:
        escaped = json.dumps(secret, ensure_ascii=False)[1:-1]  # as the secret appears inside JSON text
        if escaped in text:
            text = text.replace(escaped, REDACTED)
    return KEY_PATTERN.sub(REDACTED, text)


def redact(value: Any, secrets: tuple[str, ...] = (), *, max_chars: int = 0) -> Any:
    """Return ``value`` (JSON-like) with every secret and key-shaped string replaced, strings cut to
    ``max_chars`` (0: no limit), and NUL characters removed (Postgres refuses them in JSON)."""
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        value = KEY_PATTERN.sub(REDACTED, value).replace("\x00", "")
        if max_chars and len(value) > max_chars:
            value = f"{value[:max_chars]}… [{len(value) - max_chars} more characters not kept]"
        return value
    if isinstance(value, dict):
        return {str(k): redact(v, secrets, max_chars=max_chars) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, secrets, max_chars=max_chars) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(str(value), secrets, max_chars=max_chars)

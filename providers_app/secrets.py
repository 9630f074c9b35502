"""Handling of provider secrets: masking for display, redaction from any text that leaves the process."""

from __future__ import annotations

import re
from collections.abc import Iterable

# Shapes of keys that upstream error messages sometimes echo back, partly masked or not.
_KEY_PATTERNS = re.compile(
    r"(sk-[A-Za-z0-9_\-*]{4,}|sk_[A-Za-z0-9_\-*]{4,}|hf_[A-Za-z0-9*]{4,}|AIza[0-9A-Za-z_\-*]{4,}|"
    r"ap_[a-z0-9]{8}_[A-Za-z0-9_\-]{8,}|Bearer\s+[A-Za-z0-9._\-*]{8,})"
)
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/@\s:]+(:[^/@\s]*)?@")


def mask_key(key: str | None) -> str:
    """Return ``sk-...abcd``: the key's prefix up to the first dash and its last four characters."""
    if not key:
        return ""
    key = key.strip()
    if len(key) <= 8:
        return "…" + key[-2:] if len(key) > 2 else "…"
    prefix = key.split("-", 1)[0] + "-" if "-" in key[:6] else key[:3]
    return f"{prefix}...{key[-4:]}"


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Return ``text`` with the given secrets, anything shaped like a key, and URL credentials removed."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    text = _KEY_PATTERNS.sub("[redacted]", text)
    return _URL_CREDENTIALS.sub(r"\1[redacted]@", text)

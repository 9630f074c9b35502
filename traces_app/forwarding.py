"""Optional forwarding of a workspace's traces to OpenAI's trace dashboard (the workspace asks for it).

The workspace names one of its OpenAI providers; the trace writer then posts that workspace's stored batches
(the same redacted payloads) to OpenAI's trace ingestion with that provider's key, in the format of the SDK's
own exporter. The address is the operator's setting ``OPENAI_TRACES_INGEST_URL`` (OpenAI's by default), never
a workspace's, so forwarding cannot be pointed at an internal host.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Sequence
from typing import Any

from django.conf import settings

from traces_app.models import TraceForwarding

REFRESH_SECONDS = 30.0


class ForwardingKeys:
    """Which workspaces forward, and with which key: read from the database at most every 30 seconds."""

    def __init__(self) -> None:
        self._keys: dict[int, str] = {}
        self._read_at = float("-inf")
        self._lock = threading.Lock()

    def refresh_soon(self) -> None:
        with self._lock:
            self._read_at = float("-inf")

    def key_for(self, workspace_id: int | None) -> str | None:
        """Return the OpenAI key to forward the workspace's traces with, or None. Call from the writer thread."""
        with self._lock:
            stale = time.monotonic() - self._read_at > REFRESH_SECONDS
        if stale:
            keys = {}
            for forwarding in TraceForwarding.objects.filter(provider__isnull=False).select_related("provider"):
                key = forwarding.provider.api_key if forwarding.provider else None
                if key:
                    keys[forwarding.workspace_id] = key
            with self._lock:
                self._keys, self._read_at = keys, time.monotonic()
        return self._keys.get(workspace_id or 0)


keys = ForwardingKeys()


def ingest_items(traces: Sequence[dict[str, Any]], spans: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    """Return OpenAI ingestion items (the SDK's export format) for trace infos and stored span rows."""
    items: list[dict[str, Any]] = [{"object": "trace", **trace} for trace in traces]
    for trace_id, span_id, parent_id, _kind, _name, started, ended, _ms, data, error, _in, _out in spans:
        items.append(
            {
                "object": "trace.span",
                "id": span_id,
                "trace_id": trace_id,
                "parent_id": parent_id or None,
                "started_at": started.isoformat() if started else None,
                "ended_at": ended.isoformat() if ended else None,
                "span_data": json.loads(data),
                "error": json.loads(error) if error else None,
            }
        )
    return items


def forward(api_key: str, items: list[dict[str, Any]], *, timeout: float = 5.0) -> None:
    """Post the items to OpenAI's trace ingestion; raises OSError when it refuses or cannot be reached."""
    request = urllib.request.Request(  # noqa: S310 (the operator's https URL, checked in settings)
        settings.OPENAI_TRACES_INGEST_URL,
        data=json.dumps({"data": items}).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json", "OpenAI-Beta": "traces=v1"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        response.read()

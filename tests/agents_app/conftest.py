from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx2
import pytest
from django.test import override_settings

from accounts_app.services import api_token_create
from agents_app.services import agent_create
from providers_app.services import provider_create


@pytest.fixture
def fake_provider(team, fake_openai):
    """A priced custom provider on the fake server, the team's default."""
    with override_settings(PROVIDER_EGRESS_ALLOWLIST=["127.0.0.1"]):
        provider = provider_create(
            actor=team,
            type="custom",
            name="Fake",
            api_key="sk-fake-0123456789",
            base_url=fake_openai.base_url,
            models=["fake-model"],
            config={"prices": {"fake-model": {"input": 1000, "output": 2000}}},
            is_default=True,
        )
        fake_openai.requests.clear()  # the connection test made it the default; tests count their own calls
        yield provider


@pytest.fixture
def helper(team, fake_provider):
    return agent_create(actor=team, name="Helper", instructions="You help.")


class Endpoint:
    """A local HTTP server standing in for a tool's endpoint; records what it receives."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.answers: dict[str, Any] = {}  # path -> the JSON it answers (else it echoes what it got)
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                endpoint.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                if self.path == "/redirect":
                    self.send_response(302)
                    self.send_header("Location", f"{endpoint.url}/secret")
                    self.end_headers()
                    return
                if self.path == "/fail":
                    self._send(500, b"upstream exploded", "text/plain")
                    return
                if self.path == "/big":
                    self._send(200, b"x" * 2_000_000, "text/plain")
                    return
                if self.path == "/slow":
                    time.sleep(3)
                if self.path in endpoint.answers:
                    self._send(200, json.dumps(endpoint.answers[self.path]).encode(), "application/json")
                    return
                self._send(200, json.dumps({"got": json.loads(body or b"{}")}).encode(), "application/json")

            def _send(self, status: int, body: bytes, kind: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint():
    server = Endpoint()
    yield server
    server.close()


@pytest.fixture
def api(asgi_server, team):
    token = api_token_create(actor=team, name="tools").raw

    def call(method: str, path: str, body: object = None) -> httpx2.Response:
        return httpx2.request(
            method,
            f"{asgi_server}/api/v1{path}",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )

    return call

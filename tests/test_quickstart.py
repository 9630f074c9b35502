"""The README's run command on a fresh directory and an empty environment: embedded Postgres, a worker,
the login page and an all-green /readyz."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_serve_on_embedded_defaults(tmp_path):
    port, model_port = free_port(), free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "SECRET_KEY"} and not k.startswith("PYTEST")
    }
    env["VAR_DIR"] = str(tmp_path / "var")
    env["LOCAL_MODEL_PORT"] = str(model_port)
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while "is running at" not in log.read_text():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        output = log.read_text()
        assert f"http://127.0.0.1:{port}/" in output
        login = re.search(r"Log in as: (\S+) / (\S+)", output)
        assert login is not None, output
        assert login.group(1) == "demo"
        assert f"Local model: smollm2 at http://127.0.0.1:{model_port}/v1" in output
        with urllib.request.urlopen(f"http://127.0.0.1:{model_port}/v1/models", timeout=10) as response:
            assert json.loads(response.read())["data"][0]["id"] == "smollm2"

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=10) as response:
            assert response.status == 200
            assert b"Log in" in response.read()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as response:
            body = json.loads(response.read())
        assert body["status"] == "ok", body
        assert all(check["ok"] for check in body["checks"].values())
        assert (tmp_path / "var" / "pgdata").is_dir()
        assert oct((tmp_path / "var" / "demo_password").stat().st_mode)[-3:] == "600"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 0, log.read_text()
    # The local model's server went with it.
    with pytest.raises(urllib.error.URLError, match="Connection refused"):
        urllib.request.urlopen(f"http://127.0.0.1:{model_port}/v1/models", timeout=2)
    # The embedded Postgres stops with the last process attached to it.
    deadline = time.monotonic() + 15
    while (tmp_path / "var" / "pgdata" / "postmaster.pid").exists():
        assert time.monotonic() < deadline, "the embedded Postgres was left running"
        time.sleep(0.2)

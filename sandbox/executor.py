"""Run a function of user code in a fresh bubblewrap sandbox and return its JSON result.

Every call gets a new process tree that sees only a read-only ``/usr``, an empty size-capped ``/tmp``, its own
``/proc`` and a minimal ``/dev``; no network (new network namespace, sockets refused by seccomp), no environment,
no capabilities, no nested user namespaces, and limits on CPU, memory, processes, file size, open files, wall
time and output. When the platform runs as root, each call also runs under its own host uid (a slot taken with a
file lock), so two calls at once share no process budget and cannot signal each other; bubblewrap is never run
as root (it would keep root's capabilities).

``run_code`` refuses to run anything until ``check()`` has shown, by running a probe in the sandbox, that the
isolation holds; ``check()`` says what is missing when it does not. Blocking: async callers use a thread.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import selectors
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from sandbox.seccomp import deny_filter

_RUNNER = (Path(__file__).with_name("runner.py")).read_text()
_MIB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """What one call may use. The wall time covers sleeping and waiting, which the CPU limit does not."""

    cpu_seconds: int = 5
    wall_seconds: float = 10.0
    memory_mb: int = 256
    processes: int = 16
    file_mb: int = 8
    scratch_mb: int = 16
    open_files: int = 64
    output_kb: int = 1024
    logs_kb: int = 64

    @classmethod
    def from_settings(cls) -> Limits:
        """Return the limits the operator configured (SANDBOX_CPU_SECONDS, _WALL_SECONDS, _MEMORY_MB)."""
        return cls(
            cpu_seconds=int(settings.SANDBOX_CPU_SECONDS),
            wall_seconds=float(settings.SANDBOX_WALL_SECONDS),
            memory_mb=int(settings.SANDBOX_MEMORY_MB),
        )


@dataclass
class Outcome:
    """A call's result: ``value`` when ``ok``, else ``error`` (a sentence for the model and the trace) and
    ``kind`` (exception, code, result, memory, cpu, timeout, output, busy, unavailable)."""

    ok: bool
    value: Any = None
    error: str = ""
    kind: str = ""
    logs: str = ""
    duration_ms: float = 0.0

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": self.ok, "duration_ms": round(self.duration_ms, 1)}
        if self.ok:
            body["value"] = self.value
        else:
            body |= {"error": self.error, "kind": self.kind}
        if self.logs:
            body["logs"] = self.logs
        return body


class SandboxUnavailableError(RuntimeError):
    """Code cannot be run here: the isolation is missing or failed its check (the message says what to do)."""


def _bwrap() -> str | None:
    return shutil.which("bwrap")


def _python() -> str:
    return str(settings.SANDBOX_PYTHON)


class _Slot:
    """A host uid of its own for one call, held with an exclusive lock on a file (across processes)."""

    def __init__(self, deadline: float) -> None:
        self.uid: int | None = None
        self._fd: int | None = None
        if os.geteuid() != 0:
            return  # not root: the call runs as this user, mapped to 65534 inside
        folder = Path(settings.SANDBOX_STATE_DIR)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        count, base = int(settings.SANDBOX_SLOTS), int(settings.SANDBOX_UID_BASE)
        while True:
            for slot in random.sample(range(count), count):
                fd = os.open(folder / f"slot-{slot}.lock", os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                self.uid, self._fd = base + slot, fd
                return
            if time.monotonic() > deadline:
                raise TimeoutError
            time.sleep(0.005)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the lock
            self._fd = None


def _command(bwrap: str, limits: Limits, seccomp_fd: int | None) -> list[str]:
    command = [
        bwrap,
        "--ro-bind", "/usr", "/usr",
        "--symlink", "usr/lib", "/lib",
        "--symlink", "usr/lib64", "/lib64",
        "--symlink", "usr/bin", "/bin",
        "--proc", "/proc",
        "--dev", "/dev",
        "--size", str(limits.scratch_mb * _MIB), "--tmpfs", "/tmp",
        "--unshare-all", "--unshare-user", "--disable-userns",
        "--uid", "65534", "--gid", "65534",
        "--hostname", "sandbox",
        "--die-with-parent", "--new-session",
        "--clearenv", "--setenv", "PATH", "/usr/bin", "--setenv", "HOME", "/tmp", "--setenv", "LANG", "C.UTF-8",
        "--chdir", "/tmp",
        "--cap-drop", "ALL",
        "--remount-ro", "/dev",
        "--remount-ro", "/",  # only /tmp stays writable
    ]  # fmt: skip
    if seccomp_fd is not None:
        command += ["--seccomp", str(seccomp_fd)]
    return [*command, "--", _python(), "-I", "-S", "-c", _RUNNER]


def _kill(process: subprocess.Popen[bytes]) -> None:
    """Stop a call: killing bwrap ends its child in the PID namespace (--die-with-parent), and with that child,
    as the namespace's init, every process the code started."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _sweep(uid: int | None) -> None:
    """Kill what is left of a finished call and wait until its uid runs nothing, so that the slot is given
    back empty. The kernel empties a PID namespace asynchronously: a daemon the code left may outlive bwrap
    by a few milliseconds."""
    if uid is None:
        return
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        alive = _processes_of(uid)
        if not alive:
            return
        for pid in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)


def _processes_of(uid: int) -> list[int]:
    """Return the pids of live (not zombie) processes owned by ``uid``."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid != uid:
                continue
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                state = stat.read().rsplit(b")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if state not in (b"Z", b"X"):
            found.append(int(entry.name))
    return found


def _exchange(
    process: subprocess.Popen[bytes], request: bytes, limits: Limits, deadline: float
) -> tuple[bytes, bytes, str]:
    """Feed the request, collect stdout and the tail of stderr; return them and why the call was stopped, if it
    was (``timeout`` or ``output``)."""
    assert process.stdin
    assert process.stdout
    assert process.stderr
    out, err, err_total = bytearray(), bytearray(), 0
    out_cap, err_cap = limits.output_kb * 1024, limits.logs_kb * 1024
    pending = memoryview(request)
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdin, selectors.EVENT_WRITE)
        selector.register(process.stdout, selectors.EVENT_READ)
        selector.register(process.stderr, selectors.EVENT_READ)
        open_streams = 3
        while open_streams:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return bytes(out), bytes(err), "timeout"
            for key, _ in selector.select(remaining):
                stream = key.fileobj
                if stream is process.stdin:
                    try:
                        written = os.write(process.stdin.fileno(), pending[:65536])
                    except BrokenPipeError:
                        written = len(pending)
                    pending = pending[written:]
                    if not pending:
                        selector.unregister(process.stdin)
                        process.stdin.close()
                        open_streams -= 1
                    continue
                chunk = os.read(stream.fileno(), 65536)  # type: ignore[union-attr]
                if not chunk:
                    selector.unregister(stream)
                    open_streams -= 1
                elif stream is process.stdout:
                    out += chunk
                    if len(out) > out_cap:
                        return bytes(out), bytes(err), "output"
                else:
                    err += chunk
                    err_total += len(chunk)
                    del err[: max(0, len(err) - err_cap)]  # keep the tail: the last lines tell most
                    if err_total > out_cap:
                        return bytes(out), bytes(err), "output"
    return bytes(out), bytes(err), ""


def _spawn(request: dict[str, Any], limits: Limits) -> Outcome:
    bwrap = _bwrap()
    if bwrap is None:
        raise SandboxUnavailableError(
            "Code execution is off: bubblewrap is not installed (Debian: apt-get install bubblewrap)."
        )
    started = time.monotonic()
    deadline = started + limits.wall_seconds
    try:
        slot = _Slot(deadline)
    except TimeoutError:
        return Outcome(ok=False, kind="busy", error="Too many code calls are running; try again shortly.")
    seccomp = deny_filter()
    seccomp_fd = None
    if seccomp is not None:
        seccomp_fd = os.memfd_create("sandbox-seccomp", 0)
        os.write(seccomp_fd, seccomp)
        os.lseek(seccomp_fd, 0, os.SEEK_SET)
    identity: dict[str, Any] = {}
    if slot.uid is not None:
        identity = {"user": slot.uid, "group": slot.uid, "extra_groups": []}
    payload = json.dumps({**request, "limits": {
        "memory_bytes": limits.memory_mb * _MIB,
        "processes": limits.processes,
        "file_bytes": limits.file_mb * _MIB,
        "open_files": limits.open_files,
        "cpu_seconds": limits.cpu_seconds,
    }}).encode()  # fmt: skip
    try:
        process = subprocess.Popen(
            _command(bwrap, limits, seccomp_fd),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={},
            cwd="/",
            close_fds=True,
            pass_fds=(seccomp_fd,) if seccomp_fd is not None else (),
            start_new_session=True,
            **identity,
        )
    except OSError as exc:
        slot.release()
        raise SandboxUnavailableError(f"The sandbox could not be started: {exc.strerror or exc}.") from None
    finally:
        if seccomp_fd is not None:
            os.close(seccomp_fd)
    try:
        out, err, stopped = _exchange(process, payload, limits, deadline)
        if stopped:
            _kill(process)
        try:
            returncode = process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _kill(process)
            returncode, stopped = process.wait(), stopped or "timeout"
    finally:
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream and not stream.closed:
                stream.close()
        _sweep(slot.uid)
        slot.release()
    duration = (time.monotonic() - started) * 1000
    logs = err.decode("utf-8", "replace")[-limits.logs_kb * 1024 :]
    outcome = _outcome(out, logs, returncode, stopped, limits)
    outcome.duration_ms = duration
    return outcome


def _outcome(out: bytes, logs: str, returncode: int, stopped: str, limits: Limits) -> Outcome:
    if stopped == "timeout":
        return Outcome(
            ok=False, kind="timeout", error=f"The code took longer than {limits.wall_seconds:g} s.", logs=logs
        )
    if stopped == "output":
        return Outcome(
            ok=False, kind="output", error=f"The code wrote more than {limits.output_kb} KB of output.", logs=logs
        )
    # bwrap exits with 128 + the signal that ended the code.
    if returncode in (-signal.SIGXCPU, 128 + signal.SIGXCPU, -signal.SIGKILL, 128 + signal.SIGKILL) and not out:
        return Outcome(ok=False, kind="cpu", error=f"The code used more than {limits.cpu_seconds} s of CPU.", logs=logs)
    try:
        answer = json.loads(out)
    except ValueError:
        return Outcome(
            ok=False,
            kind="exception",
            error=f"The code stopped without a result (exit status {returncode}).",
            logs=logs,
        )
    if not isinstance(answer, dict) or "ok" not in answer:
        return Outcome(ok=False, kind="result", error="The code wrote over its own result.", logs=logs)
    if answer["ok"]:
        return Outcome(ok=True, value=answer.get("value"), logs=logs)
    return Outcome(ok=False, kind=str(answer.get("kind", "exception")), error=str(answer.get("error", "")), logs=logs)


def _probe_code() -> str:
    return (
        "def main():\n"
        "    import os, socket\n"
        "    status = dict(line.split(':', 1) for line in open('/proc/self/status') if ':' in line)\n"
        "    try:\n"
        "        socket.socket(); net = 'open'\n"
        "    except OSError:\n"
        "        net = 'refused'\n"
        "    return {'uid': os.getuid(), 'seccomp': status['Seccomp'].strip(),\n"
        "            'caps': status['CapEff'].strip(), 'no_new_privs': status['NoNewPrivs'].strip(),\n"
        "            'net': net, 'env': sorted(os.environ), 'root': sorted(os.listdir('/'))}\n"
    )


@dataclass
class Status:
    """Whether code can run here, and the detail an operator reads on /readyz."""

    ok: bool
    detail: str
    checked_at: float


_status: Status | None = None
_status_lock = threading.Lock()
_RECHECK_FAILED_AFTER = 30.0


def check(*, force: bool = False) -> Status:
    """Return whether the sandbox works, running a probe in it once per process (a failure is re-checked after
    30 s). The probe must see no network, no capabilities, the seccomp filter, no host files and a clean
    environment; anything else fails the check with what is wrong."""
    global _status
    with _status_lock:
        now = time.monotonic()
        if _status is not None and not force and (_status.ok or now - _status.checked_at < _RECHECK_FAILED_AFTER):
            return _status
        _status = Status(*_probe(), checked_at=now)
        return _status


def _probe() -> tuple[bool, str]:
    if not Path(_python()).is_file():
        return False, f"the sandbox interpreter {_python()} is missing (SANDBOX_PYTHON; install python3 under /usr)"
    try:
        outcome = _spawn({"code": _probe_code(), "function": "main", "args": {}}, Limits(wall_seconds=10))
    except SandboxUnavailableError as exc:
        return False, str(exc)
    if not outcome.ok:
        hint = ""
        if "setting up uid map" in outcome.logs or "Operation not permitted" in outcome.logs:
            hint = (
                " Unprivileged user namespaces must be allowed"
                " (in containers: a seccomp/AppArmor profile that permits them)."
            )
        tail = outcome.logs.strip().splitlines()[-1:] or [outcome.error]
        return False, f"the sandbox does not start: {tail[0][:200]}.{hint}"
    seen = outcome.value
    problems = []
    if seen["caps"].strip("0"):
        problems.append("capabilities are kept")
    if deny_filter() is not None and seen["seccomp"] != "2":
        problems.append("the seccomp filter is not applied")
    if seen["no_new_privs"] != "1":
        problems.append("no_new_privs is not set")
    if seen["net"] != "refused":
        problems.append("sockets can be opened")
    if set(seen["env"]) - {"PATH", "HOME", "LANG", "PWD"}:
        problems.append("the environment leaks in")
    if set(seen["root"]) - {"usr", "lib", "lib64", "bin", "proc", "dev", "tmp"}:
        problems.append("host folders are visible")
    if problems:
        return False, "the sandbox does not isolate: " + ", ".join(problems)
    per_call = "a uid per call" if os.geteuid() == 0 else "one uid shared by calls (run as root for a uid per call)"
    seccomp = "seccomp" if deny_filter() is not None else "no seccomp filter for this architecture"
    return True, f"bubblewrap, {seccomp}, {per_call}, {outcome.duration_ms:.0f} ms per call"


def run_code(code: str, *, args: dict[str, Any], function: str = "main", limits: Limits | None = None) -> Outcome:
    """Run ``function(**args)`` of ``code`` in a new sandbox and return its outcome (never raises for the
    code's own failures: those are in the outcome).

    Raises SandboxUnavailableError when the sandbox is missing or failed its check: nothing runs then.
    """
    status = check()
    if not status.ok:
        raise SandboxUnavailableError(f"Code execution is off: {status.detail}")
    return _spawn({"code": code, "function": function, "args": args}, limits or Limits.from_settings())

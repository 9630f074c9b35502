"""The sandbox escape suite: each attempt a hostile tool could make, run for real in the sandbox, is contained
with a clear error, and the host is unchanged afterwards (no process left, no file written)."""

from __future__ import annotations

import os
import textwrap
import threading
from pathlib import Path

import pytest
from django.conf import settings
from django.test import override_settings

from sandbox import executor
from sandbox.executor import Limits, SandboxUnavailableError, run_code

CANARY = "canary-secret-8d1f"


def run(code: str, limits: Limits | None = None, **args):
    return run_code(textwrap.dedent(code), args=args, limits=limits or Limits(wall_seconds=15))


def _is_zombie(entry: Path) -> bool:
    # An exited bwrap waits for the host's init to reap it (about a second on this machine's init); it runs
    # nothing and holds nothing.
    try:
        return "\nState:\tZ" in (entry / "status").read_text()
    except FileNotFoundError:
        return True


def sandbox_processes() -> list[int]:
    """Return host pids running under a sandbox uid (none may outlive a call)."""
    base, count = settings.SANDBOX_UID_BASE, settings.SANDBOX_SLOTS
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                uid = entry.stat().st_uid
            except FileNotFoundError:
                continue
            if base <= uid < base + count and not _is_zombie(entry):
                found.append(int(entry.name))
    return found


@pytest.fixture(autouse=True)
def _host_is_left_clean(monkeypatch):
    monkeypatch.setenv("CANARY_SECRET", CANARY)
    yield
    assert sandbox_processes() == []


def test_the_check_passes_and_names_what_isolates():
    status = executor.check(force=True)
    assert status.ok, status.detail
    assert "bubblewrap" in status.detail
    assert "seccomp" in status.detail


def test_identity_is_nobody_without_capabilities_and_with_seccomp():
    outcome = run("""
        import ctypes, os
        def main():
            status = dict(line.split(':', 1) for line in open('/proc/self/status'))
            libc = ctypes.CDLL(None, use_errno=True)
            nested_userns = libc.unshare(0x10000000)  # CLONE_NEWUSER
            return {'uid': os.getuid(), 'caps': status['CapEff'].strip(), 'bounding': status['CapBnd'].strip(),
                    'nnp': status['NoNewPrivs'].strip(), 'seccomp': status['Seccomp'].strip(),
                    'unshare': nested_userns, 'pids': sorted(int(p) for p in os.listdir('/proc') if p.isdigit())}
    """)
    assert outcome.ok, outcome.error
    seen = outcome.value
    assert seen["uid"] == 65534
    assert int(seen["caps"], 16) == 0
    assert int(seen["bounding"], 16) == 0
    assert seen["nnp"] == "1"
    assert seen["seccomp"] == "2"
    assert seen["unshare"] == -1
    assert len(seen["pids"]) <= 3  # its own PID namespace: no host process is visible


def test_environment_and_other_processes_environments_hold_no_secrets():
    outcome = run("""
        import os
        def main():
            found = {k: v for k, v in os.environ.items()}
            leaked = []
            for pid in os.listdir('/proc'):
                if pid.isdigit():
                    try:
                        leaked.append(open(f'/proc/{pid}/environ', 'rb').read().decode(errors='replace'))
                    except OSError:
                        pass
            return {'env': found, 'environs': leaked}
    """)
    assert outcome.ok, outcome.error
    text = repr(outcome.value)
    for secret in (CANARY, settings.SECRET_KEY, "DATABASE_URL", "postgresql://", "REDIS_URL", "DJANGO"):
        assert secret not in text
    assert set(outcome.value["env"]) <= {"PATH", "HOME", "LANG", "PWD"}


def test_app_files_database_and_media_are_not_there(tmp_path):
    (tmp_path / ".env").write_text(f"SECRET={CANARY}")
    targets = [
        str(Path(settings.BASE_DIR) / "config" / "settings.py"),
        str(Path(settings.BASE_DIR) / ".env"),
        str(tmp_path / ".env"),
        str(settings.VAR_DIR),
        str(settings.MEDIA_ROOT),
        "/var/lib/postgresql",
        "/etc/postgresql",
        "/etc/shadow",
        "/root/.ssh",
        "/proc/1/root/etc/shadow",
        str(Path(settings.BASE_DIR) / ".venv"),
    ]
    outcome = run(
        """
        import os
        def main(paths):
            seen = {}
            for path in paths:
                try:
                    seen[path] = os.listdir(path) if os.path.isdir(path) else open(path).read()[:50]
                except OSError as exc:
                    seen[path] = type(exc).__name__
            return seen
        """,
        paths=targets,
    )
    assert outcome.ok, outcome.error
    for path, seen in outcome.value.items():
        assert seen in ("FileNotFoundError", "PermissionError"), (path, seen)


def test_no_socket_of_any_kind_and_no_name_resolution():
    outcome = run("""
        import ctypes, socket
        def attempt(fn):
            try:
                fn()
                return 'open'
            except OSError as exc:
                return type(exc).__name__
        def tcp(host, port):
            with socket.create_connection((host, port), timeout=1):
                pass
        def unix(path):
            s = socket.socket(socket.AF_UNIX)
            s.connect(path)
        def main():
            libc = ctypes.CDLL(None, use_errno=True)
            return {
                'inet': attempt(lambda: socket.socket(socket.AF_INET)),
                'inet6': attempt(lambda: socket.socket(socket.AF_INET6)),
                'unix': attempt(lambda: socket.socket(socket.AF_UNIX)),
                'postgres_tcp': attempt(lambda: tcp('127.0.0.1', 5432)),
                'redis_tcp': attempt(lambda: tcp('127.0.0.1', 6379)),
                'postgres_unix': attempt(lambda: unix('/run/postgresql/.s.PGSQL.5432')),
                'redis_unix': attempt(lambda: unix('/run/redis/redis-server.sock')),
                'dns': attempt(lambda: socket.getaddrinfo('pypi.org', 443)),
                'raw_socket_syscall': (libc.syscall(41, 2, 1, 0), ctypes.get_errno()),
                'io_uring_setup': (libc.syscall(425, 1, 0), ctypes.get_errno()),
                'ptrace': (libc.syscall(101, 16, 1, 0, 0), ctypes.get_errno()),
            }
    """)
    assert outcome.ok, outcome.error
    seen = outcome.value
    for name in ("inet", "inet6", "unix", "postgres_tcp", "redis_tcp", "postgres_unix", "redis_unix", "dns"):
        assert seen[name] != "open", name
    assert seen["raw_socket_syscall"] == [-1, 1]  # EPERM from the seccomp filter
    assert seen["io_uring_setup"] == [-1, 1]
    assert seen["ptrace"] == [-1, 1]


def test_writes_stay_in_the_scratch_folder_which_is_bounded_and_fresh_each_call():
    outcome = run("""
        import os
        def main():
            outside = {}
            for path in ('/usr/evil', '/evil', '/proc/evil', '/dev/evil'):
                try:
                    open(path, 'w').write('x')
                    outside[path] = 'written'
                except OSError as exc:
                    outside[path] = type(exc).__name__
            written, error = 0, None
            try:
                for i in range(1000):
                    with open(f'/tmp/fill-{i}', 'wb') as f:
                        for _ in range(4):
                            f.write(b'x' * (1024 * 1024))
                            f.flush()
                            written += 1024 * 1024
            except OSError as exc:
                error = type(exc).__name__ + ' ' + str(exc.errno)
            big = None
            try:
                with open('/tmp/big', 'wb') as f:
                    f.write(b'x' * (9 * 1024 * 1024))
            except OSError as exc:
                big = exc.errno
            return {'outside': outside, 'written': written, 'error': error, 'big': big}
    """)
    assert outcome.ok, outcome.error
    seen = outcome.value
    assert set(seen["outside"].values()) <= {"OSError", "PermissionError", "FileNotFoundError"}, seen["outside"]
    assert seen["written"] <= 16 * 1024 * 1024  # the scratch folder's size
    assert seen["error"] is not None
    assert not Path("/usr/evil").exists()
    assert not Path("/evil").exists()
    fresh = run("""
        import os
        def main():
            return os.listdir('/tmp')
    """)
    assert fresh.value == []  # nothing persists to the next call


def test_a_file_past_the_size_limit_fails_inside():
    outcome = run("""
        def main():
            with open('/tmp/big', 'wb') as f:
                f.write(b'x' * (9 * 1024 * 1024))
    """)
    assert not outcome.ok
    assert "File too large" in outcome.error or "No space" in outcome.error


def test_fork_bomb_is_capped_and_leaves_nothing():
    outcome = run(
        """
        import os, time
        def main():
            children = 0
            try:
                while True:
                    pid = os.fork()
                    if pid == 0:
                        time.sleep(30)
                        os._exit(0)
                    children += 1
            except OSError as exc:
                return {'children': children, 'error': exc.errno}
        """,
        limits=Limits(wall_seconds=15, processes=16),
    )
    assert outcome.ok, outcome.error
    assert outcome.value["children"] < 16
    assert outcome.value["error"] == 11  # EAGAIN


def test_a_double_forked_daemon_does_not_outlive_the_call():
    outcome = run("""
        import os, time
        def main():
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    time.sleep(60)
                os._exit(0)
            time.sleep(0.2)
            return 'left a daemon behind'
    """)
    assert outcome.ok, outcome.error
    assert sandbox_processes() == []  # the daemon died with the call's PID namespace


@pytest.mark.parametrize(
    ("code", "kind", "message"),
    [
        ("def main():\n    x = b'x' * (4 * 1024 ** 3)\n", "memory", "ran out of memory"),
        (
            "def main():\n    blocks = []\n    while True:\n        blocks.append(bytearray(10 ** 7))\n",
            "memory",
            "ran out of memory",
        ),
        ("def main():\n    while True:\n        pass\n", "cpu", "more than 1 s of CPU"),
        ("import time\ndef main():\n    time.sleep(10 ** 6)\n", "timeout", "longer than 2 s"),
        ("import os\ndef main():\n    while True:\n        os.write(1, b'x' * 65536)\n", "output", "more than 1024 KB"),
        ("def main():\n    while True:\n        print('x' * 65536)\n", "output", "more than 1024 KB"),
        ("def main():\n    return {1, 2}\n", "result", "not JSON"),
        ("def main():\n    raise KeyError('city')\n", "exception", "KeyError (line 2): 'city'"),
        ("def helper():\n    pass\n", "code", "no function main"),
    ],
)
def test_limits_end_the_call_with_a_clear_error(code, kind, message):
    outcome = run_code(code, args={}, limits=Limits(cpu_seconds=1, wall_seconds=2))
    assert not outcome.ok
    assert outcome.kind == kind
    assert message in outcome.error
    assert "/work" not in outcome.error  # no server path


def test_signals_reach_no_host_process():
    outcome = run(
        """
        import os, signal
        def main(host_pid):
            results = {}
            for pid in (host_pid, 1):
                try:
                    os.kill(pid, 0)
                    results[pid] = 'reachable'
                except OSError as exc:
                    results[pid] = type(exc).__name__
            return results
        """,
        host_pid=os.getpid(),
    )
    assert outcome.ok, outcome.error
    assert outcome.value[str(os.getpid())] == "ProcessLookupError"


def test_two_calls_at_once_share_no_limits_and_no_files():
    code = """
        import os, time
        def main(name):
            open(f'/tmp/{name}', 'w').write(name)
            time.sleep(0.3)
            children = []
            try:
                for _ in range(12):
                    pid = os.fork()
                    if pid == 0:
                        time.sleep(2)
                        os._exit(0)
                    children.append(pid)
            except OSError:
                pass
            return {'files': sorted(os.listdir('/tmp')), 'children': len(children)}
    """
    results: dict[str, object] = {}

    def call(name: str) -> None:
        results[name] = run(code, limits=Limits(wall_seconds=15, processes=16), name=name)

    threads = [threading.Thread(target=call, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name in ("a", "b"):
        outcome = results[name]
        assert outcome.ok, outcome.error
        assert outcome.value["files"] == [name]
        assert outcome.value["children"] == 12  # a process budget each, not one shared by both


def test_it_refuses_to_run_code_when_the_check_fails():
    try:
        with override_settings(SANDBOX_PYTHON="/usr/bin/no-such-python"):
            status = executor.check(force=True)
            assert not status.ok
            assert "no-such-python is missing" in status.detail
            with pytest.raises(SandboxUnavailableError, match="Code execution is off"):
                run_code("def main():\n    return 1\n", args={})
    finally:
        assert executor.check(force=True).ok

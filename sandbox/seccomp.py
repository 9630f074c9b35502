"""A seccomp filter for sandboxed code, assembled as classic BPF (what ``bwrap --seccomp FD`` loads).

A deny list on top of the namespaces: sockets of any family, tracing and reading other processes' memory, new
namespaces and mounts, kernel keyrings, BPF, io_uring (which can open sockets on newer kernels), userfaultfd and
perf events fail with EPERM. Anything not built for the machine's architecture is killed, so a 32-bit or x32
syscall cannot slip past the table. Written out here rather than through libseccomp: about forty numbers per
architecture, and nothing to install.
"""

from __future__ import annotations

import platform
import struct

# linux/audit.h
_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
_X32_SYSCALL_BIT = 0x40000000

# Syscall numbers per architecture (x86_64: arch/x86/entry/syscalls/syscall_64.tbl; aarch64: the generic table).
_DENIED = {
    "x86_64": {
        "socket": 41, "socketpair": 53, "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311,
        "keyctl": 250, "add_key": 248, "request_key": 249, "bpf": 321, "userfaultfd": 323,
        "perf_event_open": 298, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
        "unshare": 272, "setns": 308, "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161,
        "kexec_load": 246, "kexec_file_load": 320, "init_module": 175, "finit_module": 313, "delete_module": 176,
        "reboot": 169, "swapon": 167, "swapoff": 168, "acct": 163, "name_to_handle_at": 303,
        "open_by_handle_at": 304, "fsopen": 430, "fsmount": 432, "move_mount": 429, "open_tree": 428,
        "mount_setattr": 442, "quotactl": 179, "lookup_dcookie": 212, "iopl": 172, "ioperm": 173,
    },
    "aarch64": {
        "socket": 198, "socketpair": 199, "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271,
        "keyctl": 219, "add_key": 217, "request_key": 218, "bpf": 280, "userfaultfd": 282,
        "perf_event_open": 241, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
        "unshare": 97, "setns": 268, "mount": 40, "umount2": 39, "pivot_root": 41, "chroot": 51,
        "kexec_load": 104, "kexec_file_load": 294, "init_module": 105, "finit_module": 273, "delete_module": 106,
        "reboot": 142, "swapon": 224, "swapoff": 225, "acct": 89, "name_to_handle_at": 264,
        "open_by_handle_at": 265, "fsopen": 430, "fsmount": 432, "move_mount": 429, "open_tree": 428,
        "mount_setattr": 442, "quotactl": 60, "lookup_dcookie": 18,
    },
}  # fmt: skip

_LD_W_ABS, _JEQ_K, _JGE_K, _RET_K = 0x20, 0x15, 0x35, 0x06
_RET_ALLOW, _RET_KILL_PROCESS, _RET_ERRNO_EPERM = 0x7FFF0000, 0x80000000, 0x00050000 | 1
_OFFSET_NR, _OFFSET_ARCH = 0, 4  # struct seccomp_data


def denied_syscalls(machine: str | None = None) -> dict[str, int]:
    """Return the syscalls the filter refuses on ``machine`` (default: this one), by name; empty when unknown."""
    return dict(_DENIED.get(machine or platform.machine(), {}))


def deny_filter(machine: str | None = None) -> bytes | None:
    """Return the filter as ``struct sock_filter`` records, or None when the architecture is not known here.

    Layout: load arch, kill on a foreign one; load the number, EPERM for x32 numbers and each denied one; else allow.
    """
    machine = machine or platform.machine()
    if machine not in _DENIED:
        return None
    numbers = sorted(set(_DENIED[machine].values()))
    body: list[tuple[int, int, int, int]] = []
    # Jump offsets count the instructions skipped; the tail is [allow, errno, kill].
    denied_count = len(numbers) + (1 if machine == "x86_64" else 0)
    body.append((_LD_W_ABS, 0, 0, _OFFSET_ARCH))
    body.append((_JEQ_K, 0, denied_count + 3, _ARCH[machine]))  # foreign: jump to kill
    body.append((_LD_W_ABS, 0, 0, _OFFSET_NR))
    remaining = denied_count
    if machine == "x86_64":
        remaining -= 1
        body.append((_JGE_K, remaining + 1, 0, _X32_SYSCALL_BIT))
    for number in numbers:
        remaining -= 1
        body.append((_JEQ_K, remaining + 1, 0, number))  # match: skip the rest and the allow, land on errno
    body += [(_RET_K, 0, 0, _RET_ALLOW), (_RET_K, 0, 0, _RET_ERRNO_EPERM), (_RET_K, 0, 0, _RET_KILL_PROCESS)]
    return b"".join(struct.pack("<HBBI", *instruction) for instruction in body)

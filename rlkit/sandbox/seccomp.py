"""A seccomp-BPF filter for sandboxed programs, built without libseccomp.

The program already runs as an unprivileged uid with no capabilities; the
filter removes kernel interfaces it has no use for and that widen the attack
surface: new namespaces (``unshare``, ``setns``, namespace flags to ``clone``),
mounts, ``ptrace`` and cross-process memory access, keyrings, BPF,
``perf_event_open``, ``userfaultfd``, io_uring, module/kexec loading and POSIX
message queues (which outlive a program and cannot be listed; a fork
server's runs share an IPC namespace one after another). They
fail with EPERM. ``clone3`` fails with ENOSYS (its flags live in memory a BPF
filter cannot read) so libc falls back to ``clone``, whose flags are checked.
System calls of a foreign ABI (i386 or x32 on x86-64) fail with ENOSYS.
"""

from __future__ import annotations

import errno
import platform
import struct

# struct sock_filter opcodes (linux/filter.h, linux/seccomp.h)
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000

_X32_BIT = 0x40000000
# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
_CLONE_NS_FLAGS = 0x7E020000

_BLOCKED = (
    "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd",
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns",
    "fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr",
    "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
    "io_uring_setup", "io_uring_enter", "io_uring_register", "open_by_handle_at",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "reboot", "swapon", "swapoff", "syslog", "acct", "quotactl", "mq_open",
)  # fmt: skip

_NAMES = _BLOCKED + ("clone", "clone3")
# System call numbers from asm/unistd_64.h (x86-64) and asm-generic/unistd.h (aarch64), in _NAMES order.
_X86_64 = dict(zip(_NAMES, (
    101, 310, 311, 438, 165, 166, 155, 161, 272, 308, 430, 431, 432, 433, 429, 428, 442,
    250, 248, 249, 321, 298, 323, 425, 426, 427, 304, 246, 320, 175, 313, 176,
    169, 167, 168, 103, 163, 179, 240, 56, 435,
), strict=True))  # fmt: skip
_AARCH64 = dict(zip(_NAMES, (
    117, 270, 271, 438, 40, 39, 41, 51, 97, 268, 430, 431, 432, 433, 429, 428, 442,
    219, 217, 218, 280, 241, 282, 425, 426, 427, 265, 104, 294, 105, 273, 106,
    142, 224, 225, 116, 89, 60, 180, 220, 435,
), strict=True))  # fmt: skip

# AUDIT_ARCH_* (linux/audit.h): EM_* | 64BIT | LE
_ARCHES = {"x86_64": (0xC000003E, _X86_64), "aarch64": (0xC00000B7, _AARCH64)}


def supported() -> bool:
    """Whether this machine's architecture has a filter."""
    return platform.machine() in _ARCHES


def build_filter(machine: str | None = None) -> bytes:
    """The filter as raw ``struct sock_filter`` bytes, as ``bwrap --seccomp`` reads them."""
    machine = machine or platform.machine()
    if machine not in _ARCHES:
        raise ValueError(f"no seccomp filter for architecture {machine!r}; known: {sorted(_ARCHES)}")
    audit_arch, numbers = _ARCHES[machine]
    eperm = _RET_ERRNO | errno.EPERM
    enosys = _RET_ERRNO | errno.ENOSYS
    prog: list[tuple[int, int, int, int]] = [
        (_LD_W_ABS, 0, 0, 4),  # seccomp_data.arch
        (_JEQ_K, 1, 0, audit_arch),
        (_RET_K, 0, 0, enosys),
        (_LD_W_ABS, 0, 0, 0),  # seccomp_data.nr
    ]
    if machine == "x86_64":
        prog += [(_JGE_K, 0, 1, _X32_BIT), (_RET_K, 0, 0, enosys)]
    for name in _BLOCKED:
        prog += [(_JEQ_K, 0, 1, numbers[name]), (_RET_K, 0, 0, eperm)]
    prog += [(_JEQ_K, 0, 1, numbers["clone3"]), (_RET_K, 0, 0, enosys)]
    prog += [
        (_JEQ_K, 0, 3, numbers["clone"]),
        (_LD_W_ABS, 0, 0, 16),  # low 32 bits of args[0] (the flags) on little-endian
        (_JSET_K, 0, 1, _CLONE_NS_FLAGS),
        (_RET_K, 0, 0, eperm),
        (_RET_K, 0, 0, _RET_ALLOW),
    ]
    return b"".join(struct.pack("<HBBI", code, jt, jf, k) for code, jt, jf, k in prog)

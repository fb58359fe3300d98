"""The seccomp filter every sandbox process runs under, compiled once per gateway process.

bubblewrap loads it (`--seccomp FD`) as the last step before it executes the sandbox's command, so
the privilege drop (`setpriv`: setresuid, setgroups, capset, prctl) and everything after it run
filtered. Everything is allowed except the kernel surface a sandbox never needs and that has a
history of local privilege escalations: keyrings (shared between sandboxes of one uid), new
namespaces (a user namespace hands out capabilities over a fresh mount/net/pid tree), mounts,
tracing other processes, eBPF, perf, io_uring, kexec, modules, userfaultfd, file handles, swap,
reboot, accounting and quotas. A refused call fails with EPERM, as it would for an unprivileged
user, so well-behaved programs report an error instead of dying.

Only the native architecture is allowed: a call through another ABI (32-bit `int 0x80`, x32)
kills the process, so the filter cannot be sidestepped by changing syscall tables.
"""

import errno
import functools
import os

from corral.sessions.backends.base import SandboxUnavailableError

REFUSED = (
    "keyctl",
    "add_key",
    "request_key",
    "unshare",
    "setns",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "bpf",
    "perf_event_open",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "userfaultfd",
    "open_by_handle_at",
    "name_to_handle_at",
    "swapon",
    "swapoff",
    "reboot",
    "acct",
    "quotactl",
    "quotactl_fd",
    "lookup_dcookie",
    "syslog",
)
"""Syscalls that fail with EPERM inside a sandbox."""

NAMESPACE_FLAGS = {
    "CLONE_NEWNS": 0x00020000,
    "CLONE_NEWCGROUP": 0x02000000,
    "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000,
    "CLONE_NEWUSER": 0x10000000,
    "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
}
"""clone(2) flags that create a namespace: clone is allowed only without any of them."""


@functools.cache
def seccomp_program() -> bytes:
    """The compiled BPF program (`struct sock_filter` array) for `bwrap --seccomp`.

    clone3 answers ENOSYS rather than EPERM: its flags live in memory, out of a filter's reach, and
    ENOSYS makes glibc fall back to clone, whose flags the filter can check.
    """
    try:
        import pyseccomp
    except (ImportError, OSError) as exc:
        raise SandboxUnavailableError(f"libseccomp is needed for the sandbox's syscall filter: {exc}") from exc
    refuse = pyseccomp.ERRNO(errno.EPERM)
    syscall_filter = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
    for name in REFUSED:
        syscall_filter.add_rule(refuse, name)
    for flag in NAMESPACE_FLAGS.values():
        syscall_filter.add_rule(refuse, "clone", pyseccomp.Arg(0, pyseccomp.MASKED_EQ, flag, flag))
    syscall_filter.add_rule(pyseccomp.ERRNO(errno.ENOSYS), "clone3")
    descriptor = os.memfd_create("corral-seccomp", os.MFD_CLOEXEC)
    try:
        syscall_filter.export_bpf(_Descriptor(descriptor))
        size = os.lseek(descriptor, 0, os.SEEK_END)
        return os.pread(descriptor, size, 0)
    finally:
        os.close(descriptor)


class _Descriptor:
    """What `export_bpf` wants: something with a `fileno()`."""

    def __init__(self, descriptor: int) -> None:
        self.descriptor = descriptor

    def fileno(self) -> int:
        return self.descriptor

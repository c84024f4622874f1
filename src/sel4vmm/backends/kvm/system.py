"""The ``/dev/kvm`` handle: API version check, capabilities and the supported CPUID.

Opening ``/dev/kvm`` is where "this machine cannot run KVM guests" is decided, so this is
the module that turns a missing device, a permission problem or an old API into one
:class:`~sel4vmm.errors.Sel4VmmError` with a fix, and :func:`kvm_unavailable_reason` gives
tests and the command line the same sentence without raising.
"""

from __future__ import annotations

import os
from typing import Final

from sel4vmm.backends.kvm import ioctls
from sel4vmm.closing import Closing
from sel4vmm.errors import Sel4VmmError

KVM_DEVICE: Final = "/dev/kvm"


class KvmSystem(Closing):
    """An open ``/dev/kvm``: the factory of VMs and the source of system-wide facts."""

    def __init__(self, device: str = KVM_DEVICE) -> None:
        try:
            self.fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            raise Sel4VmmError(
                f"{device} does not exist: this machine has no KVM",
                fix="load kvm_intel or kvm_amd, or run x86_64 guests with the QEMU backend",
            ) from None
        except PermissionError:
            raise Sel4VmmError(
                f"no permission to open {device}",
                fix="add your user to the 'kvm' group or run as root",
            ) from None
        try:
            version = ioctls.kvm_ioctl(self.fd, ioctls.KVM_GET_API_VERSION, None, "GET_API_VERSION")
            if version != ioctls.KVM_API_VERSION:
                raise Sel4VmmError(
                    f"{device} speaks KVM API {version}, sel4vmm needs {ioctls.KVM_API_VERSION}",
                    fix="use a Linux kernel from 2.6.22 or later",
                )
            self.vcpu_mmap_size = ioctls.kvm_ioctl(
                self.fd, ioctls.KVM_GET_VCPU_MMAP_SIZE, None, "GET_VCPU_MMAP_SIZE"
            )
        except BaseException:
            os.close(self.fd)
            raise

    def check_extension(self, capability: int) -> int:
        """KVM_CHECK_EXTENSION: 0 when absent, otherwise a capability-specific value."""
        return ioctls.kvm_ioctl(self.fd, ioctls.KVM_CHECK_EXTENSION, capability, "CHECK_EXTENSION")

    def supported_cpuid(self) -> ioctls.KvmCpuid2:
        """KVM_GET_SUPPORTED_CPUID: the leaves KVM can present to a guest on this host."""
        cpuid = ioctls.KvmCpuid2()
        cpuid.nent = ioctls.MAX_CPUID_ENTRIES
        ioctls.kvm_ioctl(self.fd, ioctls.KVM_GET_SUPPORTED_CPUID, cpuid, "GET_SUPPORTED_CPUID")
        return cpuid

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def kvm_unavailable_reason(device: str = KVM_DEVICE) -> str | None:
    """Why KVM guests cannot run here, or None when ``device`` opens and answers."""
    try:
        with KvmSystem(device):
            return None
    except Sel4VmmError as error:
        return str(error)

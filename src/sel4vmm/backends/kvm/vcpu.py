"""One KVM vCPU: the shared ``kvm_run`` page, registers, CPUID and the KVM_RUN call.

The ``kvm_run`` page is mapped once and read with :mod:`struct` straight out of the mapping:
the exit loop is the hot path of an MMIO-heavy guest, so it must not build ctypes objects
or copy the page per exit.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import struct

from sel4vmm.backends.kvm import ioctls
from sel4vmm.backends.kvm.vm import KvmVm

_U32 = struct.Struct("<I")
_IO = struct.Struct(ioctls.RUN_IO_FORMAT)
_MMIO = struct.Struct("<Q8sIB")

#: CPUID leaf 1 ECX bit 31: "running under a hypervisor"; leaf 0x40000000 names it.
_CPUID_HYPERVISOR_BIT = 1 << 31


class KvmVcpu:
    """A vCPU of a :class:`~sel4vmm.backends.kvm.vm.KvmVm`."""

    def __init__(self, vm: KvmVm, index: int = 0) -> None:
        self.vm = vm
        self.index = index
        self.fd = ioctls.kvm_ioctl(vm.fd, ioctls.KVM_CREATE_VCPU, index, "CREATE_VCPU")
        try:
            self._run_page = mmap.mmap(
                self.fd,
                vm.system.vcpu_mmap_size,
                flags=mmap.MAP_SHARED,
                prot=mmap.PROT_READ | mmap.PROT_WRITE,
            )
        except BaseException:
            os.close(self.fd)
            raise
        #: The raw ``kvm_run`` page; exit decoding reads it with ``struct`` directly.
        self.run_page = memoryview(self._run_page)
        self._ioctl = ioctls.raw_ioctl_function()
        self.set_cpuid(vm.system.supported_cpuid())

    # --- state ------------------------------------------------------------------------

    def set_cpuid(self, cpuid: ioctls.KvmCpuid2) -> None:
        """KVM_SET_CPUID2; the hypervisor bit is set so Linux knows to trust KVM's clock."""
        for entry in cpuid.entries[: cpuid.nent]:
            if entry.function == 1:
                entry.ecx |= _CPUID_HYPERVISOR_BIT
        ioctls.kvm_ioctl(self.fd, ioctls.KVM_SET_CPUID2, cpuid, "SET_CPUID2")

    def get_regs(self) -> ioctls.KvmRegs:
        regs = ioctls.KvmRegs()
        ioctls.kvm_ioctl(self.fd, ioctls.KVM_GET_REGS, regs, "GET_REGS")
        return regs

    def set_regs(self, regs: ioctls.KvmRegs) -> None:
        ioctls.kvm_ioctl(self.fd, ioctls.KVM_SET_REGS, regs, "SET_REGS")

    def get_sregs(self) -> ioctls.KvmSregs:
        sregs = ioctls.KvmSregs()
        ioctls.kvm_ioctl(self.fd, ioctls.KVM_GET_SREGS, sregs, "GET_SREGS")
        return sregs

    def set_sregs(self, sregs: ioctls.KvmSregs) -> None:
        ioctls.kvm_ioctl(self.fd, ioctls.KVM_SET_SREGS, sregs, "SET_SREGS")

    # --- running ----------------------------------------------------------------------

    def run(self) -> int:
        """Enter the guest until the next exit; returns ``kvm_run.exit_reason``.

        A signal interrupting KVM_RUN returns ``KVM_EXIT_INTR`` so the caller can look at
        its stop flag and re-enter.
        """
        if self._ioctl(self.fd, ioctls.KVM_RUN, None) < 0:
            error_number = ctypes.get_errno()
            if error_number == errno.EINTR:
                return ioctls.KVM_EXIT_INTR
            raise ioctls.KvmIoctlError("RUN", error_number)
        reason: int = _U32.unpack_from(self.run_page, ioctls.RUN_EXIT_REASON)[0]
        return reason

    def request_immediate_exit(self, value: bool) -> None:
        """Set ``kvm_run.immediate_exit``: a KVM_RUN about to start returns EINTR at once."""
        self.run_page[ioctls.RUN_IMMEDIATE_EXIT] = 1 if value else 0

    def io_exit(self) -> tuple[int, int, int, int, int]:
        """Decode a KVM_EXIT_IO: (direction, size, port, count, data_offset)."""
        direction, size, port, count, data_offset = _IO.unpack_from(self.run_page, ioctls.RUN_UNION)
        return direction, size, port, count, data_offset

    def mmio_exit(self) -> tuple[int, bytes, int, bool]:
        """Decode a KVM_EXIT_MMIO: (guest-physical address, data, length, is_write)."""
        address, data, length, is_write = _MMIO.unpack_from(self.run_page, ioctls.RUN_UNION)
        return address, data, length, bool(is_write)

    def complete_mmio_read(self, value: int, length: int) -> None:
        """Put the value of an emulated read where KVM picks it up on the next KVM_RUN."""
        offset = ioctls.RUN_MMIO_DATA
        self.run_page[offset : offset + length] = value.to_bytes(8, "little")[:length]

    def exit_detail_words(self, count: int) -> tuple[int, ...]:
        """The first ``count`` 64-bit words of the exit union (for diagnostics)."""
        return struct.unpack_from(f"<{count}Q", self.run_page, ioctls.RUN_UNION)

    def describe_state(self) -> str:
        """Registers and control state as a few lines, for a VM-stop diagnostic."""
        try:
            regs = self.get_regs()
            sregs = self.get_sregs()
        except ioctls.KvmIoctlError as error:
            return f"(registers unavailable: {error})"
        names = [field[0] for field in ioctls.KvmRegs._fields_]
        parts = [f"{name}={getattr(regs, name):#x}" for name in names]
        lines = [" ".join(parts[i : i + 6]) for i in range(0, len(parts), 6)]
        lines.append(
            f"cr0={sregs.cr0:#x} cr2={sregs.cr2:#x} cr3={sregs.cr3:#x} cr4={sregs.cr4:#x} "
            f"efer={sregs.efer:#x} cs={sregs.cs.selector:#x} (l={sregs.cs.l} dpl={sregs.cs.dpl})"
        )
        return "\n".join(lines)

    def close(self) -> None:
        if self.fd >= 0:
            self.run_page.release()
            self._run_page.close()
            os.close(self.fd)
            self.fd = -1

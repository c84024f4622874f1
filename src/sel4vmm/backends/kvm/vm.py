"""One KVM virtual machine: its file descriptor, interrupt hardware and memory slots.

The VM is created with the in-kernel IRQ chip (PIC + IOAPIC + local APICs) and the in-kernel
PIT, because the guests we run (Linux, and the test guests that program the 8250) expect a
PC's interrupt hardware, and emulating it in Python would put every timer tick through the
slow exit path.  On Intel, KVM needs three pages below 4 GiB for the real-mode TSS and one
for the EPT identity map even if the guest never enters real mode; they go just under the
BIOS area at the top of the 32-bit space where no guest RAM is placed.
"""

from __future__ import annotations

import ctypes
import os
from typing import Final

from sel4vmm.backends.kvm import ioctls
from sel4vmm.backends.kvm.system import KvmSystem
from sel4vmm.errors import Sel4VmmError

#: Where KVM's private real-mode TSS (3 pages) and EPT identity-map page live.
TSS_ADDRESS: Final = 0xFFFB_D000
IDENTITY_MAP_ADDRESS: Final = 0xFFFB_C000


class KvmVm:
    """A KVM VM: raw slot programming, IRQ lines and dirty logs (no policy)."""

    def __init__(self, system: KvmSystem) -> None:
        self.system = system
        self.fd = ioctls.kvm_ioctl(system.fd, ioctls.KVM_CREATE_VM, 0, "CREATE_VM")
        try:
            self.max_slots = max(system.check_extension(ioctls.KVM_CAP_NR_MEMSLOTS), 32)
            identity = ctypes.c_uint64(IDENTITY_MAP_ADDRESS)
            ioctls.kvm_ioctl(
                self.fd,
                ioctls.KVM_SET_IDENTITY_MAP_ADDR,
                ctypes.addressof(identity),
                "SET_IDENTITY_MAP_ADDR",
            )
            ioctls.kvm_ioctl(self.fd, ioctls.KVM_SET_TSS_ADDR, TSS_ADDRESS, "SET_TSS_ADDR")
            ioctls.kvm_ioctl(self.fd, ioctls.KVM_CREATE_IRQCHIP, None, "CREATE_IRQCHIP")
            pit = ioctls.KvmPitConfig(flags=ioctls.KVM_PIT_SPEAKER_DUMMY)
            ioctls.kvm_ioctl(self.fd, ioctls.KVM_CREATE_PIT2, pit, "CREATE_PIT2")
        except BaseException:
            os.close(self.fd)
            raise

    def set_memory_region(
        self, slot: int, guest_addr: int, size: int, host_addr: int, flags: int = 0
    ) -> None:
        """KVM_SET_USER_MEMORY_REGION; ``size == 0`` deletes the slot."""
        if not 0 <= slot < self.max_slots:
            raise Sel4VmmError(
                f"KVM memory slot {slot} is outside 0..{self.max_slots - 1}",
                fix="map fewer, larger windows (merge adjacent reservations)",
            )
        region = ioctls.KvmUserspaceMemoryRegion(
            slot=slot,
            flags=flags,
            guest_phys_addr=guest_addr,
            memory_size=size,
            userspace_addr=host_addr,
        )
        ioctls.kvm_ioctl(
            self.fd, ioctls.KVM_SET_USER_MEMORY_REGION, region, "SET_USER_MEMORY_REGION"
        )

    def get_dirty_log(self, slot: int, bitmap: ctypes.Array[ctypes.c_uint64]) -> None:
        """KVM_GET_DIRTY_LOG: fill ``bitmap`` (one bit per 4 KiB page) and reset the log."""
        log = ioctls.KvmDirtyLog(slot=slot, dirty_bitmap=ctypes.addressof(bitmap))
        ioctls.kvm_ioctl(self.fd, ioctls.KVM_GET_DIRTY_LOG, log, "GET_DIRTY_LOG")

    def set_irq_line(self, irq: int, level: bool) -> None:
        """KVM_IRQ_LINE: drive GSI ``irq`` of the in-kernel PIC/IOAPIC high or low."""
        line = ioctls.KvmIrqLevel(irq=irq, level=1 if level else 0)
        ioctls.kvm_ioctl(self.fd, ioctls.KVM_IRQ_LINE, line, "IRQ_LINE")

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

"""Keeping unicorn's memory map in step with the guest's address space.

What the guest sees at a guest-physical address is decided by the core's
:class:`~sel4vmm.memory.GuestAddressSpace`, not by the backend.  This module listens to it
(``extent_mapped``/``extent_unmapped``) and mirrors it into unicorn:

* an extent backed by RAM frames becomes ``mem_map_ptr`` onto the frames' host memory
  (:meth:`PhysicalMemory.host_address`), so guest accesses touch the very bytes the VMM,
  the DMA engine and other views see, with no copies;
* an extent backed by the frames of a *board device* (the PL011, the GIC's virtual CPU
  interface) becomes an ``mmio_map`` onto that device's model — a passthrough: the guest
  reaches the device without a VMM fault, wherever the system maps it;
* everything else is a hole.  The first access to a page of a hole arrives in
  ``UC_HOOK_MEM_*_UNMAPPED``; the page then becomes a 4 KiB ``mmio_map`` whose callbacks
  are the VMM's fault path and the access is retried through it, so every access to an
  unmapped address (the first included) is one call of the fault path with its address,
  width, direction and value, and a read's answer lands in the destination register.
  Pages are made lazily because unicorn's map/unmap cost grows with region size
  (about 0.25 s per GiB), which rules out covering the 40-bit IPA space up front.
  When the C extension is built, these pages are served by the C MMIO trampoline
  (:mod:`fault_pages`) instead of the binding's Python callbacks: same fault path, same
  answers, a fraction of the cost.

Changes requested while the vCPU runs (a deferred map resolved inside a fault) are queued
and applied between slices: unicorn's map must not change under a running instruction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from unicorn import (
    UC_HOOK_MEM_READ_UNMAPPED,
    UC_HOOK_MEM_WRITE_UNMAPPED,
    UC_PROT_EXEC,
    UC_PROT_READ,
    UC_PROT_WRITE,
)

from sel4vmm.backends.unicorn.engine import AArch64Engine
from sel4vmm.backends.unicorn.fault_pages import TrampolinePages
from sel4vmm.memory import MappedExtent
from sel4vmm.sel4.physmem import PhysicalMemory


class BoardDevice(Protocol):
    """A device model the guest reaches through mapped frames (a passthrough)."""

    def read(self, offset: int, size: int) -> int: ...

    def write(self, offset: int, size: int, value: int) -> None: ...


@dataclass(frozen=True)
class DeviceWindow:
    """A board device's register frame(s) at a physical address."""

    name: str
    paddr: int
    size: int
    device: BoardDevice

    def covers(self, paddr: int, size: int) -> bool:
        return self.paddr <= paddr and paddr + size <= self.paddr + self.size


#: ``access(address, width, is_write, value, device, offset) -> read value``: how the vCPU
#: performs an emulated access, on a board device or (``device`` None) the fault path.
MmioAccess = Callable[[int, int, bool, int, BoardDevice | None, int], int]


class UnicornAddressMap:
    """Mirrors a VM's mapped extents into one unicorn instance (an address-space listener)."""

    PAGE = 0x1000

    def __init__(
        self,
        uc: AArch64Engine,
        physmem: PhysicalMemory,
        devices: list[DeviceWindow],
        access: MmioAccess,
        address_bits: int,
        trampolines: TrampolinePages | None = None,
    ) -> None:
        self._uc = uc
        #: The C trampoline serving the fault pages (None: the binding's Python callbacks).
        self.trampolines = trampolines
        self._physmem = physmem
        self._devices = devices
        self._access = access
        self.limit = 1 << address_bits
        #: Pages of holes currently mapped as fault-path MMIO.
        self.fault_pages: set[int] = set()
        #: Extents mapped in unicorn, by guest address.
        self.extents: dict[int, MappedExtent] = {}
        #: Changes waiting for the vCPU to leave unicorn: (mapped?, extent).
        self._queued: list[tuple[bool, MappedExtent]] = []
        self.running = False
        uc.hook_add(UC_HOOK_MEM_READ_UNMAPPED | UC_HOOK_MEM_WRITE_UNMAPPED, self._on_unmapped)

    # -- the listener interface ---------------------------------------------------------
    def extent_mapped(self, extent: MappedExtent) -> None:
        if self.running:
            self._queued.append((True, extent))
            if self.trampolines is not None:
                # Accesses to it must reach its frames (StageTwoFaults.memory_fault checks).
                self.trampolines.take_general_path()
        else:
            self._apply_mapped(extent)

    def extent_unmapped(self, extent: MappedExtent) -> None:
        if self.running:
            self._queued.append((False, extent))
        else:
            self._apply_unmapped(extent)

    @property
    def has_queued_changes(self) -> bool:
        return bool(self._queued)

    def queued_extent(self, address: int) -> MappedExtent | None:
        """A mapped-but-not-yet-applied extent containing ``address`` (a RESTART in flight)."""
        found: MappedExtent | None = None
        for mapped, extent in self._queued:
            if extent.guest_addr <= address < extent.guest_end:
                found = extent if mapped else None
        return found

    def apply_queued(self) -> None:
        """Apply the changes requested while the vCPU ran (it is stopped, or in a hook)."""
        queued, self._queued = self._queued, []
        for mapped, extent in queued:
            if mapped:
                self._apply_mapped(extent)
            else:
                self._apply_unmapped(extent)

    # -- holes ---------------------------------------------------------------------------
    def _on_unmapped(
        self, _uc: AArch64Engine, _access: int, address: int, _size: int, _value: int, _data: Any
    ) -> bool:
        """First touch of a hole page: make it a fault-path page and retry the access."""
        if self.queued_extent(address) is not None:
            self.apply_queued()  # a deferred map resolved earlier in this slice
            return True
        if not 0 <= address < self.limit:
            return False  # beyond the guest-physical address space: unicorn reports it
        self.map_fault_page(address & ~(self.PAGE - 1))
        return True

    def map_fault_page(self, page: int) -> None:
        """Route every access to ``page`` through the fault path."""
        if page in self.fault_pages:
            return
        if self.trampolines is not None:
            self.trampolines.map_page(page)
            self.fault_pages.add(page)
            return

        access = self._access

        def read(_uc: AArch64Engine, offset: int, size: int, _data: Any) -> int:
            return access(page + offset, size, False, 0, None, 0)

        def write(_uc: AArch64Engine, offset: int, size: int, value: int, _data: Any) -> None:
            access(page + offset, size, True, value, None, 0)

        self._uc.mmio_map(page, self.PAGE, read, None, write, None)
        self.fault_pages.add(page)

    def _drop_fault_pages(self, start: int, end: int) -> None:
        for page in [p for p in self.fault_pages if start <= p < end]:
            self._uc.mem_unmap(page, self.PAGE)
            self.fault_pages.discard(page)
            if self.trampolines is not None:
                self.trampolines.forget_page(page)

    # -- extents -------------------------------------------------------------------------
    def _device_for(self, extent: MappedExtent) -> DeviceWindow | None:
        for window in self._devices:
            if window.covers(extent.paddr, extent.size):
                return window
        return None

    def _apply_mapped(self, extent: MappedExtent) -> None:
        start, end = extent.guest_addr, extent.guest_end
        if end > self.limit:
            raise ValueError(f"extent at {start:#x} is beyond the guest address space")
        self._drop_fault_pages(start, end)
        window = self._device_for(extent) if extent.device else None
        if window is not None:
            device = window.device
            base = extent.paddr - window.paddr
            access = self._access

            def read(_uc: AArch64Engine, offset: int, size: int, _data: Any) -> int:
                return access(start + offset, size, False, 0, device, base + offset)

            def write(_uc: AArch64Engine, offset: int, size: int, value: int, _data: Any) -> None:
                access(start + offset, size, True, value, device, base + offset)

            self._uc.mmio_map(start, end - start, read, None, write, None)
        else:
            perms = UC_PROT_READ
            if extent.writable:
                perms |= UC_PROT_WRITE
            if extent.executable:
                perms |= UC_PROT_EXEC
            self._physmem.view(extent.paddr, extent.size)  # bounds check before unicorn
            host = self._physmem.host_address(extent.paddr)
            self._uc.mem_map_ptr(start, end - start, perms, host)
        self.extents[start] = extent

    def _apply_unmapped(self, extent: MappedExtent) -> None:
        if self.extents.pop(extent.guest_addr, None) is None:
            return
        self._uc.mem_unmap(extent.guest_addr, extent.size)

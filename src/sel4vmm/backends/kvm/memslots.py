"""KVM memory slots kept in step with the guest address space.

libsel4vm decides what is mapped where (reservations, frame iterators, deferred maps); KVM
only needs to know which guest-physical windows are backed by which host memory.  So this
module is a *listener* on :class:`~sel4vmm.memory.GuestAddressSpace`: every extent the
address space maps becomes a slot pointing at the frames' bytes in the board's
:class:`~sel4vmm.sel4.physmem.PhysicalMemory` (the same host pages the VMM reads and writes,
so there is no copy), and every extent it unmaps deletes the slot again.  Anything not
covered by a slot exits to the VMM as MMIO and goes through the fault path.

Extents may be coalesced or split by the address space after the fact; the listener copes
by deleting every slot the new extent overlaps before adding it, and by re-adding the parts
of a slot that survive an unmap.  Read-only extents become ``KVM_MEM_READONLY`` slots:
reads run at full speed, writes exit as MMIO and reach the reservation's callback.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

from sel4vmm.backends.kvm import ioctls
from sel4vmm.backends.kvm.vm import KvmVm
from sel4vmm.memory import MappedExtent
from sel4vmm.sel4.physmem import PhysicalMemory


@dataclass(frozen=True)
class MemorySlot:
    """One KVM slot: guest window, backing physical address, flags."""

    slot: int
    guest_addr: int
    size: int
    paddr: int
    writable: bool

    @property
    def guest_end(self) -> int:
        return self.guest_addr + self.size

    def overlaps(self, start: int, end: int) -> bool:
        return self.guest_addr < end and start < self.guest_end


class MemorySlots:
    """The VM's slot table, driven by address-space map/unmap notifications."""

    def __init__(self, kvm_vm: KvmVm, physmem: PhysicalMemory) -> None:
        self._vm = kvm_vm
        self._physmem = physmem
        self._slots: dict[int, MemorySlot] = {}
        self._free_ids: list[int] = []
        self._next_id = 0
        self._dirty_logging = False
        #: How many KVM_SET_USER_MEMORY_REGION calls were made (benchmarks, tests).
        self.updates = 0

    # --- listener interface of GuestAddressSpace --------------------------------------

    def extent_mapped(self, extent: MappedExtent) -> None:
        for slot in self._overlapping(extent.guest_addr, extent.guest_end):
            self._delete(slot)
        self._add(extent.guest_addr, extent.size, extent.paddr, extent.writable)

    def extent_unmapped(self, extent: MappedExtent) -> None:
        start, end = extent.guest_addr, extent.guest_end
        for slot in self._overlapping(start, end):
            self._delete(slot)
            if slot.guest_addr < start:
                self._add(slot.guest_addr, start - slot.guest_addr, slot.paddr, slot.writable)
            if end < slot.guest_end:
                offset = end - slot.guest_addr
                self._add(end, slot.guest_end - end, slot.paddr + offset, slot.writable)

    # --- queries ----------------------------------------------------------------------

    def slots(self) -> list[MemorySlot]:
        """The current slots, by guest address."""
        return sorted(self._slots.values(), key=lambda s: s.guest_addr)

    def slot_at(self, guest_addr: int) -> MemorySlot | None:
        for slot in self._slots.values():
            if slot.guest_addr <= guest_addr < slot.guest_end:
                return slot
        return None

    # --- dirty logging ----------------------------------------------------------------

    @property
    def dirty_logging(self) -> bool:
        return self._dirty_logging

    def set_dirty_logging(self, enabled: bool) -> None:
        """Turn ``KVM_MEM_LOG_DIRTY_PAGES`` on or off for every writable slot (and new ones).

        KVM lets a slot's flags change in place when its address and size stay the same,
        so the guest keeps running on the same memory.
        """
        if enabled == self._dirty_logging:
            return
        self._dirty_logging = enabled
        for slot in self._slots.values():
            if slot.writable:
                self._program(slot)

    def read_dirty_bitmap(self, slot: MemorySlot) -> list[int]:
        """Guest addresses of the pages of ``slot`` written since the last call."""
        pages = slot.size // 0x1000
        words = (pages + 63) // 64
        bitmap = (ctypes.c_uint64 * max(words, 1))()
        self._vm.get_dirty_log(slot.slot, bitmap)
        dirty = []
        for word_index, word in enumerate(bitmap):
            while word:
                bit = (word & -word).bit_length() - 1
                dirty.append(slot.guest_addr + (word_index * 64 + bit) * 0x1000)
                word &= word - 1
        return dirty

    # --- internals --------------------------------------------------------------------

    def _overlapping(self, start: int, end: int) -> list[MemorySlot]:
        return [s for s in self._slots.values() if s.overlaps(start, end)]

    def _add(self, guest_addr: int, size: int, paddr: int, writable: bool) -> None:
        slot_id = self._free_ids.pop() if self._free_ids else self._allocate_id()
        slot = MemorySlot(slot_id, guest_addr, size, paddr, writable)
        try:
            self._program(slot)
        except BaseException:
            self._free_ids.append(slot_id)
            raise
        self._slots[slot_id] = slot

    def _allocate_id(self) -> int:
        slot_id = self._next_id
        self._next_id += 1
        return slot_id

    def _flags(self, slot: MemorySlot) -> int:
        if not slot.writable:
            return ioctls.KVM_MEM_READONLY
        return ioctls.KVM_MEM_LOG_DIRTY_PAGES if self._dirty_logging else 0

    def _program(self, slot: MemorySlot) -> None:
        host = self._physmem.host_address(slot.paddr)
        # Fail before touching KVM if the frames are outside the board's host mapping.
        self._physmem.host_address(slot.paddr + slot.size - 1)
        self._vm.set_memory_region(slot.slot, slot.guest_addr, slot.size, host, self._flags(slot))
        self.updates += 1

    def _delete(self, slot: MemorySlot) -> None:
        self._vm.set_memory_region(slot.slot, slot.guest_addr, 0, 0)
        self.updates += 1
        del self._slots[slot.slot]
        self._free_ids.append(slot.slot)

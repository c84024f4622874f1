"""Which pages of guest RAM the guest has written: dirty-page tracking over KVM's log.

Live migration, snapshots and "did the driver really DMA into this buffer" checks all need
the set of pages a guest wrote since some moment.  KVM keeps that per memory slot
(``KVM_MEM_LOG_DIRTY_PAGES`` + ``KVM_GET_DIRTY_LOG``, one bit per 4 KiB page, reset on each
read); this module turns those per-slot bitmaps into guest-RAM terms: sorted guest
addresses, restricted to the ranges registered as RAM, optionally merged into ranges.
Writes the VMM itself makes through the host mapping are *not* logged by KVM (only guest
writes through EPT are), which is what a migration wants: the VMM knows what it wrote.
"""

from __future__ import annotations

from collections.abc import Iterable

from sel4vmm.backends.kvm.memslots import MemorySlots

PAGE_SIZE = 0x1000


class DirtyPageLog:
    """Dirty-page tracking of the guest RAM ranges ``ram`` (base, size) of one VM."""

    def __init__(self, slots: MemorySlots, ram: Iterable[tuple[int, int]]) -> None:
        self._slots = slots
        self._ram = sorted(ram)

    @property
    def active(self) -> bool:
        return self._slots.dirty_logging

    def start(self) -> None:
        """Begin logging; the first :meth:`collect` reports writes from now on."""
        self._slots.set_dirty_logging(True)
        # Enabling starts from a clean log, but a slot re-programmed while logging was
        # already on keeps its bits: read them away so the caller's epoch is "now".
        self.collect()

    def stop(self) -> None:
        self._slots.set_dirty_logging(False)

    def collect(self) -> list[int]:
        """Guest addresses of RAM pages written since :meth:`start` or the last collect."""
        if not self.active:
            return []
        dirty: list[int] = []
        for slot in self._slots.slots():
            if slot.writable:
                dirty.extend(a for a in self._slots.read_dirty_bitmap(slot) if self._is_ram(a))
        dirty.sort()
        return dirty

    def collect_ranges(self) -> list[tuple[int, int]]:
        """Like :meth:`collect`, with adjacent pages merged into (address, size) ranges."""
        ranges: list[tuple[int, int]] = []
        for page in self.collect():
            if ranges and ranges[-1][0] + ranges[-1][1] == page:
                ranges[-1] = (ranges[-1][0], ranges[-1][1] + PAGE_SIZE)
            else:
                ranges.append((page, PAGE_SIZE))
        return ranges

    def _is_ram(self, addr: int) -> bool:
        return any(base <= addr < base + size for base, size in self._ram)

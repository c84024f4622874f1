"""One allocation, several mappings: the frames of a shared region, for a plan and a run.

The Microkit tool makes a memory region's frames once and gives every ``<map>`` of it a
capability copy; CAmkES does the same for a dataport (``seL4SharedDataWithCaps``: the frames
are made once, the VM's side holds caps to them).  :class:`SharedFrames` is that rule for
sel4vmm: the first VM that maps a region retypes its frames from its own allocator, every
later one maps copies of the same caps (:meth:`~sel4vmm.vm.VirtualMachine.map_shared_frames`)
at its own guest address.  The planner and a multi-VM run both place shared regions through
it, so what ``plan`` shows (the same physical frames in every VM that maps the region) is
what a run maps, and a write by one guest lands in the very bytes the other reads.

:class:`SharedRegionMemory` is the VMM's own view of such a region (a Microkit region also
mapped into the VMM protection domain, the dataport a CAmkES component shares with its VM):
reads and writes of the frames in board physical memory, bounds-checked.
"""

from __future__ import annotations

from sel4vmm.config.spec import GuestRegion, RegionKind
from sel4vmm.errors import Sel4VmmError
from sel4vmm.memory.address_space import frame_iterator
from sel4vmm.memory.reservation import Reservation
from sel4vmm.sel4.objects import ObjectKind, ObjectRun
from sel4vmm.sel4.physmem import PhysicalMemory
from sel4vmm.vm import VirtualMachine

ShareKey = tuple[str, int, int]


def share_key(region: GuestRegion) -> ShareKey:
    """What makes two windows the same memory: the shared region's name, else the
    physical address (a device two VMs both map), else the region's own name."""
    if region.shared is not None:
        return (f"shared:{region.shared}", region.size, region.page_bits)
    if region.phys_addr is not None:
        return (f"phys:{region.phys_addr:#x}", region.size, region.page_bits)
    return (f"region:{region.name}", region.size, region.page_bits)


class SharedFrames:
    """The frames made so far for shared windows, by :func:`share_key`."""

    def __init__(self) -> None:
        self.runs: dict[ShareKey, list[ObjectRun]] = {}

    def __contains__(self, region: GuestRegion) -> bool:
        return share_key(region) in self.runs

    def remember(self, region: GuestRegion, runs: list[ObjectRun]) -> None:
        self.runs[share_key(region)] = runs

    def frames(self, region: GuestRegion) -> list[ObjectRun]:
        return self.runs[share_key(region)]

    def map_copies(self, vm: VirtualMachine, region: GuestRegion) -> Reservation:
        """Map caps copied from the frames another VM holds."""
        return vm.map_shared_frames(
            region.guest_addr, self.frames(region), label=region.name, rights=region.perms or "r"
        )

    def place(self, vm: VirtualMachine, region: GuestRegion) -> Reservation:
        """Map a SHARED window into ``vm``: new frames the first time, copies after."""
        if region.kind is not RegionKind.SHARED:
            raise ValueError(f"{region.name} is a {region.kind.value} window, not shared memory")
        if region in self:
            return self.map_copies(vm, region)
        bits = region.page_bits
        with vm.undo.transaction():
            runs = vm.allocator.retype(ObjectKind.FRAME, bits, region.size >> bits)
            reservation = vm.memory.reserve_at(region.guest_addr, region.size, label=region.name)
            vm.memory.map(reservation, frame_iterator(runs, region.guest_addr, region.perms or "r"))
        self.remember(region, runs)
        return reservation


class SharedRegionMemory:
    """The VMM's access to a shared region's bytes (the frames, wherever they are)."""

    def __init__(self, name: str, physmem: PhysicalMemory, runs: list[ObjectRun]) -> None:
        self.name = name
        self.physmem = physmem
        #: (offset in the region, physical address, bytes) of each run of frames.
        self.pieces: list[tuple[int, int, int]] = []
        offset = 0
        for run in runs:
            self.pieces.append((offset, run.paddr, run.size))
            offset += run.size
        self.size = offset

    def _check(self, offset: int, length: int) -> None:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise Sel4VmmError(
                f"{self.name}: access of {length} bytes at offset {offset:#x} is outside the "
                f"{self.size:#x}-byte shared region",
                fix="keep VMM accesses inside the region",
            )

    def _spans(self, offset: int, length: int) -> list[tuple[int, int]]:
        spans = []
        for start, paddr, size in self.pieces:
            low, high = max(offset, start), min(offset + length, start + size)
            if low < high:
                spans.append((paddr + low - start, high - low))
        return spans

    def read(self, offset: int, length: int) -> bytes:
        self._check(offset, length)
        return b"".join(bytes(self.physmem.view(p, n)) for p, n in self._spans(offset, length))

    def write(self, offset: int, data: bytes) -> None:
        self._check(offset, len(data))
        cursor = 0
        for paddr, size in self._spans(offset, len(data)):
            self.physmem.view(paddr, size)[:] = data[cursor : cursor + size]
            cursor += size

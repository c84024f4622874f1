"""Who owns physical address X: a component's frames, its kernel objects, its unused
untyped, free board memory, memory reserved for seL4 and the VMM, a device window, nothing.

A bus master without an SMMU (a DMA engine) sees physical addresses only; whatever it
touches belongs to *someone*, and the VMM must be able to say whom.  The answer comes from
the seL4 model itself — the objects each component's allocator retyped, the untyped each
was given, the kernel's boot untyped — not from the device, so every device model (and
every report) gets the same answer.  Components register their allocator with the
platform's :func:`ownership_of` registry when they are created.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from weakref import WeakKeyDictionary

from sel4vmm.sel4.allocator import ObjectAllocator
from sel4vmm.sel4.objects import ObjectKind
from sel4vmm.sel4.physmem import PhysicalMemory


@dataclass(frozen=True)
class PhysicalOwner:
    """Whose physical memory a byte is.

    ``what`` is one of ``frames``, ``kernel objects``, ``untyped``, ``free``,
    ``reserved``, ``device``, ``nothing``; ``holder`` names the component (or "").
    """

    what: str
    holder: str = ""
    detail: str = ""

    def __str__(self) -> str:
        if self.what == "frames":
            return f"frames of {self.holder}"
        if self.what == "kernel objects":
            return f"kernel objects of {self.holder} ({self.detail})"
        if self.what == "untyped":
            return f"untyped memory given to {self.holder}"
        if self.what == "free":
            return "free board RAM that no component holds"
        if self.what == "reserved":
            return "RAM reserved for seL4 and the VMM (the kernel made no untyped of it)"
        if self.what == "device":
            return f"the device window {self.detail}" if self.detail else "device memory"
        return "no memory at all (nothing is at this address)"


#: (start, end, owner) — one piece of physical memory and whose it is.
Piece = tuple[int, int, PhysicalOwner]


class PhysicalOwnership:
    """The components of one platform, answering "whose is physical address X"."""

    def __init__(self, physmem: PhysicalMemory, root: ObjectAllocator) -> None:
        self.physmem = physmem
        self.root = root
        self.components: list[ObjectAllocator] = []

    def add(self, allocator: ObjectAllocator) -> None:
        """Register a component (a VM's allocator; its ``owner`` names it)."""
        if allocator not in self.components:
            self.components.append(allocator)

    def _layers(self) -> list[list[Piece]]:
        """Pieces by priority, the most specific answer first: objects, given untyped, other
        components' untyped, the board's named device windows, the kernel's boot untyped
        (free RAM, anonymous device memory), and last the RAM ranges themselves — RAM no
        untyped covers is what seL4 and the VMM reserved."""
        objects: list[Piece] = []
        untyped: list[Piece] = []
        for component in self.components:
            for run in component.runs:
                if run.kind is ObjectKind.FRAME:
                    owner = PhysicalOwner("frames", component.owner)
                elif run.kind is ObjectKind.UNTYPED:
                    owner = PhysicalOwner("untyped", component.owner)
                else:
                    owner = PhysicalOwner("kernel objects", component.owner, run.kind.value)
                objects.append((run.paddr, run.end, owner))
            for given in component.given:
                untyped.append((given.paddr, given.end, PhysicalOwner("untyped", component.owner)))
        others = [
            (run.paddr, run.end, PhysicalOwner("untyped", "another component"))
            for run in self.root.runs
            if run.kind is ObjectKind.UNTYPED
        ]
        board = [
            (u.paddr, u.end, PhysicalOwner("device") if u.device else PhysicalOwner("free"))
            for u in self.root.untypeds
            if u.parent is None
        ]
        devices = [
            (r.base, r.end, PhysicalOwner("device", detail=r.name))
            for r in self.physmem.ranges
            if r.device
        ]
        reserved = [(r.base, r.end, PhysicalOwner("reserved")) for r in self.physmem.ram_ranges]
        return [objects, untyped, others, devices, board, reserved]

    def pieces(self, paddr: int, size: int) -> list[Piece]:
        """``[paddr, paddr + size)`` cut where its owner changes, each piece with its owner."""
        end = paddr + size
        order = self._layers()
        cuts = {paddr, end}
        for layer in order:
            for lo, hi, _ in layer:
                if lo < end and paddr < hi:
                    cuts.update(c for c in (lo, hi) if paddr < c < end)
        points = sorted(cuts)
        result: list[Piece] = []
        for lo, hi in pairwise(points):
            owner = next(
                (o for layer in order for s, e, o in layer if s <= lo < e),
                PhysicalOwner("nothing"),
            )
            if result and result[-1][2] == owner and result[-1][1] == lo:
                result[-1] = (result[-1][0], hi, owner)
            else:
                result.append((lo, hi, owner))
        return result

    def owner_of(self, paddr: int) -> PhysicalOwner:
        return self.pieces(paddr, 1)[0][2]


_REGISTRIES: WeakKeyDictionary[ObjectAllocator, PhysicalOwnership] = WeakKeyDictionary()


def ownership_of(physmem: PhysicalMemory, root: ObjectAllocator) -> PhysicalOwnership:
    """The one registry of the platform whose boot allocator is ``root``."""
    registry = _REGISTRIES.get(root)
    if registry is None:
        registry = _REGISTRIES[root] = PhysicalOwnership(physmem, root)
    return registry

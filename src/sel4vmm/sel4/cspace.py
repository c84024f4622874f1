"""CSpace slot accounting.

Every capability the VMM holds takes a slot: each untyped it was given, every object it
retypes, every frame-cap copy it makes to touch guest memory.  Users have to size the
component's CNode (``cnode_size_bits``) before they build an image, so the CSpace records the
peak number of slots a run needed and the CNode size in bits that holds it.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from sel4vmm.errors import ResourceExhausted
from sel4vmm.sel4.undo import UndoLog

#: Slots a component's CSpace uses before the VMM allocates anything (null cap, own CNode,
#: VSpace root, TCB, ASID pool, IRQ control, fault endpoint ...).
INITIAL_SLOTS = 16


@dataclass
class SlotRange:
    first: int
    count: int
    owner: object
    label: str


class CSpace:
    """Slots in one CNode; optionally limited to ``2**size_bits`` slots."""

    def __init__(self, undo: UndoLog, size_bits: int | None = None) -> None:
        self._undo = undo
        self.size_bits = size_bits
        self._next = INITIAL_SLOTS
        self._free: list[tuple[int, int]] = []  # (first, count), sorted
        self._starts: list[int] = []
        self._ranges: dict[int, SlotRange] = {}
        self.used = INITIAL_SLOTS
        self.peak = INITIAL_SLOTS

    @property
    def capacity(self) -> int | None:
        return None if self.size_bits is None else 1 << self.size_bits

    def cnode_bits(self) -> int:
        """Smallest CNode size in bits that holds the peak number of slots."""
        return max(1, (self.peak - 1).bit_length())

    # -- allocation ----------------------------------------------------------------------
    def allocate(self, count: int, owner: object, label: str) -> int:
        """Take ``count`` consecutive slots for ``owner``'s caps; returns the first slot."""
        first = self._take(count, label)
        rng = SlotRange(first, count, owner, label)
        index = bisect.bisect_left(self._starts, first)
        self._starts.insert(index, first)
        self._ranges[first] = rng
        self.used += count
        self.peak = max(self.peak, self.used)
        self._undo.record(lambda: self._release(first))
        return first

    def _take(self, count: int, label: str) -> int:
        for i, (first, free_count) in enumerate(self._free):
            if free_count >= count:
                if free_count == count:
                    del self._free[i]
                else:
                    self._free[i] = (first + count, free_count - count)
                return first
        capacity = self.capacity
        if capacity is not None and self._next + count > capacity:
            need = (self._next + count - 1).bit_length()
            raise ResourceExhausted(
                f"CSpace full: {count} more slot(s) for {label} do not fit in a CNode of "
                f"2^{self.size_bits} slots ({self.used} used)",
                fix=f"set the CNode size to at least {need} bits",
            )
        first = self._next
        self._next += count
        return first

    def free(self, first: int) -> None:
        """Delete the caps of the range that starts at ``first``."""
        rng = self._ranges[first]
        self._release(first)
        self._undo.record(lambda: self._restore(rng))

    def _release(self, first: int) -> None:
        rng = self._ranges.pop(first)
        index = bisect.bisect_left(self._starts, first)
        del self._starts[index]
        self.used -= rng.count
        if rng.first + rng.count == self._next:
            self._next = rng.first
            # Fold free ranges that now touch the top back into it.
            while self._free and self._free[-1][0] + self._free[-1][1] == self._next:
                self._next = self._free.pop()[0]
        else:
            bisect.insort(self._free, (rng.first, rng.count))

    def _restore(self, rng: SlotRange) -> None:
        # Re-take exactly the same slots (they are free: nothing else ran since).
        if rng.first >= self._next:
            if rng.first > self._next:
                bisect.insort(self._free, (self._next, rng.first - self._next))
            self._next = rng.first + rng.count
        else:
            for i, (first, count) in enumerate(self._free):
                if first <= rng.first and rng.first + rng.count <= first + count:
                    del self._free[i]
                    if first < rng.first:
                        bisect.insort(self._free, (first, rng.first - first))
                    tail = first + count - (rng.first + rng.count)
                    if tail:
                        bisect.insort(self._free, (rng.first + rng.count, tail))
                    break
        index = bisect.bisect_left(self._starts, rng.first)
        self._starts.insert(index, rng.first)
        self._ranges[rng.first] = rng
        self.used += rng.count
        self.peak = max(self.peak, self.used)

    def note_transient(self, count: int, label: str) -> None:
        """Account for caps that live only during one operation (copies made to touch RAM)."""
        capacity = self.capacity
        if capacity is not None and self.used + count > capacity:
            raise ResourceExhausted(
                f"CSpace full: no slot for a temporary {label} ({self.used} of {capacity} used)",
                fix=f"set the CNode size to at least {(self.used + count - 1).bit_length()} bits",
            )
        self.peak = max(self.peak, self.used + count)

    # -- lookup --------------------------------------------------------------------------
    def lookup(self, cptr: int) -> tuple[object, int] | None:
        """The owner of the cap in slot ``cptr`` and its index within the owner's range."""
        index = bisect.bisect_right(self._starts, cptr) - 1
        if index < 0:
            return None
        rng = self._ranges[self._starts[index]]
        if cptr < rng.first + rng.count:
            return rng.owner, cptr - rng.first
        return None

"""The VM's object allocator (libsel4vm's ``vka``) over the untyped objects it was given.

Two ways to get memory, as in seL4 systems:

* :meth:`ObjectAllocator.retype` — objects anywhere: first fit over the pool's untyped
  objects with seL4's watermark rules.  Batches are placed as a whole so that a failure
  can say exactly how many more untyped objects of the pool's size would make it fit.
* :meth:`ObjectAllocator.retype_at` — objects at a fixed physical address (1:1 guest RAM,
  device frames): the covering untyped is split by retyping padding untyped objects up to
  the address, the way the Microkit tool and capDL loader place fixed-address objects.
  The padding untyped objects stay in the pool, usable for later allocations.

Failures raise :class:`~sel4vmm.errors.ResourceExhausted` and change nothing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import partial
from typing import Any

from sel4vmm.errors import ResourceExhausted
from sel4vmm.sel4.arch import Arch
from sel4vmm.sel4.cspace import CSpace
from sel4vmm.sel4.objects import RETYPE_FAN_OUT_LIMIT, ObjectKind, ObjectRun, human_size
from sel4vmm.sel4.undo import UndoLog
from sel4vmm.sel4.untyped import Untyped, aligned_blocks


@dataclass(frozen=True)
class Request:
    """``count`` objects of ``kind`` and ``2**size_bits`` bytes."""

    kind: ObjectKind
    size_bits: int
    count: int
    #: Frames may come from device untyped, which are then used first so that RAM untyped
    #: stays for kernel objects (libsel4vm allocates guest RAM with
    #: ``vka_alloc_frame_maybe_device``; allocman tries device memory first for those).
    may_use_device: bool = False


def _order(pool: list[Untyped] | list[list[int]], request: Request, device_of: Any) -> list[Any]:
    """The untyped (or simulated states) a request draws from, in the order it tries them."""
    ram = [u for u in pool if not device_of(u)]
    if not request.may_use_device:
        return ram
    return [u for u in pool if device_of(u)] + ram


#: How a fix names a fixed-address reservation, per configuration language: a CAmkES VM
#: reserves physical memory with ``untyped_mmios``; a Microkit memory region has
#: ``phys_addr`` and the tool gives it that memory, so there is nothing to add but an
#: address where the board has memory that nothing else uses.
FIX_LANGUAGES = ("camkes", "microkit")


def _fits(states: list[list[int]], requests: list[Request]) -> bool:
    """Place ``requests`` first-fit on (watermark, size_bits, device) states."""
    for request in requests:
        remaining = request.count
        obj = 1 << request.size_bits
        for state in _order(states, request, lambda s: s[2]):
            watermark, size_bits, _device = state
            if request.size_bits > size_bits:
                continue
            start = (watermark + obj - 1) // obj * obj
            room = ((1 << size_bits) - start) >> request.size_bits if start < 1 << size_bits else 0
            if room <= 0:
                continue
            n = min(remaining, room)
            state[0] = start + (n << request.size_bits)
            remaining -= n
            if not remaining:
                break
        if remaining:
            return False
    return True


class ObjectAllocator:
    """Allocates seL4 objects for one component from its untyped objects."""

    def __init__(
        self,
        arch: Arch,
        cspace: CSpace,
        undo: UndoLog,
        *,
        owner: str = "vm",
        growth_advice: str | None = None,
    ) -> None:
        self.arch = arch
        self.cspace = cspace
        self.undo = undo
        self.owner = owner
        #: When set, a shortfall is reported with this advice instead of "N more untyped".
        self.growth_advice = growth_advice
        self.untypeds: list[Untyped] = []
        self.runs: list[ObjectRun] = []
        #: Untyped objects as the configuration gave them (not padding made later).
        self.given: list[Untyped] = []
        #: Whether guest-RAM frames may come from device untyped (CAmkES/libsel4vm: yes,
        #: the VM was given them for that; Microkit: no, RAM regions are RAM).
        self.frames_may_use_device = True
        #: The configuration language fixes are written in (one of FIX_LANGUAGES).
        self.fix_language = "camkes"

    # -- the pool --------------------------------------------------------------------------
    def add_untyped(self, untyped: Untyped, *, given: bool = True) -> None:
        """Give the component a cap to ``untyped`` (takes a slot)."""
        untyped.cptr = self.cspace.allocate(1, untyped, "untyped")
        self.untypeds.append(untyped)
        if given:
            self.given.append(untyped)

        def undo() -> None:
            self.untypeds.remove(untyped)
            if given:
                self.given.remove(untyped)

        self.undo.record(undo)

    def add_frames(self, run: ObjectRun) -> None:
        """Give the component existing frame caps (``mmios``)."""
        run.first_cptr = self.cspace.allocate(run.count, run, "device frame")
        self.runs.append(run)
        self.undo.record(lambda: self.runs.remove(run))

    # -- retype anywhere ---------------------------------------------------------------------
    def retype(self, kind: ObjectKind, size_bits: int, count: int) -> list[ObjectRun]:
        """``count`` objects anywhere in non-device untyped memory."""
        return self.retype_batch([Request(kind, size_bits, count)])[0]

    def retype_batch(self, requests: list[Request]) -> list[list[ObjectRun]]:
        """Place a batch atomically; a shortfall names the untyped objects still needed."""
        # RAM untyped first, device untyped after them (only frames may use those); untyped
        # held for a fixed-address object are not for allocations anywhere.
        pool = [u for u in self.untypeds if not u.device and not u.held] + [
            u for u in self.untypeds if u.device and not u.held
        ]
        states = [[u.watermark, u.size_bits, int(u.device)] for u in pool]
        if not _fits(states, requests):
            message, fix = self._shortfall(pool, requests)
            raise ResourceExhausted(message, fix=fix)
        results: list[list[ObjectRun]] = []
        with self.undo.transaction():
            for request in requests:
                runs: list[ObjectRun] = []
                remaining = request.count
                for untyped in _order(pool, request, lambda u: u.device):
                    while remaining:
                        n = min(untyped.fit(request.size_bits, remaining), RETYPE_FAN_OUT_LIMIT)
                        if not n:
                            break
                        runs.append(self._make_run(untyped, request.kind, request.size_bits, n))
                        remaining -= n
                    if not remaining:
                        break
                results.append(runs)
        return results

    def _shortfall(self, pool: list[Untyped], requests: list[Request]) -> tuple[str, str]:
        """What did not fit, and how many more untyped objects of the pool's size would."""
        wanted = ", ".join(
            f"{r.count} {r.kind.value}{'s' if r.count != 1 else ''} of "
            f"{human_size(1 << r.size_bits)}"
            for r in requests
            if r.count
        )
        free = sum(u.free_bytes for u in pool if not u.device)
        if self.growth_advice is not None:
            return (
                f"{self.owner}: out of untyped memory placing {wanted} "
                f"({human_size(free) if free else '0 B'} free)",
                self.growth_advice,
            )
        bits = max([u.size_bits for u in self.given if not u.device] or [0])
        biggest = max(r.size_bits for r in requests)
        bits = max(bits, biggest)
        base_states = [[u.watermark, u.size_bits, int(u.device)] for u in pool]

        def fits_with(extra: int) -> bool:
            fresh = [[0, bits, 0] for _ in range(extra)]
            states = [s[:] for s in base_states if not s[2]] + fresh
            states += [s[:] for s in base_states if s[2]]
            return _fits(states, requests)

        low, high = 0, 1
        while not fits_with(high):
            low, high = high, high * 2
        while high - low > 1:
            mid = (low + high) // 2
            if fits_with(mid):
                high = mid
            else:
                low = mid
        have = sum(1 for u in self.given if not u.device and u.size_bits == bits)
        fix = (
            f"give {self.owner} {have + high} untyped objects of 2^{bits} "
            f"(simple_untyped{bits}_pool = {have + high})"
        )
        return (
            f"{self.owner}: untyped pool exhausted placing {wanted}: needs {high} more "
            f"untyped of 2^{bits}",
            fix,
        )

    def _make_run(self, untyped: Untyped, kind: ObjectKind, size_bits: int, n: int) -> ObjectRun:
        before = (untyped.watermark, untyped.children, untyped.lost)
        paddr, _lost = untyped.place(size_bits, n)
        run = ObjectRun(kind, paddr, size_bits, n, 0, untyped, untyped.device)
        self.runs.append(run)

        def undo() -> None:
            untyped.watermark, untyped.children, untyped.lost = before
            self.runs.remove(run)

        self.undo.record(undo)
        run.first_cptr = self.cspace.allocate(n, run, kind.value)
        return run

    # -- retype at a fixed address --------------------------------------------------------
    def covering(self, paddr: int) -> Untyped | None:
        """The innermost pool untyped containing ``paddr``."""
        best: Untyped | None = None
        for untyped in self.untypeds:
            if untyped.contains(paddr) and (best is None or untyped.size_bits < best.size_bits):
                best = untyped
        return best

    def retype_at(
        self, kind: ObjectKind, paddr: int, size_bits: int, count: int
    ) -> list[ObjectRun]:
        """``count`` objects at exactly ``paddr`` onwards (1:1 RAM, device frames)."""
        runs: list[ObjectRun] = []
        end = paddr + (count << size_bits)
        with self.undo.transaction():
            cursor = paddr
            while cursor < end:
                untyped = self.covering(cursor)
                if untyped is None:
                    bits = max((end - cursor - 1).bit_length(), self.arch.page_bits[0])
                    base = cursor & ~((1 << bits) - 1)
                    fix = (
                        "give the memory region a phys_addr where the board has memory, or "
                        "leave phys_addr out and let the tool place it"
                        if self.fix_language == "microkit"
                        else f"give {self.owner} a device untyped covering it, e.g. "
                        f'untyped_mmios = ["{base:#x}:{bits}"]'
                    )
                    raise ResourceExhausted(
                        f"{self.owner}: no untyped object covers physical address {cursor:#x} "
                        f"(needed for {human_size(end - cursor)} of {kind.value}s at "
                        f"{cursor:#x})",
                        fix=fix,
                    )
                offset = cursor - untyped.paddr
                if untyped.watermark > offset:
                    bits = max((end - cursor - 1).bit_length(), self.arch.page_bits[0])
                    base = cursor & ~((1 << bits) - 1)
                    fix = (
                        "give the memory region a phys_addr that no other memory region "
                        "uses, or leave phys_addr out and let the tool place it"
                        if self.fix_language == "microkit"
                        else "give the region physical memory of its own: reserve it for "
                        f'{self.owner} with untyped_mmios = ["{base:#x}:{bits}"] (and keep '
                        "other allocations away from it)"
                    )
                    raise ResourceExhausted(
                        f"{self.owner}: physical address {cursor:#x} is already in use "
                        f"(allocated from {untyped})",
                        fix=fix,
                    )
                if untyped.watermark < offset:
                    self.pad(untyped, untyped.paddr + untyped.watermark, cursor)
                n = min((untyped.end - cursor) >> size_bits, (end - cursor) >> size_bits)
                if n <= 0:
                    raise ResourceExhausted(
                        f"{self.owner}: a {human_size(1 << size_bits)} {kind.value} at "
                        f"{cursor:#x} does not fit in {untyped}",
                        fix="use smaller frames or a larger untyped",
                    )
                while n:
                    chunk = min(n, RETYPE_FAN_OUT_LIMIT)
                    runs.append(self._make_run(untyped, kind, size_bits, chunk))
                    n -= chunk
                    cursor += chunk << size_bits
        return runs

    def pad(
        self,
        untyped: Untyped,
        start: int,
        stop: int,
        *,
        held: bool = False,
        label: str = "padding",
    ) -> list[Untyped]:
        """Retype untyped children to move ``untyped``'s watermark from start to stop.

        The children join this allocator's untyped; ``held`` ones are kept for a
        fixed-address object (see :attr:`Untyped.held`).
        """
        children: list[Untyped] = []
        for block, bits in aligned_blocks(
            start, stop, untyped.size_bits - 1, self.arch.min_untyped_bits
        ):
            run = self._make_run(untyped, ObjectKind.UNTYPED, bits, 1)
            assert run.paddr == block
            child = Untyped(block, bits, untyped.device, parent=untyped, label=label, held=held)
            child.cptr = run.first_cptr
            self.untypeds.append(child)
            self.undo.record(partial(self.untypeds.remove, child))
            children.append(child)
        return children

    # -- delete ------------------------------------------------------------------------------
    def delete(self, run: ObjectRun) -> None:
        """Delete a run's objects; an untyped with no children left is reset (seL4 rule)."""
        untyped = run.untyped
        self.cspace.free(run.first_cptr)
        self.runs.remove(run)
        self.undo.record(lambda: self.runs.append(run))
        if untyped is not None:
            before = (untyped.watermark, untyped.children, untyped.lost)
            untyped.children -= run.count
            if untyped.children == 0:
                untyped.watermark = 0
                untyped.lost = 0

            def undo() -> None:
                untyped.watermark, untyped.children, untyped.lost = before

            self.undo.record(undo)

    # -- reporting ---------------------------------------------------------------------------
    def object_counts(self) -> Counter[tuple[ObjectKind, int]]:
        """How many objects of each (kind, size_bits) exist now."""
        counts: Counter[tuple[ObjectKind, int]] = Counter()
        for run in self.runs:
            counts[(run.kind, run.size_bits)] += run.count
        return counts

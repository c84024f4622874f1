"""The address space through libsel4vm's C names against a reference model of the C code
(``tests/memory/c_reference.py``): the same answers, addresses and fault routing."""

from __future__ import annotations

from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

from sel4vmm import libsel4vm as c
from sel4vmm.memory import FaultResult, MemoryFault, Reservation, VmFrame
from sel4vmm.sel4.objects import ObjectKind, ObjectRun
from sel4vmm.vm import PoolRequest, VirtualMachine
from tests.helpers import make_platform
from tests.memory.c_reference import PAGE, CGuestMemory

SPACE = 0x40_0000  # a 4 MiB window keeps collisions frequent

# Mostly page-aligned numbers, sometimes not: C accepts both.
addresses = st.one_of(
    st.integers(0, SPACE // PAGE).map(lambda p: p * PAGE),
    st.integers(0, SPACE),
)
sizes = st.one_of(
    st.integers(0, 8).map(lambda p: p * PAGE),
    st.integers(0, 5 * PAGE),
)
# Powers of two and C's ROUND_UP-by-modulo alignments (item 12 of issue 11).
alignments = st.sampled_from([1, 0x800, 0x1000, 0x1800, 0x2000, 0x3000, 0x10000, 0x40000])


def tag_callback(vm: Any, fault: MemoryFault, cookie: Any) -> FaultResult:
    fault.reply(cookie)
    return FaultResult.HANDLED


class AddressSpaceMachine(RuleBasedStateMachine):
    reservations = Bundle("reservations")

    def __init__(self) -> None:
        super().__init__()
        self.vm = VirtualMachine.create(
            "vm0", make_platform(ram_size=64 << 20), pools=[PoolRequest(20, 8)]
        )
        self.model = CGuestMemory()
        # Frames for vm_map_reservation: each map takes fresh ones from this run.
        self.frames = self.vm.allocator.retype(ObjectKind.FRAME, 12, 128)
        self.next_frame = 0
        self.next_cookie = 1

    def _cookie(self) -> int:
        self.next_cookie += 1
        return self.next_cookie

    @rule(target=reservations, addr=addresses, size=sizes, has_callback=st.booleans())
    def reserve_at(self, addr: int, size: int, has_callback: bool) -> Any:
        cookie = self._cookie()
        callback = tag_callback if has_callback else None
        reservation = c.vm_reserve_memory_at(self.vm, addr, size, callback, cookie)
        expected = self.model.reserve_at(addr, size, has_callback, cookie)
        assert (reservation is not None) == expected, c.vm_last_error(self.vm)
        return reservation

    @rule(addr=addresses, size=sizes)
    def make_anon(self, addr: int, size: int) -> None:
        status = c.vm_memory_make_anon(self.vm, addr, size)
        assert (status == 0) == self.model.make_anon(addr, size), c.vm_last_error(self.vm)

    @rule(target=reservations, size=st.integers(0, 6 * PAGE), align=alignments)
    def reserve_anon(self, size: int, align: int) -> Any:
        cookie = self._cookie()
        reservation, addr = c.vm_reserve_anon_memory(self.vm, size, align, tag_callback, cookie)
        expected = self.model.reserve_anon(size, align, True, cookie)
        if expected is None:
            assert reservation is None
            return None
        assert reservation is not None, c.vm_last_error(self.vm)
        assert addr == reservation.start == expected
        assert reservation.size == size  # the caller's size, as C keeps it
        return reservation

    @rule(reservation=consumes(reservations))
    def free(self, reservation: Reservation | None) -> None:
        if reservation is None:
            return
        assert c.vm_free_reserved_memory(self.vm, reservation) == 0
        assert self.model.free(reservation.cookie)

    @rule(reservation=reservations)
    def map(self, reservation: Reservation | None) -> None:
        if reservation is None or self.next_frame + 6 > sum(r.count for r in self.frames):
            return

        def iterator(addr: int, cookie: Any) -> VmFrame:
            run, index = self._frame(self.next_frame)
            self.next_frame += 1
            return VmFrame(run.cptr(index), "rw", addr // PAGE * PAGE, 12)

        status = c.vm_map_reservation(self.vm, reservation, iterator, None)
        expected = self.model.map(reservation.cookie)
        assert (status == 0) == expected, c.vm_last_error(self.vm)
        if expected:
            lo = reservation.start // PAGE * PAGE
            hi = -(-(reservation.start + reservation.size) // PAGE) * PAGE
            extents = reservation.extents  # every page the reservation touches
            assert extents[0].guest_addr == lo and extents[-1].guest_end == hi
            assert sum(e.size for e in extents) == hi - lo

    def _frame(self, number: int) -> tuple[ObjectRun, int]:
        for run in self.frames:
            if number < run.count:
                return run, number
            number -= run.count
        raise AssertionError("out of test frames")

    @rule(addr=st.integers(0, SPACE + PAGE), length=st.sampled_from([1, 2, 4, 8]))
    def fault(self, addr: int, length: int) -> None:
        fault = MemoryFault(addr, length, False)
        result = self.vm.memory.handle_fault(fault)
        expected, cookie = self.model.fault(addr, length)
        if expected == "callback":
            assert result is FaultResult.HANDLED
            assert fault.read_value == cookie
        elif expected == "error":
            assert result is FaultResult.ERROR
        else:
            assert result is FaultResult.UNHANDLED

    @rule(data=st.data(), length=st.sampled_from([1, 2, 4, 8, 16]))
    def fault_near_an_edge(self, data: st.DataObject, length: int) -> None:
        """Faults at the edges of live reservations and regions, where the rules differ."""
        edges = sorted(
            {a for addr, size in self.model.live() for a in (addr, addr + size)}
            | {a for r in self.model.anon_regions for a in (r.addr, r.addr + r.size)}
        )
        if not edges:
            return
        edge = data.draw(st.sampled_from(edges))
        self.fault(max(0, edge + data.draw(st.integers(-20, 4))), length)

    @invariant()
    def same_reservations(self) -> None:
        live = {(r.start, r.size) for r in self.vm.memory.reservations()}
        assert live == self.model.live()


AddressSpaceMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=40, deadline=None
)
TestAddressSpaceModel = AddressSpaceMachine.TestCase

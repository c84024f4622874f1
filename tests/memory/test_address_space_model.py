"""The address space against a naive reference model (a dict of reservations)."""

from __future__ import annotations

from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

from sel4vmm.errors import AddressSpaceError
from sel4vmm.memory import FaultResult, MemoryFault, Reservation
from sel4vmm.vm import PoolRequest, VirtualMachine
from tests.helpers import make_platform

PAGE = 0x1000
SPACE = 0x40_0000  # a 4 MiB window keeps collisions frequent
ANON_BASE = 0x100_0000
ANON_SIZE = 0x10_0000


def pages(start: int, size: int) -> set[int]:
    return set(range(start // PAGE, (start + size + PAGE - 1) // PAGE))


def tag_callback(vm: Any, fault: MemoryFault, cookie: Any) -> FaultResult:
    fault.reply(cookie)
    return FaultResult.HANDLED


class AddressSpaceMachine(RuleBasedStateMachine):
    reservations = Bundle("reservations")

    def __init__(self) -> None:
        super().__init__()
        self.vm = VirtualMachine.create(
            "vm0", make_platform(ram_size=64 << 20), pools=[PoolRequest(20, 4)]
        )
        self.vm.memory.make_anon(ANON_BASE, ANON_SIZE)
        #: The model: cookie -> (start, size, anonymous).
        self.model: dict[int, tuple[int, int, bool]] = {}
        self.anon_free_pages = pages(ANON_BASE, ANON_SIZE)
        self.next_cookie = 1

    def _claimed_pages(self) -> set[int]:
        claimed: set[int] = set()
        for start, size, _ in self.model.values():
            claimed |= pages(start, size)
        return claimed

    @rule(
        target=reservations,
        start=st.integers(0, SPACE),
        size=st.integers(-1, 5 * PAGE),
    )
    def reserve_at(self, start: int, size: int) -> Any:
        cookie = self.next_cookie
        self.next_cookie += 1
        expect_ok = size > 0 and not (pages(start, size) & self._claimed_pages())
        try:
            reservation = self.vm.memory.reserve_at(start, size, tag_callback, cookie)
        except AddressSpaceError:
            assert not expect_ok
            return None
        assert expect_ok
        self.model[cookie] = (start, size, False)
        return reservation

    @rule(target=reservations, size=st.integers(1, 6 * PAGE), align_bits=st.integers(12, 18))
    def reserve_anon(self, size: int, align_bits: int) -> Any:
        align = 1 << align_bits
        npages = (size + PAGE - 1) // PAGE
        # Model: lowest aligned run of free anonymous pages.
        expected = None
        for first in range(ANON_BASE // PAGE, (ANON_BASE + ANON_SIZE) // PAGE - npages + 1):
            if (first * PAGE) % align == 0 and all(
                p in self.anon_free_pages for p in range(first, first + npages)
            ):
                expected = first * PAGE
                break
        cookie = self.next_cookie
        self.next_cookie += 1
        try:
            reservation = self.vm.memory.reserve_anon(size, align, tag_callback, cookie)
        except AddressSpaceError:
            assert expected is None
            return None
        assert reservation.start == expected
        self.anon_free_pages -= set(range(expected // PAGE, expected // PAGE + npages))
        self.model[cookie] = (reservation.start, npages * PAGE, True)
        return reservation

    @rule(reservation=consumes(reservations))
    def free(self, reservation: Reservation | None) -> None:
        if reservation is None:
            return
        self.vm.memory.free(reservation)
        start, size, anonymous = self.model.pop(reservation.cookie)
        if anonymous:
            self.anon_free_pages |= pages(start, size)

    @rule(addr=st.integers(0, SPACE + PAGE))
    def fault(self, addr: int) -> None:
        owner = [c for c, (s, n, _) in self.model.items() if s <= addr < s + n]
        fault = MemoryFault(addr, 4, False)
        result = self.vm.memory.handle_fault(fault)
        if owner:
            assert result is FaultResult.HANDLED
            assert fault.read_value == owner[0]
        else:
            assert result is FaultResult.UNHANDLED

    @invariant()
    def same_reservations(self) -> None:
        live = {(r.start, r.size) for r in self.vm.memory.reservations()}
        assert live == {(s, n) for s, n, _ in self.model.values()}


AddressSpaceMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=40, deadline=None
)
TestAddressSpaceModel = AddressSpaceMachine.TestCase

"""Guest RAM against a naive reference model (a bytearray and per-page flags)."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from sel4vmm.errors import AddressSpaceError
from sel4vmm.vm import PoolRequest, VirtualMachine
from tests.helpers import make_platform

PAGE = 0x1000
# Two registered regions with a hole between them, and a third adjacent to the second.
REGIONS = [(0x4000_0000, 0x10_0000), (0x4020_0000, 0x8_0000), (0x4028_0000, 0x8_0000)]
LOW = REGIONS[0][0]
HIGH = REGIONS[-1][0] + REGIONS[-1][1]


class GuestRamMachine(RuleBasedStateMachine):
    @initialize()
    def setup(self) -> None:
        self.vm = VirtualMachine.create(
            "vm0", make_platform(ram_size=256 << 20), pools=[PoolRequest(20, 8), PoolRequest(16, 8)]
        )
        for start, size in REGIONS:
            self.vm.ram.register_at(start, size)
        self.memory = bytearray(HIGH - LOW)
        self.is_ram = bytearray(HIGH - LOW)
        self.allocated: set[int] = set()  # page numbers
        for start, size in REGIONS:
            self.is_ram[start - LOW : start - LOW + size] = b"\x01" * size

    def _ram(self, addr: int, size: int) -> bool:
        return (
            size > 0
            and addr >= LOW
            and addr + size <= HIGH
            and all(self.is_ram[addr - LOW : addr - LOW + size])
        )

    @rule(offset=st.integers(-PAGE, HIGH - LOW), data=st.binary(min_size=1, max_size=3 * PAGE))
    def write(self, offset: int, data: bytes) -> None:
        addr = LOW + offset
        try:
            self.vm.ram.write(addr, data)
        except AddressSpaceError:
            assert not self._ram(addr, len(data))
            return
        assert self._ram(addr, len(data))
        self.memory[offset : offset + len(data)] = data

    @rule(offset=st.integers(0, HIGH - LOW - 1), size=st.integers(1, 3 * PAGE))
    def read(self, offset: int, size: int) -> None:
        addr = LOW + offset
        if not self._ram(addr, size):
            return
        assert self.vm.ram.read(addr, size) == bytes(self.memory[offset : offset + size])

    @rule(offset=st.integers(0, HIGH - LOW - 1), size=st.integers(1, 2 * PAGE))
    def touch_sees_what_read_sees(self, offset: int, size: int) -> None:
        addr = LOW + offset
        if not self._ram(addr, size):
            return
        seen = bytearray(size)
        calls: list[tuple[int, int, int]] = []

        def callback(
            vm: object, gaddr: int, view: memoryview, length: int, off: int, cookie: object
        ) -> int:
            assert cookie == "cookie"
            calls.append((gaddr, length, off))
            seen[off : off + length] = view
            return 0

        self.vm.ram.touch(addr, size, callback, "cookie")
        assert bytes(seen) == bytes(self.memory[offset : offset + size])
        for gaddr, length, off in calls:
            assert gaddr == addr + off
            assert gaddr // PAGE == (gaddr + length - 1) // PAGE  # one frame per call

    @rule(
        page=st.integers(0, (HIGH - LOW) // PAGE - 1),
        npages=st.integers(1, 8),
        allocate=st.booleans(),
    )
    def mark(self, page: int, npages: int, allocate: bool) -> None:
        addr = LOW + page * PAGE
        size = npages * PAGE
        try:
            if allocate:
                self.vm.ram.mark_allocated(addr, size)
            else:
                self.vm.ram.free(addr, size)
        except AddressSpaceError:
            assert not self._ram(addr, size)
            return
        assert self._ram(addr, size)
        numbers = set(range(addr // PAGE, addr // PAGE + npages))
        if allocate:
            self.allocated |= numbers
        else:
            self.allocated -= numbers

    def _free_runs(self) -> list[tuple[int, int]]:
        runs: list[tuple[int, int]] = []
        for p in range(LOW // PAGE, HIGH // PAGE):
            free = self.is_ram[p * PAGE - LOW] and p not in self.allocated
            if not free:
                continue
            if runs and runs[-1][0] + runs[-1][1] == p:
                runs[-1] = (runs[-1][0], runs[-1][1] + 1)
            else:
                runs.append((p, 1))
        return runs

    @rule(npages=st.integers(1, 300))
    def allocate(self, npages: int) -> None:
        expected = next((p for p, n in self._free_runs() if n >= npages), None)
        try:
            addr = self.vm.ram.allocate(npages * PAGE)
        except AddressSpaceError:
            assert expected is None
            return
        assert addr == expected * PAGE if expected is not None else False
        self.allocated |= set(range(addr // PAGE, addr // PAGE + npages))

    @invariant()
    def largest_free_matches(self) -> None:
        runs = self._free_runs()
        if not runs:
            return
        start, size = self.vm.ram.largest_free()
        assert size == max(n for _, n in runs) * PAGE
        assert (start // PAGE, size // PAGE) in runs


GuestRamMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)
TestGuestRamModel = GuestRamMachine.TestCase

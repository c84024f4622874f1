"""Guest RAM through libsel4vm's C names against a reference model of ``guest_ram.c``
(``tests/memory/c_reference.py``) and a bytearray of the guest's memory."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from sel4vmm import libsel4vm as c
from sel4vmm.vm import PoolRequest, VirtualMachine
from tests.helpers import make_platform
from tests.memory.c_reference import PAGE, CGuestMemory, CGuestRam

# Registered at start: a hole after the first, an unaligned start, an unaligned size.
REGIONS = [(0x4000_0000, 0x10_0000), (0x4020_0800, 0x7_F800), (0x4028_0000, 0x8_0800)]
# Anonymous memory for vm_ram_register, inside the window the model keeps bytes for.
ANON = (0x4040_0000, 0x4_0000)
LOW = REGIONS[0][0]
HIGH = ANON[0] + ANON[1]


class GuestRamMachine(RuleBasedStateMachine):
    @initialize()
    def setup(self) -> None:
        self.vm = VirtualMachine.create(
            "vm0", make_platform(ram_size=256 << 20), pools=[PoolRequest(20, 8), PoolRequest(16, 8)]
        )
        self.ram = CGuestRam()
        self.anon = CGuestMemory()
        self.memory = bytearray(HIGH - LOW)
        self.is_ram = bytearray(HIGH - LOW)
        for start, size in REGIONS:
            assert c.vm_ram_register_at(self.vm, start, size, False) == 0, c.vm_last_error(self.vm)
            self._registered(start, size)
        assert c.vm_memory_make_anon(self.vm, *ANON) == 0
        assert self.anon.make_anon(*ANON)

    def _registered(self, start: int, size: int) -> None:
        self.ram.register(start, size)
        self.is_ram[start - LOW : start - LOW + size] = b"\x01" * size

    def _all_ram(self, addr: int, size: int) -> bool:
        return (
            addr >= LOW and addr + size <= HIGH and all(self.is_ram[addr - LOW : addr - LOW + size])
        )

    def _touch_ok(self, addr: int, size: int) -> bool:
        if size == 0:  # C's is_ram_region(addr, 0)
            return any(r.start <= addr <= r.start + r.size for r in self.ram.regions)
        # C wants one region to hold the range; DEPARTURE: any registered RAM will do.
        return self._all_ram(addr, size)

    @rule(size=st.integers(1, 0x9000))
    def register_anywhere(self, size: int) -> None:
        addr = c.vm_ram_register(self.vm, size)
        expected = self.anon.reserve_anon(size, PAGE, True, 0)
        assert addr == (expected or 0), c.vm_last_error(self.vm)
        if expected is not None:
            self._registered(expected, size)

    @rule(offset=st.integers(-PAGE, HIGH - LOW), data=st.binary(min_size=0, max_size=3 * PAGE))
    def write(self, offset: int, data: bytes) -> None:
        addr = LOW + offset
        status = c.vm_ram_touch(self.vm, addr, len(data), c.vm_guest_ram_write_callback, data)
        assert (status == 0) == self._touch_ok(addr, len(data)), c.vm_last_error(self.vm)
        if status == 0:
            self.memory[offset : offset + len(data)] = data

    @rule(offset=st.integers(-PAGE, HIGH - LOW), size=st.integers(0, 3 * PAGE))
    def read(self, offset: int, size: int) -> None:
        addr = LOW + offset
        out = bytearray(size)
        status = c.vm_ram_touch(self.vm, addr, size, c.vm_guest_ram_read_callback, out)
        assert (status == 0) == self._touch_ok(addr, size)
        if status == 0:
            assert bytes(out) == bytes(self.memory[offset : offset + size])

    @rule(
        offset=st.integers(-PAGE, HIGH - LOW),
        size=st.one_of(st.integers(1, 8).map(lambda n: n * PAGE), st.integers(1, 0x9000)),
        allocate=st.booleans(),
    )
    def mark(self, offset: int, size: int, allocate: bool) -> None:
        addr = LOW + offset
        if allocate:
            c.vm_ram_mark_allocated(self.vm, addr, size)
        else:
            c.vm_ram_free(self.vm, addr, size)
        refused = bool(c.vm_last_error(self.vm))
        assert refused == (not self._all_ram(addr, size))
        if refused:
            return
        if allocate and self.ram.is_ram_region(addr, size):
            self.ram.mark_allocated(addr, size)  # C's own split
        else:
            # DEPARTURE: vm_ram_free frees (a no-op in C); marking may cross regions.
            self.ram.set_pages(addr, size, allocate)

    @rule(size=st.one_of(st.integers(0, 0x40).map(lambda n: n * PAGE), st.integers(0, 0x30000)))
    def allocate(self, size: int) -> None:
        assert c.vm_ram_allocate(self.vm, size) == self.ram.allocate(size)

    @invariant()
    def same_regions(self) -> None:
        if not hasattr(self, "vm"):
            return
        live = [(r.start, r.size, r.allocated) for r in self.vm.ram.regions()]
        assert live == [(r.start, r.size, r.allocated) for r in self.ram.regions]

    @invariant()
    def largest_free_matches(self) -> None:
        if not hasattr(self, "vm"):
            return
        assert c.vm_ram_find_largest_free_region(self.vm) == self.ram.largest_free()


GuestRamMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)
TestGuestRamModel = GuestRamMachine.TestCase

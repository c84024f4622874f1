"""Several VMs on one emulated board: one physical memory, one seL4, one clock, one loop.

Isolation is proven by running guests (issue 14): two VMs with the same guest RAM base
and size each run the bundled ``memtest`` guest, whose pattern depends on the address
and on the FNV-1a hash of its ``/chosen`` bootargs (``guests/aarch64/memtest.c``); both
pass while their slices alternate, and afterwards the host reads every VM's frames and
finds that VM's pattern there, never the other's.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from sel4vmm.backends.unicorn.board import Console, EmulatedBoard, GuestLayout
from sel4vmm.backends.unicorn.diagnostics import StopReason
from sel4vmm.backends.unicorn.session import bundled_guest
from sel4vmm.backends.unicorn.system import EmulatedSystem
from sel4vmm.backends.unicorn.system_loop import SystemLoop, VmOutcome
from sel4vmm.backends.unicorn.system_session import system_vms
from sel4vmm.errors import Location, Sel4VmmError

#: Every test here runs on both emulated-MMIO paths (conftest.py).
pytestmark = pytest.mark.usefixtures("mmio_path")

DATA = Path(__file__).parent / "data"
RAM = 0x4000_0000
SMALL_RAM = 16 << 20
MASK64 = (1 << 64) - 1
#: memtest starts after its own image, rounded up to a page (its console says so).
TEST_START = 0x4008_6000


def fnv1a(data: bytes) -> int:
    """FNV-1a, 64-bit: offset basis 0xcbf29ce484222325, prime 0x100000001b3."""
    value = 0xCBF2_9CE4_8422_2325
    for byte in data:
        value = ((value ^ byte) * 0x100_0000_01B3) & MASK64
    return value


def memtest_pattern(addr: int, bootargs: str) -> int:
    """What memtest writes at guest address ``addr`` (``pattern()`` in memtest.c)."""
    seed = fnv1a(bootargs.encode())
    return (addr ^ 0x5A5A_A5A5_C3C3_3C3C ^ (addr << 17) ^ seed) & MASK64


def layout(name: str, *, one_to_one: bool) -> GuestLayout:
    return GuestLayout(
        name=name, ram_size=SMALL_RAM, one_to_one=one_to_one, bootargs=f"sel4vmm.vm={name}"
    )


def run_memtests(layouts: list[GuestLayout]) -> tuple[EmulatedSystem, SystemLoop, list[VmOutcome]]:
    system = EmulatedSystem(layouts)
    for each in layouts:
        system.add_board(each, Console())
    entries = [board.load_file(bundled_guest("memtest")) for board in system.boards]
    loop = SystemLoop.of_boards(system.boards)
    try:
        outcomes = loop.run(entries, time_limit=120)
    finally:
        system.close()
    return system, loop, outcomes


def frame_words(board: EmulatedBoard) -> list[tuple[int, int]]:
    """(guest address, the u64 the host reads in its frame) for one word per page."""
    words = []
    for guest in range(TEST_START, RAM + SMALL_RAM, 0x1000):
        ((_, paddr, _),) = board.vm.ram.physical_pieces(guest + 0x88, 8)
        words.append((guest + 0x88, struct.unpack("<Q", board.physmem.view(paddr, 8))[0]))
    return words


def physical_frames(board: EmulatedBoard) -> set[int]:
    return {
        paddr >> 12
        for _, start, size in board.vm.ram.physical_pieces(RAM, SMALL_RAM)
        for paddr in range(start, start + size, 0x1000)
    }


@pytest.mark.parametrize(
    "one_to_one",
    [(False, False), (True, False), (False, True)],
    ids=["pools", "1:1+pools", "pools+1:1"],
)
def test_two_memtests_with_the_same_ram_base_stay_apart(one_to_one: tuple[bool, bool]) -> None:
    layouts = [layout("vm_a", one_to_one=one_to_one[0]), layout("vm_b", one_to_one=one_to_one[1])]
    system, loop, outcomes = run_memtests(layouts)
    for board, outcome in zip(system.boards, outcomes, strict=True):
        text = bytes(board.console.output).decode()
        assert outcome.stop_reason is StopReason.SYSTEM_OFF, text
        seed = fnv1a(board.layout.bootargs.encode())
        assert f"memtest: seed {seed:#x}" in text
        assert f"memtest: testing {TEST_START:#x}..{RAM + SMALL_RAM:#x}" in text
        assert f"memtest: OK {RAM + SMALL_RAM - TEST_START} bytes" in text
        assert outcome.statistics.slices > 10  # long enough to be cut into many slices
    # The two VMs' rounds alternated (equal priorities: round robin).
    trace = list(loop.trace)
    both = min(outcomes[0].rounds, outcomes[1].rounds)
    assert trace[: 2 * both] == [0, 1] * both
    # Disjoint frames, and each holds its own VM's pattern, never the other's.
    a, b = system.boards
    assert not physical_frames(a) & physical_frames(b)
    for board, other in ((a, b), (b, a)):
        for guest, value in frame_words(board):
            assert value == memtest_pattern(guest, board.layout.bootargs), hex(guest)
            assert value != memtest_pattern(guest, other.layout.bootargs)


def test_two_one_to_one_vms_over_the_same_ram_are_refused_where_declared() -> None:
    layouts = [layout("vm_a", one_to_one=True), layout("vm_b", one_to_one=True)]
    where = [Location("two.system", 4, 5), Location("two.system", 12, 5)]
    system = EmulatedSystem(layouts, locations=where, fix_language="microkit")
    system.add_board(layouts[0], Console())
    with pytest.raises(Sel4VmmError) as raised:
        system.add_board(layouts[1], Console())
    error = raised.value
    assert error.location == where[1]
    # The planner's own words (sel4/allocator.py, retype_at), and its Microkit fix.
    assert error.message == (
        "qemu-virt RAM: physical address 0x40000000 is already in use "
        "(allocated from device untyped 2^24 at 0x40000000)"
    )
    assert error.fix is not None
    assert error.fix.startswith(
        "give the memory region a phys_addr that no other memory region uses"
    )
    assert "run --pools" in error.fix
    assert len(system.boards) == 1


def test_a_vm_that_stops_leaves_while_the_other_goes_on() -> None:
    """badaccess faults at once; memtest still finishes, and the run ends with both."""
    layouts = [layout("vm_a", one_to_one=False), layout("vm_b", one_to_one=False)]
    system = EmulatedSystem(layouts)
    for each in layouts:
        system.add_board(each, Console())
    entries = [
        system.boards[0].load_file(bundled_guest("badaccess")),
        system.boards[1].load_file(bundled_guest("memtest")),
    ]
    loop = SystemLoop.of_boards(system.boards)
    outcomes = loop.run(entries, time_limit=120)
    system.close()
    assert outcomes[0].stop_reason is StopReason.GUEST_FAULT
    assert outcomes[1].stop_reason is StopReason.SYSTEM_OFF
    assert outcomes[0].rounds < outcomes[1].rounds
    assert outcomes[0].guest_seconds <= outcomes[1].guest_seconds
    assert "memtest: OK" in bytes(system.boards[1].console.output).decode()


def test_one_clock_and_one_platform_for_every_vm() -> None:
    layouts = [layout("vm_a", one_to_one=False), layout("vm_b", one_to_one=True)]
    system = EmulatedSystem(layouts)
    boards = [system.add_board(each, Console()) for each in layouts]
    assert boards[0].clock is boards[1].clock is system.clock
    assert boards[0].platform is boards[1].platform is system.platform
    assert boards[0].physmem is system.physmem
    system.close()


@pytest.mark.parametrize("name", ["two_vms", "one_to_one_and_pools"])
def test_the_system_files_vms_hold_their_own_patterns_afterwards(name: str) -> None:
    """The same host-side check on the VMs of a ``.system`` file, laid out as ``run`` lays
    them out (``--pools``: vm_a of one_to_one_and_pools stays 1:1, its phys_addr says so)."""
    vms = system_vms(DATA / f"{name}.system", one_to_one=False)
    system, _, outcomes = run_memtests([vm.layout for vm in vms])
    assert [o.stop_reason for o in outcomes] == [StopReason.SYSTEM_OFF] * 2
    a, b = system.boards
    assert (a.layout.one_to_one, b.layout.one_to_one) == (name != "two_vms", False)
    assert not physical_frames(a) & physical_frames(b)
    for board, other in ((a, b), (b, a)):
        for guest, value in frame_words(board):
            assert value == memtest_pattern(guest, board.layout.bootargs), hex(guest)
            assert value != memtest_pattern(guest, other.layout.bootargs)

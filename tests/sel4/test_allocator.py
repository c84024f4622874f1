"""The VM allocator and the platform: pools, 1:1, shortfall messages, isolation."""

from __future__ import annotations

import pytest

from sel4vmm.errors import ResourceExhausted, Sel4VmmError
from sel4vmm.sel4.objects import ObjectKind
from sel4vmm.sel4.physmem import MemoryRange
from sel4vmm.vm import DeviceFramesRequest, DeviceUntypedRequest, PoolRequest, VirtualMachine
from tests.helpers import make_platform

SEED_000_BASE = 0x40000000
SEED_000_SIZE = 0x20000000


def test_seed_000_needs_33_untyped_of_2_24() -> None:
    """512 MiB needs 32 untyped of 2^24 for frames plus one for the overhead."""
    platform = make_platform()
    vm = VirtualMachine.create("vm0", platform, pools=[PoolRequest(24, 33)])
    vm.ram.register_at(SEED_000_BASE, SEED_000_SIZE)
    report = vm.resources()
    assert report.objects[("frame", 12)] == SEED_000_SIZE >> 12
    assert report.objects[("page table", 12)] == 256 + 1
    assert report.untyped_used[(24, False)] == 33


def test_seed_000_with_32_untyped_says_one_more() -> None:
    platform = make_platform()
    vm = VirtualMachine.create("vm0", platform, pools=[PoolRequest(24, 32)])
    before = vm.resources()
    with pytest.raises(ResourceExhausted) as info:
        vm.ram.register_at(SEED_000_BASE, SEED_000_SIZE)
    assert "needs 1 more untyped of 2^24" in str(info.value)
    assert "simple_untyped24_pool = 33" in str(info.value)
    # Nothing changed: no reservation, no objects, no slots.
    assert vm.memory.reservations() == []
    assert vm.resources() == before


def test_shortfall_counts_many_missing_untyped() -> None:
    platform = make_platform()
    vm = VirtualMachine.create("vm0", platform, pools=[PoolRequest(24, 10)])
    with pytest.raises(ResourceExhausted, match="needs 23 more untyped of 2\\^24"):
        vm.ram.register_at(SEED_000_BASE, SEED_000_SIZE)


ONE_TO_ONE_RAM = [MemoryRange(SEED_000_BASE, SEED_000_SIZE, name="vm0 1:1 RAM")]


def test_seed_000_one_to_one_uses_device_untyped_and_one_pool_untyped() -> None:
    platform = make_platform(device_reserved=ONE_TO_ONE_RAM)
    vm = VirtualMachine.create(
        "vm0",
        platform,
        pools=[PoolRequest(24, 1)],
        device_untypeds=[DeviceUntypedRequest(0x40000000, 29)],
    )
    vm.ram.register_at(SEED_000_BASE, SEED_000_SIZE, one_to_one=True)
    pieces = vm.ram.physical_pieces(SEED_000_BASE, SEED_000_SIZE)
    assert pieces == [(SEED_000_BASE, SEED_000_BASE, SEED_000_SIZE)]
    # The tables came from the single pool untyped, the frames from the device untyped.
    used = vm.resources().untyped_used
    assert used[(24, False)] == 1
    assert used[(29, True)] == 1


def test_one_to_one_without_covering_untyped_names_the_untyped_mmio() -> None:
    platform = make_platform()
    vm = VirtualMachine.create("vm0", platform, pools=[PoolRequest(24, 1)])
    with pytest.raises(ResourceExhausted, match=r'untyped_mmios = \["0x60000000:29"\]'):
        vm.ram.register_at(0x60000000, SEED_000_SIZE, one_to_one=True)
    assert vm.memory.reservations() == []


def test_one_to_one_pads_the_untyped_up_to_the_address() -> None:
    platform = make_platform(device_reserved=ONE_TO_ONE_RAM)
    vm = VirtualMachine.create(
        "vm0",
        platform,
        pools=[PoolRequest(24, 1)],
        device_untypeds=[DeviceUntypedRequest(0x40000000, 29)],
    )
    vm.ram.register_at(0x48000000, 0x100000, one_to_one=True)
    assert vm.ram.physical_pieces(0x48000000, 0x1000)[0][1] == 0x48000000
    padding = [u for u in vm.allocator.untypeds if u.label == "padding"]
    assert [(u.paddr, u.size_bits) for u in padding] == [(0x40000000, 27)]
    # The padding untyped is usable: more 1:1 RAM below the first region works.
    vm.ram.register_at(0x40000000, 0x100000, one_to_one=True)
    vm.ram.register_at(0x47000000, 0x1000, one_to_one=True)
    with pytest.raises(ResourceExhausted, match="already in use"):
        vm.allocator.retype_at(ObjectKind.FRAME, 0x40000000, 12, 1)


def test_two_vms_with_the_same_ram_base_are_isolated() -> None:
    """Seed 000: same RAM_BASE and RAM_SIZE for two VMs, and the MMU keeps them apart."""
    platform = make_platform()
    vms = [VirtualMachine.create(f"vm{i}", platform, pools=[PoolRequest(24, 33)]) for i in (0, 1)]
    for vm in vms:
        vm.ram.register_at(SEED_000_BASE, SEED_000_SIZE)
    vms[0].ram.write(SEED_000_BASE + 0x1234, b"vm0 secret")
    vms[1].ram.write(SEED_000_BASE + 0x1234, b"vm1 public")
    assert vms[0].ram.read(SEED_000_BASE + 0x1234, 10) == b"vm0 secret"
    assert vms[1].ram.read(SEED_000_BASE + 0x1234, 10) == b"vm1 public"
    frames = [
        {(p, n) for _, p, n in vm.ram.physical_pieces(SEED_000_BASE, SEED_000_SIZE)} for vm in vms
    ]
    spans = [sorted(f) for f in frames]
    for p0, n0 in spans[0]:
        for p1, n1 in spans[1]:
            assert p0 + n0 <= p1 or p1 + n1 <= p0


def test_board_too_small_for_the_pools() -> None:
    platform = make_platform(ram_size=256 << 20)
    with pytest.raises(ResourceExhausted, match="more RAM"):
        VirtualMachine.create("vm0", platform, pools=[PoolRequest(24, 33)])
    # Rolled back: the board's RAM is all still there for a smaller VM.
    VirtualMachine.create("vm0", platform, pools=[PoolRequest(24, 15)])


def test_illegal_untyped_size() -> None:
    platform = make_platform()
    with pytest.raises(Sel4VmmError, match="do not exist"):
        VirtualMachine.create("vm0", platform, pools=[PoolRequest(3, 1)])


def test_device_frames_for_mmios() -> None:
    platform = make_platform()
    vm = VirtualMachine.create(
        "vm0",
        platform,
        pools=[PoolRequest(24, 1)],
        device_frames=[DeviceFramesRequest(0x9000000, 0x1000)],
    )
    run, index = vm.device_frame_run(0x9000000, 0x1000)
    assert (run.kind, run.paddr, run.device, index) == (ObjectKind.FRAME, 0x9000000, True, 0)
    with pytest.raises(Sel4VmmError, match="whole number"):
        VirtualMachine.create(
            "vm1", platform, pools=[], device_frames=[DeviceFramesRequest(0x9001000, 0x800)]
        )


def test_large_frames_need_fewer_tables() -> None:
    platform = make_platform()
    vm = VirtualMachine.create("vm0", platform, pools=[PoolRequest(30, 1), PoolRequest(24, 1)])
    vm.ram.register_at(0x40000000, 0x20000000, page_bits=21)
    objects = vm.resources().objects
    assert objects[("frame", 21)] == 256
    assert objects[("page table", 12)] == 1  # one level-2 table, no level-3 tables
    # A 2^31 untyped must be 2^31-aligned: a 2 GiB board at 0x40000000 has none, a 4 GiB
    # one has one at 0x80000000.
    with pytest.raises(ResourceExhausted, match="out of untyped memory"):
        VirtualMachine.create("vm1", make_platform(), pools=[PoolRequest(31, 1)])
    platform2 = make_platform(ram_size=4 << 30)
    vm2 = VirtualMachine.create("vm0", platform2, pools=[PoolRequest(31, 1)])
    vm2.ram.register_at(0x40000000, 1 << 30, page_bits=30)
    assert vm2.resources().objects[("frame", 30)] == 1
    assert vm2.resources().objects[("page table", 12)] == 0


def test_ram_frames_fall_back_to_device_untyped_like_vm_minimal() -> None:
    """camkes-vm-examples vm_minimal on qemu-arm-virt: a pool of 12 x 2^24 plus
    untyped_mmios 0x40000000:29 backs 512 MiB: frames use the device untyped first
    (vka_alloc_frame_maybe_device), kernel objects and tables stay in RAM untyped."""
    platform = make_platform(device_reserved=ONE_TO_ONE_RAM)
    vm = VirtualMachine.create(
        "vm0",
        platform,
        pools=[PoolRequest(24, 12)],
        device_untypeds=[DeviceUntypedRequest(0x40000000, 29)],
    )
    vm.ram.register_at(SEED_000_BASE, SEED_000_SIZE)
    used = vm.resources().untyped_used
    assert used[(24, False)] == 1
    assert used[(29, True)] == 1
    frames = [r for r in vm.allocator.runs if r.kind is ObjectKind.FRAME]
    assert all(r.device for r in frames)
    tables = [r for r in vm.allocator.runs if r.kind is ObjectKind.PAGE_TABLE]
    assert tables and all(not r.device for r in tables)

"""Who owns physical address X, answered from the seL4 model."""

from __future__ import annotations

from sel4vmm.sel4.ownership import PhysicalOwner
from sel4vmm.sel4.physmem import MemoryRange
from sel4vmm.vm import PoolRequest, VirtualMachine
from tests.helpers import make_platform


def test_every_kind_of_owner_is_named() -> None:
    platform = make_platform(ram_size=256 << 20)
    a = VirtualMachine.create("vm-a", platform, pools=[PoolRequest(24, 2)])
    b = VirtualMachine.create("vm-b", platform, pools=[PoolRequest(24, 2)])
    a.ram.register_at(0x40000000, 0x100000)
    b.ram.register_at(0x40000000, 0x100000)
    frame_a = a.ram.physical_pieces(0x40000000, 1)[0][1]
    frame_b = b.ram.physical_pieces(0x40000000, 1)[0][1]
    assert b.tables.root is not None
    ownership = a.ownership
    assert ownership is b.ownership
    assert ownership.owner_of(frame_a) == PhysicalOwner("frames", "vm-a")
    assert ownership.owner_of(frame_b) == PhysicalOwner("frames", "vm-b")
    assert ownership.owner_of(b.tables.root.paddr) == PhysicalOwner(
        "kernel objects", "vm-b", "vspace"
    )
    unused = b.allocator.given[-1]
    assert ownership.owner_of(unused.end - 0x1000) == PhysicalOwner("untyped", "vm-b")
    assert ownership.owner_of(0x40000000 + (256 << 20) - 0x1000) == PhysicalOwner("free")
    assert str(ownership.owner_of(0x08000000)) == "the device window devices"
    # seL4 makes device untyped of everything that is not RAM, up to the physical limit.
    assert str(ownership.owner_of(0x100)) == "device memory"
    assert ownership.owner_of(1 << 40) == PhysicalOwner("nothing")


def test_reserved_ram_and_pieces_cut_where_the_owner_changes() -> None:
    platform = make_platform(ram_size=64 << 20)
    # What Sel4Platform(reserved=...) does for the kernel image: no untyped at all.
    platform = type(platform)(
        platform.physmem,
        platform.arch,
        reserved=[MemoryRange(0x40000000, 0x100000)],
        board_name="qemu-virt",
    )
    vm = VirtualMachine.create("vm0", platform, pools=[PoolRequest(24, 1)])
    vm.ram.register_at(0x40000000, 0x10000)
    frame = vm.ram.physical_pieces(0x40000000, 0x10000)[0][1]
    pieces = vm.ownership.pieces(0x400FF000, 0x2000)
    assert [(lo, hi, o.what) for lo, hi, o in pieces] == [
        (0x400FF000, 0x40100000, "reserved"),
        (0x40100000, 0x40101000, pieces[1][2].what),
    ]
    assert pieces[1][2].what != "reserved"
    assert vm.ownership.owner_of(frame).what == "frames"
    assert "seL4 and the VMM" in str(pieces[0][2])

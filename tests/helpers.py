"""Builders shared by the tests: small seL4 platforms like the boards users run."""

from __future__ import annotations

from pathlib import Path

from sel4vmm.sel4.arch import AARCH64
from sel4vmm.sel4.physmem import MemoryRange, PhysicalMemory
from sel4vmm.sel4.platform import Sel4Platform

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
REALWORLD = SHARED / "realworld"


def make_platform(
    ram_size: int = 2 << 30,
    ram_base: int = 0x40000000,
    device_reserved: list[MemoryRange] | None = None,
) -> Sel4Platform:
    """A QEMU-virt-like board: RAM at ``ram_base`` and the device window below it.

    ``device_reserved`` RAM becomes device untyped (for 1:1 guests), as a
    ``reserved-memory`` overlay does on a real board.
    """
    physmem = PhysicalMemory(
        [
            MemoryRange(0x08000000, 0x02000000, device=True, name="devices"),
            MemoryRange(ram_base, ram_size, name="ram"),
        ]
    )
    return Sel4Platform(
        physmem, AARCH64, device_reserved=device_reserved or [], board_name="qemu-virt"
    )

"""``untyped_mmios`` from the capDL loader's printed untyped list, or the board model.

The log lines are made with the loader's own format strings (seL4/capdl
01b3bd48dd0097ed15f4737c8134d47b66e780a2, ``capdl-loader-app/src/main.c``):
``"  Untyped memory (%d)"`` and ``"    0x%016" PRIxPTR " - 0x%016" PRIxPTR " (%s)"`` with
``"device"`` or ``"memory"``, behind a ZF_LOG prefix.
"""

from __future__ import annotations

import pytest

from sel4vmm.boards import load_board
from sel4vmm.errors import Sel4VmmError
from sel4vmm.plan.untyped_mmios import (
    PrintedUntyped,
    cover_guest_ram,
    from_boot_untypeds,
    parse_untyped_log,
)
from sel4vmm.sel4.arch import AARCH64
from sel4vmm.sel4.platform import boot_untypeds_of_ram

PREFIX = "capdl-loader-app/src/main.c:487 "


def loader_log(untypeds: list[tuple[int, int, bool]], announce: int | None = None) -> str:
    count = len(untypeds) if announce is None else announce
    # The loader's own printf formats, verbatim.
    lines = ["Bootstrapping kernel", PREFIX + "  Untyped memory (%d)" % count]  # noqa: UP031
    for paddr, end, device in untypeds:
        kind = "device" if device else "memory"
        lines.append(PREFIX + "    0x%016x - 0x%016x (%s)" % (paddr, end, kind))  # noqa: UP031
    return "\n".join([*lines, "Loader is running in domain 0", ""])


# A QEMU virt boot with the VM reservation: 0x40000000..0x60000000 is device untyped.
QEMU = [
    (0x0, 0x8000000, True),
    (0x40000000, 0x60000000, True),
    (0x60400000, 0x60800000, False),
    (0x60800000, 0x61000000, False),
    (0x61000000, 0x62000000, False),
    (0x62000000, 0x64000000, False),
]


def test_parse_the_loader_s_list() -> None:
    untypeds = parse_untyped_log(loader_log(QEMU), "boot.log")
    assert untypeds[1] == PrintedUntyped(0x40000000, 29, True, 4)
    assert [u.device for u in untypeds] == [True, True, False, False, False, False]


def test_seed_000_guest_ram_is_one_line() -> None:
    untypeds = parse_untyped_log(loader_log(QEMU), "boot.log")
    result = cover_guest_ram(untypeds, 0x40000000, 512 << 20)
    assert result.camkes_lines("vm0") == [
        "vm0.untyped_mmios = [",
        '    "0x40000000:29", // device untyped 0x40000000-0x60000000 (log line 4)',
        "];",
    ]
    # 0x60400000..0x64000000 outside guest RAM: 0x61000000 and 0x62000000, 0x63000000.
    assert (result.pool_bits, result.pool_count) == (24, 3)
    assert result.kernel_ram_in_guest_ram == 0


def test_ram_across_untyped_gets_one_aligned_block_per_piece() -> None:
    untypeds = parse_untyped_log(loader_log(QEMU), "boot.log")
    result = cover_guest_ram(untypeds, 0x40800000, 0x1F800000)
    blocks = [(paddr, bits) for paddr, bits, _ in result.entries]
    assert blocks == [(0x40800000, 23), (0x41000000, 24), (0x42000000, 25), (0x44000000, 26),
                      (0x48000000, 27), (0x50000000, 28)]  # fmt: skip
    assert sum(1 << bits for _paddr, bits in blocks) == 0x1F800000


def test_ram_in_no_untyped_is_refused() -> None:
    untypeds = parse_untyped_log(loader_log(QEMU), "boot.log")
    with pytest.raises(Sel4VmmError, match=r"\[0x60000000, 0x60400000\) is in no untyped"):
        cover_guest_ram(untypeds, 0x50000000, 0x20000000)


def test_a_log_without_the_list_or_cut_short() -> None:
    with pytest.raises(Sel4VmmError, match="has no untyped list") as caught:
        parse_untyped_log("ELF-loader started\n", "boot.log")
    assert caught.value.fix is not None and "CapDLLoaderPrintUntypeds" in caught.value.fix
    with pytest.raises(Sel4VmmError, match="announced 9 untyped but the log lists 6"):
        parse_untyped_log(loader_log(QEMU, announce=9), "boot.log")
    with pytest.raises(Sel4VmmError, match="naturally aligned"):
        parse_untyped_log(loader_log([(0x1000, 0x4000, False)]), "boot.log")


def test_the_board_model_stands_in_for_a_log() -> None:
    board = load_board("qemu_virt_aarch64")
    untypeds = from_boot_untypeds(
        boot_untypeds_of_ram(board.ram, AARCH64, device_reserved=board.reserved_memory)
    )
    result = cover_guest_ram(
        untypeds, 0x40000000, 512 << 20, board_ram=[(r.base, r.size) for r in board.ram]
    )
    assert [(p, b, o.device) for p, b, o in result.entries] == [(0x40000000, 29, True)]
    # The kernel keeps 0x60000000..0xc0000000 (1.5 GiB): 96 untyped of 16 MiB.
    assert result.pool_count == 96


def test_the_board_model_refuses_ram_the_board_lacks() -> None:
    board = load_board("qemu_virt_aarch64", 1 << 30)
    untypeds = from_boot_untypeds(
        boot_untypeds_of_ram(board.ram, AARCH64, device_reserved=board.reserved_memory)
    )
    with pytest.raises(Sel4VmmError, match="is not memory on this board"):
        cover_guest_ram(
            untypeds, 0xC0000000, 256 << 20, board_ram=[(r.base, r.size) for r in board.ram]
        )

"""Guest isolation on the emulated board, through every path a guest can reach.

Sentinels are written into physical memory that is not the guest's — memory reserved for
seL4 and the VMM, the VM's own kernel objects, another VM's RAM, free board RAM — and a
guest then tries to read and overwrite each one, through its CPU and through the DMA
engine with and without ``--smmu``.  What must hold (issue 10): no sentinel is ever read
or written without a report.  The CPU can only reach its own frames (anything else
faults and stops the VM with a diagnostic); DMA without an SMMU reaches physical memory
and is reported with whose memory it touched; DMA behind the SMMU is confined.

Also seed 000's DMA story end to end with the bundled ``dma`` guest.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from dataclasses import dataclass

import pytest

from sel4vmm.backends.unicorn.board import DMA_GUEST_ADDRESS, Console, EmulatedBoard, GuestLayout
from sel4vmm.backends.unicorn.cpu import StopReason
from sel4vmm.backends.unicorn.session import bundled_guest, run_guest
from sel4vmm.devices.dma_engine import (
    DMA_CTRL,
    DMA_DST_HI,
    DMA_DST_LO,
    DMA_LEN,
    DMA_SRC_HI,
    DMA_SRC_LO,
)
from sel4vmm.vm import PoolRequest, VirtualMachine
from tests.backends.unicorn.test_unicorn_faults import ldr_w, mov64, str_w, system_off

#: Every test here runs on both emulated-MMIO paths (conftest.py).
pytestmark = pytest.mark.usefixtures("mmio_path")

RAM = 0x4000_0000
CODE = RAM + 0x8_0000
BUFFER = RAM + 0x10_0000  # the guest's own buffer for DMA
SENTINEL = b"SENTINEL"


@dataclass
class Sentinel:
    paddr: int
    whose: str  # what the ownership model must call it


def make_board(one_to_one: bool, smmu: bool = False) -> EmulatedBoard:
    layout = GuestLayout(ram_size=16 << 20, one_to_one=one_to_one, smmu=smmu)
    return EmulatedBoard(layout, Console())


def place_sentinels(board: EmulatedBoard) -> list[Sentinel]:
    """Sentinels in physical memory outside the guest's frames, each owner kind once."""
    other = VirtualMachine.create("other", board.platform, pools=[PoolRequest(24, 1)])
    other.ram.register_at(RAM, 0x10_0000)
    assert board.vm.tables.root is not None
    sentinels = [
        Sentinel(other.ram.physical_pieces(RAM + 0x2000, 8)[0][1], "frames of other"),
        Sentinel(board.vm.tables.root.paddr, "kernel objects of linux (vspace)"),
        Sentinel(0x7FFF_F000, "free board RAM"),
    ]
    if not board.layout.one_to_one:
        # Pools: seL4 and the VMM keep the first 16 MiB of board RAM.
        sentinels.append(Sentinel(RAM + 0x3000, "RAM reserved for seL4 and the VMM"))
    extents = board.vm.memory.extents()
    for sentinel in sentinels:
        owner = str(board.vm.ownership.owner_of(sentinel.paddr))
        assert owner.startswith(sentinel.whose), (hex(sentinel.paddr), owner)
        assert not any(e.paddr <= sentinel.paddr < e.paddr + e.size for e in extents)
        board.physmem.view(sentinel.paddr, len(SENTINEL))[:] = SENTINEL
    return sentinels


def intact(board: EmulatedBoard, sentinel: Sentinel) -> bool:
    return bytes(board.physmem.view(sentinel.paddr, len(SENTINEL))) == SENTINEL


def run(board: EmulatedBoard, words: list[int]) -> StopReason:
    board.vm.ram.write(CODE, struct.pack(f"<{len(words)}I", *words))
    return board.loop.run(CODE, time_limit=10)


def cpu_probe(addr: int) -> list[int]:
    """Read the word at ``addr``, write 0x0BADBEEF there, power off."""
    return [
        *mov64(1, addr),
        ldr_w(3, 1),
        *mov64(2, 0x0BADBEEF),
        str_w(2, 1),
        *system_off(),
    ]


def dma_words(source: int, destination: int, length: int) -> list[int]:
    """Program the DMA engine (as guests/aarch64/dma.c does) and start it."""
    words = [*mov64(1, DMA_GUEST_ADDRESS)]
    for offset, value in (
        (DMA_SRC_LO, source & 0xFFFF_FFFF),
        (DMA_SRC_HI, source >> 32),
        (DMA_DST_LO, destination & 0xFFFF_FFFF),
        (DMA_DST_HI, destination >> 32),
        (DMA_LEN, length),
        (DMA_CTRL, 1),
    ):
        words += [*mov64(4, DMA_GUEST_ADDRESS + offset), *mov64(2, value), str_w(2, 4)]
    return words


@pytest.mark.parametrize("one_to_one", [True, False], ids=["1:1", "pools"])
def test_the_cpu_never_reaches_a_sentinel(one_to_one: bool) -> None:
    for index in range(5):
        board = make_board(one_to_one)
        sentinels = place_sentinels(board)
        if index >= len(sentinels):
            board.close()
            break
        sentinel = sentinels[index]
        reason = run(board, cpu_probe(sentinel.paddr))
        assert all(intact(board, s) for s in sentinels)
        reservation = board.vm.memory.find(sentinel.paddr)
        if reservation is not None and reservation.extent_at(sentinel.paddr) is not None:
            # The address is guest RAM: stage 2 sent the access to the guest's own frame.
            assert reason is StopReason.SYSTEM_OFF
            assert board.vm.ram.read(sentinel.paddr, 4) == struct.pack("<I", 0x0BADBEEF)
        else:
            assert reason is not StopReason.SYSTEM_OFF  # stopped, with the report:
            diagnostic = board.vcpu.diagnostic
            assert diagnostic is not None and f"{sentinel.paddr:#x}" in str(diagnostic)
        board.close()


@pytest.mark.parametrize("one_to_one", [True, False], ids=["1:1", "pools"])
def test_dma_without_an_smmu_reports_every_sentinel_it_touches(one_to_one: bool) -> None:
    board = make_board(one_to_one)
    sentinels = place_sentinels(board)
    words: list[int] = []
    for i, sentinel in enumerate(sentinels):
        words += dma_words(sentinel.paddr, BUFFER + 0x100 * i, len(SENTINEL))  # read it
        words += dma_words(BUFFER + 0x800, sentinel.paddr, len(SENTINEL))  # overwrite it
    assert run(board, [*words, *system_off()]) is StopReason.SYSTEM_OFF
    for sentinel in sentinels:
        assert not intact(board, sentinel)  # hardware without an SMMU really writes ...
        reports = [w for w in board.warnings if f"[{sentinel.paddr:#x}," in w]
        # ... and both the read and the write are reported, with whose memory it is.
        assert any("DMA read" in w and sentinel.whose in w for w in reports), board.warnings
        assert any("DMA write" in w and sentinel.whose in w for w in reports), board.warnings
    board.close()


@pytest.mark.parametrize("one_to_one", [True, False], ids=["1:1", "pools"])
def test_dma_behind_the_smmu_never_reaches_a_sentinel(one_to_one: bool) -> None:
    board = make_board(one_to_one, smmu=True)
    sentinels = place_sentinels(board)
    words: list[int] = []
    for i, sentinel in enumerate(sentinels):
        words += dma_words(sentinel.paddr, BUFFER + 0x100 * i, len(SENTINEL))
        words += dma_words(BUFFER + 0x800, sentinel.paddr, len(SENTINEL))
    assert run(board, [*words, *system_off()]) is StopReason.SYSTEM_OFF
    for i, sentinel in enumerate(sentinels):
        assert intact(board, sentinel)
        if board.vm.ram.is_ram(sentinel.paddr, len(SENTINEL)):
            # A guest-physical RAM address: translated to the guest's own frames.
            assert board.vm.ram.read(BUFFER + 0x100 * i, 8) == board.vm.ram.read(sentinel.paddr, 8)
        else:
            assert any(
                "SMMU fault" in w and f"guest-physical {sentinel.paddr:#x}" in w
                for w in board.warnings
            ), board.warnings
    assert not any("no SMMU" in w for w in board.warnings)
    board.close()


def test_dma_reports_are_bounded() -> None:
    board = make_board(one_to_one=False)
    words: list[int] = []
    for _ in range(40):
        words += dma_words(RAM + 0x3000, BUFFER, 8)
    assert run(board, [*words, *system_off()]) is StopReason.SYSTEM_OFF
    # Each transfer is reported twice: its source (reserved memory) and its destination
    # (the guest-physical buffer's number is, physically, reserved memory too).
    assert board.dma.reported == 80
    assert len(board.warnings) == 17 and board.warnings[-1] == "dma: further reports suppressed"
    board.close()


# -- seed 000's story: 1:1 for DMA without an SMMU ----------------------------------------
def test_pools_without_an_smmu_reach_foreign_memory_and_say_so() -> None:
    result = run_guest(kernel_path=bundled_guest("dma"), one_to_one=False)
    assert result.ok
    assert "dma: MISMATCH" in result.console_text
    assert result.warnings
    assert all("no SMMU" in w for w in result.warnings)
    assert any(
        "RAM reserved for seL4 and the VMM" in w and "DMA write" in w for w in result.warnings
    )


def test_pools_behind_an_smmu_are_confined_and_correct() -> None:
    result = run_guest(kernel_path=bundled_guest("dma"), one_to_one=False, smmu=True)
    assert result.ok
    assert "dma: OK 4096 bytes copied" in result.console_text
    assert result.warnings == []


def test_one_to_one_is_correct_without_an_smmu_and_silent() -> None:
    result = run_guest(kernel_path=bundled_guest("dma"), one_to_one=True)
    assert result.ok
    assert "dma: OK 4096 bytes copied" in result.console_text
    assert result.warnings == []


def test_run_prints_the_dma_warning_and_carries_on() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sel4vmm", "run", "--kernel", "dma", "--pools"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert done.returncode == 0, done.stderr
    assert "dma: MISMATCH" in done.stdout
    assert "warning: dma: no SMMU" in done.stderr
    smmu = subprocess.run(
        [sys.executable, "-m", "sel4vmm", "run", "--kernel", "dma", "--pools", "--smmu"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert smmu.returncode == 0, smmu.stderr
    assert "dma: OK 4096 bytes copied" in smmu.stdout
    assert "warning" not in smmu.stderr

"""Benchmark the unicorn backend against raw unicorn, measured in the same run.

1. Emulated MMIO round trip: a guest loop of 32-bit loads from an emulated register,
   through the full VMM fault path (address map -> ``vm.memory.handle_fault`` ->
   reservation callback) versus a raw unicorn ``mmio_map`` callback.  Target: <= 2x.
   The VMM runs on the C MMIO trampoline (``sel4vmm.native._ucmmio``, when built) and on
   the pure-Python path (``SEL4VMM_PURE_PYTHON=1``), interleaved with the raw baseline in
   ``--repeat`` rounds; the output names the path each row used.
2. Guest instruction rate: the bundled memtest guest on the VMM versus the same binary on
   a bare unicorn with plain ``mem_map`` RAM, free-running and with the virtual timer
   armed (counted slices), in ``--repeat`` alternating rounds.  Target: >= 0.9x.
3. Virtual IRQ injection: a guest rings a doorbell register; the VMM injects SPI 40, the
   guest takes the IRQ, acknowledges (IAR) and completes (EOIR) it.  Reported per IRQ.

Prints figures only; there is no pass/fail on timing.  Run:
``PYTHONPATH=src python bench/bench_unicorn.py [--repeat N]``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import struct
from collections.abc import Iterator
from typing import Any

from unicorn import UC_HOOK_INTR, UC_PROT_ALL
from unicorn.arm64_const import UC_ARM64_REG_X0, UC_ARM64_REG_X20

from sel4vmm.backends.unicorn.board import Console, EmulatedBoard, GuestLayout
from sel4vmm.backends.unicorn.devicetree import GuestDeviceTree, build_device_tree
from sel4vmm.backends.unicorn.engine import AArch64Engine, new_aarch64_engine
from sel4vmm.backends.unicorn.session import bundled_guest
from sel4vmm.backends.unicorn.timer import CNTV_CTL_EL0, CNTV_CVAL_EL0, CTL_ENABLE
from sel4vmm.devices.gicv2 import GICC_CTLR, GICC_PMR, GICD_CTLR, GICD_ISENABLER
from sel4vmm.memory import FaultResult, MemoryFault
from sel4vmm.native import PURE_PYTHON_VARIABLE, import_error
from timing import timed

RAM = 0x4000_0000
CODE = RAM + 0x8_0000
DEVICE = 0x0A00_0000
MMIO_LOADS = 200_000
MEMTEST_RAM = 64 << 20
IRQS = 20_000


def mov64(rd: int, value: int) -> list[int]:
    words = [0xD2800000 | ((value & 0xFFFF) << 5) | rd]
    for hw in (1, 2, 3):
        words.append(0xF2800000 | (hw << 21) | (((value >> (16 * hw)) & 0xFFFF) << 5) | rd)
    return words


HVC0 = 0xD4000002
SUBS_X3_1 = 0xF1000463  # subs x3, x3, #1
B_NE_BACK_2 = 0x54FFFFC1  # b.ne .-8
SYSTEM_OFF = [*mov64(0, 0x8400_0008), HVC0]


def pack(words: list[int]) -> bytes:
    return struct.pack(f"<{len(words)}I", *words)


# -- 1. MMIO round trip ----------------------------------------------------------------------
def mmio_program(loads: int) -> bytes:
    ldr_w2_x1 = 0xB9400022
    return pack(
        [*mov64(1, DEVICE), *mov64(3, loads), ldr_w2_x1, SUBS_X3_1, B_NE_BACK_2, *SYSTEM_OFF]
    )


def raw_mmio(loads: int) -> float:
    uc = new_aarch64_engine()
    uc.mem_map(RAM, 16 << 20, UC_PROT_ALL)
    code = mmio_program(loads)
    uc.mem_write(CODE, code)
    uc.mmio_map(DEVICE, 0x1000, lambda _uc, _off, _size, _d: 0x1234, None, lambda *_: None, None)
    uc.hook_add(UC_HOOK_INTR, lambda u, _n, _d: u.emu_stop())
    return timed(lambda: uc.emu_start(CODE, CODE + len(code)))


@contextlib.contextmanager
def mmio_path(pure_python: bool) -> Iterator[None]:
    """Boards made inside choose the pure-Python path (or the default one) for MMIO."""
    saved = os.environ.get(PURE_PYTHON_VARIABLE)
    if pure_python:
        os.environ[PURE_PYTHON_VARIABLE] = "1"
    else:
        os.environ.pop(PURE_PYTHON_VARIABLE, None)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(PURE_PYTHON_VARIABLE, None)
        else:
            os.environ[PURE_PYTHON_VARIABLE] = saved


def vmm_mmio(loads: int, pure_python: bool = False) -> tuple[float, str]:
    """Seconds for ``loads`` emulated loads through the real backend, and the path used."""
    with mmio_path(pure_python):
        board = EmulatedBoard(GuestLayout(ram_size=16 << 20, dma_base=None), Console())

    def register(_vm: Any, fault: MemoryFault, _cookie: Any) -> FaultResult:
        fault.reply(0x1234)
        return FaultResult.HANDLED

    board.vm.memory.reserve_at(DEVICE, 0x1000, register, label="bench register")
    board.vm.ram.write(CODE, mmio_program(loads))
    elapsed = timed(lambda: board.loop.run(CODE))
    assert board.vcpu.faults_handled == loads
    trampolines = board.vcpu.trampolines
    assert (trampolines is None) is pure_python or import_error("_ucmmio") is not None
    if trampolines is not None:
        assert trampolines.fast_accesses == loads  # every load went through the C path
    return elapsed, board.mmio_path


# -- 2. instruction rate -----------------------------------------------------------------------
def raw_memtest() -> float:
    uc = new_aarch64_engine()
    uc.mem_map(RAM, MEMTEST_RAM, UC_PROT_ALL)
    tree = GuestDeviceTree(RAM, MEMTEST_RAM, 0x0900_0000, 33, 0x0800_0000, 0x0801_0000, "")
    uc.mem_write(RAM, build_device_tree(tree))
    uc.mem_write(CODE, bundled_guest("memtest").read_bytes())
    out = bytearray()
    uc.mmio_map(
        0x0900_0000,
        0x1000,
        lambda _uc, _off, _size, _d: 0,
        None,
        lambda _uc, off, _size, value, _d: out.append(value) if off == 0 else None,
        None,
    )

    def on_hvc(u: AArch64Engine, _intno: int, _data: Any) -> None:
        u.emu_stop()

    uc.hook_add(UC_HOOK_INTR, on_hvc)
    uc.reg_write(UC_ARM64_REG_X0, RAM)
    elapsed = timed(lambda: uc.emu_start(CODE, 0xFFFF_FFFF_FFFF_FFFE))
    assert b"memtest: OK" in out, out
    return elapsed


def vmm_memtest(preemptible: bool = False) -> float:
    """memtest on the VMM; ``preemptible`` arms a far timer so slices are counted."""
    board = EmulatedBoard(GuestLayout(ram_size=MEMTEST_RAM, dma_base=None), Console())
    entry = board.load(bundled_guest("memtest").read_bytes())
    if preemptible:
        board.timer.write(CNTV_CVAL_EL0, 1 << 62)
        board.timer.write(CNTV_CTL_EL0, CTL_ENABLE)
    elapsed = timed(lambda: board.loop.run(entry))
    assert b"memtest: OK" in board.console.output
    return elapsed


# -- 3. IRQ injection --------------------------------------------------------------------------
def vmm_irq_round_trips(count: int) -> tuple[float, int]:
    board = EmulatedBoard(GuestLayout(ram_size=16 << 20, dma_base=None), Console())

    def doorbell(_vm: Any, fault: MemoryFault, _cookie: Any) -> FaultResult:
        board.vgic.inject(40)
        return FaultResult.HANDLED

    board.vm.memory.reserve_at(DEVICE, 0x1000, doorbell, label="doorbell")
    board.vgic.write_distributor(GICD_CTLR, 4, 1)
    board.vgic.write_distributor(GICD_ISENABLER + 4, 4, 1 << 8)
    board.vgic.cpu.write(GICC_PMR, 4, 0xFF)
    board.vgic.cpu.write(GICC_CTLR, 4, 1)
    vbar = RAM + 0x10_0000
    handler = [
        *mov64(10, 0x0801_0000),
        0xB9400D4B,  # ldr w11, [x10, #0xc]   GICC_IAR
        0xB900114B,  # str w11, [x10, #0x10]  GICC_EOIR
        0x91000694,  # add x20, x20, #1
        0xD69F03E0,  # eret
    ]
    board.vm.ram.write(vbar + 0x280, pack(handler))
    str_w3_x1 = 0xB9000023
    program = [
        *mov64(9, vbar),
        0xD518C009,  # msr vbar_el1, x9
        *mov64(1, DEVICE),
        *mov64(3, count),
        0xD50342FF,  # msr daifclr, #2
        str_w3_x1,
        SUBS_X3_1,
        B_NE_BACK_2,
        *SYSTEM_OFF,
    ]
    board.vm.ram.write(CODE, pack(program))
    elapsed = timed(lambda: board.loop.run(CODE))
    return elapsed, int(board.vcpu.uc.reg_read(UC_ARM64_REG_X20))


def span(values: list[float], scale: float = 1.0, unit: str = "") -> str:
    """``median (min-max)`` of ``values`` times ``scale``."""
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{mid * scale:6.2f}{unit} ({low * scale:.2f}-{high * scale:.2f})"


def mmio_rows(repeat: int) -> None:
    raw_mmio(1000)  # warm up unicorn's translator
    raws: list[float] = []
    fast: list[float] = []
    pure: list[float] = []
    fast_path = pure_path = ""
    for _ in range(repeat):  # interleaved, so load from elsewhere hits every row alike
        raws.append(raw_mmio(MMIO_LOADS) / MMIO_LOADS)
        elapsed, fast_path = vmm_mmio(MMIO_LOADS)
        fast.append(elapsed / MMIO_LOADS)
        elapsed, pure_path = vmm_mmio(MMIO_LOADS, pure_python=True)
        pure.append(elapsed / MMIO_LOADS)
    us = 1e6
    print(f"MMIO round trip ({MMIO_LOADS} loads, {repeat} interleaved rounds; median (range)):")
    print(f"  raw unicorn mmio_map callback : {span(raws, us, ' us')}")
    print(f"  VMM full fault path, default  : {span(fast, us, ' us')}  [{fast_path}]")
    print(f"  VMM full fault path, Python   : {span(pure, us, ' us')}  [{pure_path}]")
    ratios = [f / r for f, r in zip(fast, raws, strict=True)]
    pure_ratios = [p / r for p, r in zip(pure, raws, strict=True)]
    print(f"  ratio default / raw           : {span(ratios, unit='x')}   (target <= 2x)")
    print(f"  ratio Python / raw            : {span(pure_ratios, unit='x')}")


def memtest_rows(rounds: int) -> None:
    """memtest on raw unicorn, on the VMM free-running and with the timer armed (counted
    slices), alternating in ``rounds`` rounds; ratios are per round."""
    free: list[float] = []
    armed: list[float] = []
    for _ in range(rounds):
        raw_t = raw_memtest()
        free.append(raw_t / vmm_memtest())
        armed.append(raw_t / vmm_memtest(preemptible=True))
    print(f"memtest guest over {MEMTEST_RAM >> 20} MiB, {rounds} rounds (instruction rate / raw):")
    print(f"  VMM, no timer (free-running)   : {span(free, unit='x')}   (target >= 0.9x)")
    print(f"  VMM, timer armed (counted)     : {span(armed, unit='x')}   (target >= 0.9x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=5, help="interleaved MMIO rounds")
    args = parser.parse_args()
    print(f"emulated MMIO path of this run: {vmm_mmio(10)[1]}")
    mmio_rows(max(args.repeat, 1))

    memtest_rows(max(args.repeat, 1))

    elapsed, handled = vmm_irq_round_trips(IRQS)
    print(f"virtual IRQ injection ({IRQS} doorbells, {handled} IRQs taken):")
    print("  (each: MMIO trap, inject, exit + replay-safe resume, vector, IAR, EOIR, ERET)")
    print(f"  doorbell trap + inject + IAR + EOIR : {elapsed / max(handled, 1) * 1e6:7.2f} us/IRQ")


if __name__ == "__main__":
    main()

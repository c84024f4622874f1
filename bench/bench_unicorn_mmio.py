"""Emulated MMIO on unicorn through sel4vmm's C trampoline vs a raw unicorn callback.

One AArch64 guest loop of 32-bit loads from a device page, run (interleaved, same process):

* ``raw``: the unicorn binding's ``mmio_map`` with a Python callback that only returns a
  value — the baseline of issue 15 (target: the VMM path <= 2x of it);
* ``binding + handle_fault``: the same binding callback building a ``MemoryFault`` and
  calling the memory core's ``handle_fault`` (what the unicorn backend's path costs
  before its own bookkeeping), for reference;
* ``trampoline + handle_fault``: ``sel4vmm.native.unicorn_mmio.install_mmio_trampoline``
  with ``dispatch = vm.memory.handle_fault`` — a ``VirtualMachine`` with a reservation and a
  device callback, every access through the core's real fault path (reservation lookup,
  callback, answer checks), with the reused fault object;
* ``trampoline, empty dispatch``: the C trampoline calling a callable that only answers,
  for the trampoline's own cost.

Run: ``PYTHONPATH=src python bench/bench_unicorn_mmio.py [--loads N] [--repeat R]``.
Prints figures only.
"""

from __future__ import annotations

import argparse
import statistics
import struct
import sys
from collections.abc import Callable
from typing import Any

from unicorn import UC_HOOK_INTR, UC_PROT_ALL

from sel4vmm.backends.unicorn.engine import new_aarch64_engine
from sel4vmm.memory import FaultResult, MemoryFault
from sel4vmm.native.unicorn_mmio import install_mmio_trampoline, trampoline_unavailable_reason
from sel4vmm.sel4.arch import AARCH64
from sel4vmm.sel4.physmem import MemoryRange, PhysicalMemory
from sel4vmm.sel4.platform import Sel4Platform
from sel4vmm.vm import PoolRequest, VirtualMachine
from timing import timed

RAM = 0x4000_0000
CODE = RAM + 0x8_0000
DEVICE = 0x0A00_0000


def mov64(rd: int, value: int) -> list[int]:
    words = [0xD2800000 | ((value & 0xFFFF) << 5) | rd]
    for hw in (1, 2, 3):
        words.append(0xF2800000 | (hw << 21) | (((value >> (16 * hw)) & 0xFFFF) << 5) | rd)
    return words


def program(loads: int) -> bytes:
    """``x1 = DEVICE; x3 = loads; 1: ldr w2, [x1]; subs x3, x3, #1; b.ne 1b; hvc #0``."""
    words = [*mov64(1, DEVICE), *mov64(3, loads), 0xB9400022, 0xF1000463, 0x54FFFFC1]
    return struct.pack(f"<{len(words) + 1}I", *words, 0xD4000002)


def engine(loads: int) -> tuple[Any, int]:
    uc = new_aarch64_engine()
    uc.mem_map(RAM, 16 << 20, UC_PROT_ALL)
    code = program(loads)
    uc.mem_write(CODE, code)
    uc.hook_add(UC_HOOK_INTR, lambda u, _n, _d: u.emu_stop())
    return uc, CODE + len(code)


def device_vm() -> tuple[VirtualMachine, list[int]]:
    """A VM with one emulated device page whose callback counts and answers reads."""
    board = Sel4Platform(PhysicalMemory([MemoryRange(RAM, 64 << 20, name="ram")]), AARCH64)
    vm = VirtualMachine.create("bench", board, pools=[PoolRequest(24, 1)])
    count = [0]
    handled = FaultResult.HANDLED

    def register(_vm: Any, fault: MemoryFault, _cookie: Any) -> FaultResult:
        count[0] += 1
        fault.reply(0x1234)
        return handled

    vm.memory.reserve_at(DEVICE, 0x1000, register, label="bench register")
    return vm, count


def raw(loads: int) -> float:
    uc, end = engine(loads)
    uc.mmio_map(DEVICE, 0x1000, lambda _uc, _off, _size, _d: 0x1234, None, lambda *_: None, None)
    return timed(lambda: uc.emu_start(CODE, end))


def binding_handle_fault(loads: int) -> float:
    uc, end = engine(loads)
    vm, count = device_vm()
    handle_fault = vm.memory.handle_fault

    def read(_uc: Any, offset: int, size: int, _d: Any) -> int:
        fault = MemoryFault(DEVICE + offset, size, False)
        handle_fault(fault)
        return fault.read_value or 0

    uc.mmio_map(DEVICE, 0x1000, read, None, lambda *_: None, None)
    elapsed = timed(lambda: uc.emu_start(CODE, end))
    assert count[0] == loads, count
    vm.physmem.close()
    return elapsed


def trampoline(loads: int, dispatch: Callable[[VirtualMachine], Any] | None = None) -> float:
    uc, end = engine(loads)
    vm, count = device_vm()
    target = dispatch(vm) if dispatch is not None else vm.memory.handle_fault
    mmio = install_mmio_trampoline(uc, DEVICE, 0x1000, target)
    elapsed = timed(lambda: mmio.run(CODE, end))
    assert mmio.fast_accesses == loads and mmio.faults_made == 1, (
        mmio.fast_accesses,
        mmio.faults_made,
    )
    if dispatch is None:
        assert count[0] == loads, count
    vm.physmem.close()
    return elapsed


def empty_dispatch(_vm: VirtualMachine) -> Callable[[MemoryFault], FaultResult]:
    handled = FaultResult.HANDLED

    def answer(fault: MemoryFault) -> FaultResult:
        fault.read_value = 0x1234
        return handled

    return answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=int, default=200_000, help="MMIO loads per run")
    parser.add_argument("--repeat", type=int, default=5, help="interleaved runs per variant")
    args = parser.parse_args()
    reason = trampoline_unavailable_reason()
    if reason is not None:
        sys.exit(f"cannot benchmark the C trampoline: {reason}")
    raw(1000)  # warm up unicorn's translator
    variants: dict[str, Callable[[], float]] = {
        "raw unicorn mmio_map callback": lambda: raw(args.loads),
        "binding callback + handle_fault": lambda: binding_handle_fault(args.loads),
        "C trampoline + handle_fault (VMM)": lambda: trampoline(args.loads),
        "C trampoline, empty dispatch": lambda: trampoline(args.loads, empty_dispatch),
    }
    runs: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeat):  # interleaved, so other load hits every variant alike
        for name, run in variants.items():
            runs[name].append(run() / args.loads)
    base = runs["raw unicorn mmio_map callback"]
    print(f"emulated MMIO, {args.loads} 32-bit loads, {args.repeat} interleaved runs")
    print(f"  {'variant':36s} {'best us':>8s} {'median':>8s}  ratio to raw (best; per-run range)")
    for name, times in runs.items():
        ratios = [t / b for t, b in zip(times, base, strict=True)]
        print(
            f"  {name:36s} {min(times) * 1e6:8.3f} {statistics.median(times) * 1e6:8.3f}"
            f"  {min(times) / min(base):5.2f}x ({min(ratios):.2f}-{max(ratios):.2f}x)"
        )
    vmm = min(runs["C trampoline + handle_fault (VMM)"]) / min(base)
    print(f"  VMM path through the trampoline / raw = {vmm:.2f}x   (target <= 2x)")


if __name__ == "__main__":
    main()

"""Benchmark the system loop's switch between VMs, against one VM, measured in the same run.

A guest counts a register down (``subs``/``b.ne``) and powers off.  Baseline: one VM on
the :class:`~sel4vmm.backends.unicorn.system_loop.SystemLoop` runs ``2 * N`` iterations
in counted slices; measured: two VMs of one system run ``N`` iterations each, so the same
number of slices of the same length, but every round switches VM (another engine,
another vGIC and address map, the scheduler's choice).  The ratio of the two, and the
cost per switch, are printed; both setups alternate in ``--repeat`` rounds and the best
of each is kept (the machine is shared: expect noise).

Prints figures only; there is no pass/fail on timing.  Run:
``PYTHONPATH=src python bench/bench_multi_vm.py [--repeat N] [--slice INSTRUCTIONS]``.
"""

from __future__ import annotations

import argparse
import struct
import time

from sel4vmm.backends.unicorn.board import Console, GuestLayout
from sel4vmm.backends.unicorn.diagnostics import StopReason
from sel4vmm.backends.unicorn.system import EmulatedSystem
from sel4vmm.backends.unicorn.system_loop import SystemLoop

RAM = 0x4000_0000
CODE = RAM + 0x8_0000
HVC0 = 0xD4000002
SUBS_X3_1 = 0xF1000463  # subs x3, x3, #1
B_NE_BACK_1 = 0x54FFFFE1  # b.ne .-4


def mov64(rd: int, value: int) -> list[int]:
    words = [0xD2800000 | ((value & 0xFFFF) << 5) | rd]
    for hw in (1, 2, 3):
        words.append(0xF2800000 | (hw << 21) | (((value >> (16 * hw)) & 0xFFFF) << 5) | rd)
    return words


def countdown(iterations: int) -> bytes:
    words = [*mov64(3, iterations), SUBS_X3_1, B_NE_BACK_1, *mov64(0, 0x8400_0008), HVC0]
    return struct.pack(f"<{len(words)}I", *words)


def run_vms(count: int, iterations: int, slice_instructions: int) -> tuple[float, int, int]:
    """Host seconds, slices and switches of ``count`` VMs each counting ``iterations``."""
    layouts = [
        GuestLayout(name=f"vm{i}", ram_size=16 << 20, one_to_one=False) for i in range(count)
    ]
    system = EmulatedSystem(layouts)
    for layout in layouts:
        board = system.add_board(layout, Console())
        board.loop.slice_instructions = slice_instructions
        board.vm.ram.write(CODE, countdown(iterations))
    loop = SystemLoop.of_boards(system.boards)
    for board in system.boards:
        board.loop.shares_cpu = True  # counted slices for the single VM too
    started = time.perf_counter()
    outcomes = loop.run([CODE] * count, time_limit=600)
    seconds = time.perf_counter() - started
    system.close()
    assert all(o.stop_reason is StopReason.SYSTEM_OFF for o in outcomes), outcomes
    return seconds, sum(o.statistics.slices for o in outcomes), loop.stats.switches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--slice", type=int, default=20_000, help="instructions per slice")
    parser.add_argument("--slices", type=int, default=400, help="slices per setup")
    args = parser.parse_args()
    # Two instructions per iteration: the slices of both setups add up to the same count.
    iterations = args.slices * args.slice // 2
    one: list[float] = []
    two: list[float] = []
    counts: dict[str, tuple[int, int]] = {}
    for _ in range(args.repeat):
        seconds, slices, switches = run_vms(1, iterations, args.slice)
        one.append(seconds)
        counts["one"] = (slices, switches)
        seconds, slices, switches = run_vms(2, iterations // 2, args.slice)
        two.append(seconds)
        counts["two"] = (slices, switches)
    best_one, best_two = min(one), min(two)
    slices_one, _ = counts["one"]
    slices_two, switches = counts["two"]
    print(f"slices of {args.slice} instructions; best of {args.repeat} rounds each")
    print(
        f"one VM : {slices_one} slices, {best_one:.3f} s, "
        f"{best_one / slices_one * 1e6:.1f} us/slice"
    )
    print(
        f"two VMs: {slices_two} slices, {switches} switches, {best_two:.3f} s, "
        f"{best_two / slices_two * 1e6:.1f} us/slice"
    )
    per_switch = (best_two - best_one) / max(switches, 1)
    print(f"ratio two/one: {best_two / best_one:.3f}x; switch cost {per_switch * 1e6:+.1f} us")


if __name__ == "__main__":
    main()

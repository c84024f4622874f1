"""Benchmark a notification round trip between two VMs, against one answered by the VMM.

The bundled ``share`` guest (``rounds=R``) plays ping-pong through word 0 of a shared
region: it writes a counter, rings its Microkit doorbell and waits (WFI) for the answer's
interrupt.  Measured: two VMs of ``tests/config/microkit/data/shared_two_vms.system`` on one
board, the answer coming from the other guest (its interrupt, its loads and stores, its ring
back, and the system loop switching VM twice per round trip).  Baseline, in the same run: the
same guest alone, its channel answered inside the VMM by a responder that inverts the word in
the shared frames and delivers the interrupt straight back (the same MMIO and interrupt path in
the guest, no second VM).  Both alternate ``--repeat`` times and the best of each is kept (the
machine is shared: expect noise).

Prints figures only; there is no pass/fail on timing.  Run:
``PYTHONPATH=src python bench/bench_doorbell.py [--rounds R] [--repeat N]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from sel4vmm.backends.unicorn.board import Console, GuestLayout
from sel4vmm.backends.unicorn.cross_vm import CrossVmWiring, wire_boards
from sel4vmm.backends.unicorn.diagnostics import StopReason
from sel4vmm.backends.unicorn.session import bundled_guest
from sel4vmm.backends.unicorn.system import EmulatedSystem
from sel4vmm.backends.unicorn.system_loop import SystemLoop
from sel4vmm.config.load import load_system

SYSTEM = Path(__file__).resolve().parents[1] / "tests/config/microkit/data/shared_two_vms.system"
ARGS = {
    "alpha": "role=first shm=0x20000000 size=0x2000 bell=0xb100000 ring=1 irq=82",
    "beta": "role=second shm=0x28000000 size=0x2000 bell=0xb100000 ring=2 irq=82",
}


def _vmm_responder(wiring: CrossVmWiring) -> None:
    """alpha's channel 1 answered by the VMM: invert the region (the first exchange) or
    word 0 (every later one), then ring alpha's channel 1 back."""
    region = wiring.regions["shared_buf"]
    alpha = wiring.doorbells["alpha"]
    first = [True]

    def answer() -> None:
        length = region.size if first[0] else 4
        first[0] = False
        region.write(0, bytes(b ^ 0xFF for b in region.read(0, length)))
        alpha.deliver(1)

    alpha.channels[1] = answer


def run(names: list[str], rounds: int) -> float:
    """Host seconds of ``rounds`` round trips with the VMs ``names`` running."""
    spec = load_system(SYSTEM)
    layouts = [
        GuestLayout(
            name=name, ram_size=16 << 20, one_to_one=False, bootargs=f"{ARGS[name]} rounds={rounds}"
        )
        for name in names
    ]
    system = EmulatedSystem(layouts, fix_language="microkit")
    consoles = [Console() for _ in layouts]
    for layout, console in zip(layouts, consoles, strict=True):
        system.add_board(layout, console)
    try:
        wiring = wire_boards(spec, system.boards)
        if names == ["alpha"]:
            _vmm_responder(wiring)
        entries = [board.load_file(bundled_guest("share")) for board in system.boards]
        loop = SystemLoop.of_boards(system.boards)
        started = time.perf_counter()
        outcomes = loop.run(entries, time_limit=600)
        seconds = time.perf_counter() - started
    finally:
        system.close()
    text = consoles[0].output.decode()
    if any(o.stop_reason is not StopReason.SYSTEM_OFF for o in outcomes) or (
        f"{rounds} rounds ok" not in text
    ):
        raise SystemExit(f"the run failed: {[o.stop_reason for o in outcomes]}\n{text}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    two: list[float] = []
    vmm: list[float] = []
    for _ in range(options.repeat):
        vmm.append(run(["alpha"], options.rounds))
        two.append(run(["alpha", "beta"], options.rounds))
    best_two, best_vmm = min(two), min(vmm)
    rounds = options.rounds
    print(f"{rounds} round trips, best of {options.repeat} (shared machine: noisy)")
    print(f"  VM -> VMM -> VM : {best_vmm:.3f} s, {best_vmm / rounds * 1e6:.1f} us per round trip")
    print(f"  VM -> VM  -> VM : {best_two:.3f} s, {best_two / rounds * 1e6:.1f} us per round trip")
    print(f"  ratio two VMs / VMM-answered: {best_two / best_vmm:.2f}x")


if __name__ == "__main__":
    main()

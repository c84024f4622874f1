"""KVM backend: MMIO exit round trip against a C VMM, and memory-slot update cost.

1. MMIO round trip.  One guest (a loop of 32-bit reads from an unbacked address, then a
   write to the exit port) is run four ways on the same KVM, interleaved round by round:
   * ``C``: bench/c/kvm_mmio_loop.c, the smallest possible C exit loop (built here with gcc);
   * ``python raw``: the sel4vmm vCPU wrapper with a hand-written minimal loop;
   * ``VMM, C exit loop``: the real path — KvmSession's exit loop (the C extension
     ``sel4vmm.native._kvmexit``, what a run uses when it is built), MemoryFault,
     ``GuestAddressSpace.handle_fault``, the reservation's callback;
   * ``VMM, Python exit loop``: the same with ``SEL4VMM_PURE_PYTHON=1``.
   The figure of merit is ``VMM / C`` per exit (target <= 1.2x); each round's ratio is
   taken against that round's C run, and the range over rounds is printed.
2. Slot updates.  Mapping and freeing a 64 KiB reservation through the address space (the
   KVM slot follows through the listener) against the two raw KVM_SET_USER_MEMORY_REGION
   ioctls the same change costs.
3. virtio-blk request round trip.  guests/x86_64/virtio.c reads sector 0 of a host file
   ``--virtio-requests`` more times than in a baseline run of the same guest; the time
   difference over the request count is one request: the guest's QueueNotify (an MMIO
   exit into the transport, the device's pread and used-ring update, KVM_IRQ_LINE), the
   IOAPIC interrupt the guest sleeps for in ``hlt``, its InterruptStatus read and ACK, and
   the Status read it checks.  It is set against the VMM's MMIO exit cost measured in (1).

Run: ``PYTHONPATH=src python bench/bench_kvm.py [--iterations N]``.  Prints figures only.
"""

from __future__ import annotations

import argparse
import ctypes
import mmap
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sel4vmm.backends.kvm import ioctls, x86_boot
from sel4vmm.backends.kvm.session import KvmSession
from sel4vmm.backends.kvm.system import KvmSystem, kvm_unavailable_reason
from sel4vmm.backends.kvm.vcpu import KvmVcpu
from sel4vmm.backends.kvm.vm import KvmVm
from sel4vmm.memory import FaultResult, MemoryFault
from sel4vmm.memory.address_space import frame_iterator
from sel4vmm.native import PURE_PYTHON_VARIABLE, describe
from sel4vmm.sel4.arch import X86_64
from sel4vmm.sel4.objects import ObjectKind
from sel4vmm.sel4.physmem import MemoryRange, PhysicalMemory
from sel4vmm.sel4.platform import Sel4Platform
from sel4vmm.vm import PoolRequest, VirtualMachine

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
GUEST_RAM = 2 << 20
CODE_ADDR = 0x10_0000
MMIO_ADDR = 0xFE00_0000
LAYOUT = x86_boot.LongModeLayout(identity_map_bytes=4 << 30)


def guest_code(iterations: int) -> bytes:
    """``mov rcx, n; mov rbx, MMIO; 1: mov eax, [rbx]; dec rcx; jnz 1b; out 0xf4``."""
    return (
        b"\x48\xb9"
        + struct.pack("<Q", iterations)
        + b"\x48\xbb"
        + struct.pack("<Q", MMIO_ADDR)
        + b"\x8b\x03\x48\xff\xc9\x75\xf9"
        + b"\x66\xba\xf4\x00\xef\xeb\xfe"
    )


def guest_image(iterations: int) -> bytearray:
    image = bytearray(GUEST_RAM)

    def write(addr: int, data: bytes) -> None:
        image[addr : addr + len(data)] = data

    x86_boot.write_long_mode_tables(LAYOUT, write)
    write(CODE_ADDR, guest_code(iterations))
    return image


def run_c(iterations: int, workdir: Path) -> float:
    """Seconds per exit of the C loop."""
    program = workdir / "kvm_mmio_loop"
    subprocess.run(
        ["gcc", "-O2", "-o", str(program), str(HERE / "c" / "kvm_mmio_loop.c")], check=True
    )
    image_path = workdir / "guest.img"
    image_path.write_bytes(guest_image(iterations))
    output = subprocess.run(
        [
            str(program),
            str(image_path),
            hex(CODE_ADDR),
            hex(LAYOUT.gdt_addr),
            hex(LAYOUT.page_tables_addr),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    exits, seconds = int(output[0]), float(output[1])
    return seconds / exits


def run_python_raw(iterations: int) -> float:
    """Seconds per exit of a minimal Python loop over the vCPU wrapper."""
    image = guest_image(iterations)
    memory = mmap.mmap(-1, GUEST_RAM)
    memory[:] = image
    host = ctypes.c_char.from_buffer(memory)
    with KvmSystem() as system:
        vm = KvmVm(system)
        vcpu = KvmVcpu(vm)
        vm.set_memory_region(0, 0, GUEST_RAM, ctypes.addressof(host))
        sregs = vcpu.get_sregs()
        x86_boot.long_mode_sregs(sregs, LAYOUT)
        vcpu.set_sregs(sregs)
        vcpu.set_regs(x86_boot.entry_regs(x86_boot.EntryState(rip=CODE_ADDR)))
        exits = 0
        start = time.perf_counter()
        while True:
            reason = vcpu.run()
            exits += 1
            if reason == ioctls.KVM_EXIT_MMIO:
                address, _data, length, is_write = vcpu.mmio_exit()
                if not is_write:
                    vcpu.complete_mmio_read(address, length)
                continue
            break
        elapsed = time.perf_counter() - start
        vcpu.close()
        vm.close()
    del host
    memory.close()
    return elapsed / exits


def make_vm(name: str) -> VirtualMachine:
    physmem = PhysicalMemory([MemoryRange(0, 64 << 20, name="ram")])
    vm = VirtualMachine.create(name, Sel4Platform(physmem, X86_64), pools=[PoolRequest(24, 2)])
    vm.ram.register_at(0, GUEST_RAM)
    return vm


def device(vm: Any, fault: MemoryFault, cookie: Any) -> FaultResult:
    if not fault.is_write:
        fault.reply(fault.address)
    return FaultResult.HANDLED


def run_python_vmm(iterations: int, pure_python: bool) -> float:
    """Seconds per exit of the real sel4vmm path: exit loop + handle_fault + callback."""
    vm = make_vm("bench")
    vm.ram.write(0, bytes(guest_image(iterations)))
    vm.memory.reserve_at(MMIO_ADDR, 0x1000, device, label="bench device")
    if pure_python:
        os.environ[PURE_PYTHON_VARIABLE] = "1"
    else:
        os.environ.pop(PURE_PYTHON_VARIABLE, None)
    with KvmSession(vm) as session:
        expected = "pure Python" if pure_python else "C extension"
        if not session.loop.implementation.startswith(expected):
            sys.exit(f"the VMM runs {session.loop.implementation}, not the {expected} loop")
        session.enter(LAYOUT, x86_boot.EntryState(rip=CODE_ADDR))
        start = time.perf_counter()
        outcome = session.run()
        elapsed = time.perf_counter() - start
        if not outcome.ok:
            sys.exit(f"benchmark guest failed: {outcome.diagnostic}")
    vm.physmem.close()
    return elapsed / outcome.exits


def map_free_cycle(vm: VirtualMachine, rounds: int) -> float:
    """Seconds per reserve + map (16 frames) + free of a 64 KiB window."""
    runs = vm.allocator.retype(ObjectKind.FRAME, 12, 16)
    window = 0xC000_0000
    start = time.perf_counter()
    for _ in range(rounds):
        reservation = vm.memory.reserve_at(window, 0x1_0000)
        vm.memory.map(reservation, frame_iterator(runs, window))
        vm.memory.free(reservation)
    return (time.perf_counter() - start) / rounds


def slot_updates(rounds: int) -> tuple[float, float, float]:
    """Seconds per map+free with KVM following, without KVM, and per raw ioctl pair."""
    vm = make_vm("slots")
    without_kvm = map_free_cycle(vm, rounds)
    with KvmSession(vm) as session:
        with_kvm = map_free_cycle(vm, rounds)
        kvm_vm = session.kvm_vm
        assert kvm_vm is not None
        host = vm.physmem.host_address(0)
        start = time.perf_counter()
        for _ in range(rounds):
            kvm_vm.set_memory_region(100, 0xC000_0000, 0x1_0000, host)
            kvm_vm.set_memory_region(100, 0xC000_0000, 0, 0)
        raw = (time.perf_counter() - start) / rounds
    vm.physmem.close()
    return with_kvm, without_kvm, raw


def virtio_round_trip(requests: int, pure_python: bool, workdir: Path) -> tuple[float, float]:
    """Seconds and MMIO exits per virtio-blk read request (see the module docstring)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))  # the guest's driver lives with its tests
    from sel4vmm.backends.kvm.virtio import VirtioRequest
    from tests.backends.kvm.virtio_guest import STEP_OK, GuestInputs, run_virtio_guest

    guests = workdir / "guests"
    if not (guests / "virtio.elf").exists():
        subprocess.run(
            ["sh", str(REPO / "guests" / "x86_64" / "build.sh"), str(guests)], check=True
        )
    disk = workdir / "disk.img"
    disk.write_bytes(os.urandom(4096))
    if pure_python:
        os.environ[PURE_PYTHON_VARIABLE] = "1"
    else:
        os.environ.pop(PURE_PYTHON_VARIABLE, None)
    timings = []
    for repeat in (0, requests):
        run = run_virtio_guest(
            guests / "virtio.elf", VirtioRequest(disk=disk), GuestInputs(repeat=repeat)
        )
        if not run.outcome.ok or run.outcome.exit_code != STEP_OK:
            sys.exit(f"virtio guest failed: {run.outcome.diagnostic or run.outcome.exit_code}")
        timings.append((run.elapsed, run.outcome.exits))
    (base_time, base_exits), (time_many, exits_many) = timings
    return (time_many - base_time) / requests, (exits_many - base_exits) / requests


def virtio_host_share(requests: int, workdir: Path) -> float:
    """Seconds per request spent in ``handle_fault`` (the VMM's device code), C exit loop.

    A separate run with ``handle_fault`` wrapped by a timer, so the headline figure is
    measured without the wrapper; the rest of a request is KVM: exits, interrupt
    injection and the guest's own (ring-0, slow under nested KVM) instructions.
    """
    from sel4vmm.backends.kvm.virtio import VirtioRequest
    from sel4vmm.memory.address_space import GuestAddressSpace
    from tests.backends.kvm.virtio_guest import GuestInputs, run_virtio_guest

    spent = [0.0]
    original = GuestAddressSpace.handle_fault

    def timed(self: GuestAddressSpace, fault: MemoryFault) -> FaultResult:
        start = time.perf_counter()
        try:
            return original(self, fault)
        finally:
            spent[0] += time.perf_counter() - start

    os.environ.pop(PURE_PYTHON_VARIABLE, None)
    GuestAddressSpace.handle_fault = timed  # type: ignore[method-assign]
    try:
        shares = []
        for repeat in (0, requests):
            spent[0] = 0.0
            run_virtio_guest(
                workdir / "guests" / "virtio.elf",
                VirtioRequest(disk=workdir / "disk.img"),
                GuestInputs(repeat=repeat),
            )
            shares.append(spent[0])
    finally:
        GuestAddressSpace.handle_fault = original  # type: ignore[method-assign]
    return (shares[1] - shares[0]) / requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20_000, help="MMIO reads per run")
    parser.add_argument("--repeat", type=int, default=5, help="runs per variant (best kept)")
    parser.add_argument("--slot-rounds", type=int, default=500)
    parser.add_argument("--virtio-requests", type=int, default=2000)
    args = parser.parse_args()
    reason = kvm_unavailable_reason()
    if reason is not None:
        sys.exit(f"cannot benchmark KVM: {reason}")
    if shutil.which("gcc") is None:
        sys.exit("cannot build the C baseline: gcc not found")
    c_native = describe("_kvmexit")
    if not c_native.startswith("C extension"):
        sys.exit(f"the C exit loop is not available: {c_native}")
    # Interleave the variants so that load from other processes hits all of them alike.
    runs: dict[str, list[float]] = {"C": [], "raw": [], "vmm C": [], "vmm python": []}
    virtio: dict[str, list[tuple[float, float]]] = {"vmm C": [], "vmm python": []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeat):
            runs["C"].append(run_c(args.iterations, Path(tmp)))
            runs["raw"].append(run_python_raw(args.iterations))
            runs["vmm C"].append(run_python_vmm(args.iterations, pure_python=False))
            runs["vmm python"].append(run_python_vmm(args.iterations, pure_python=True))
            for key in virtio:
                virtio[key].append(
                    virtio_round_trip(args.virtio_requests, key == "vmm python", Path(tmp))
                )
        host_share = min(
            virtio_host_share(args.virtio_requests, Path(tmp)) for _ in range(args.repeat)
        )
    os.environ.pop(PURE_PYTHON_VARIABLE, None)
    c = min(runs["C"])
    labels = {
        "C": "C baseline",
        "raw": "python raw loop (no VMM)",
        "vmm C": "sel4vmm VMM, C exit loop",
        "vmm python": "sel4vmm VMM, Python exit loop",
    }
    print(f"MMIO exit round trip ({args.iterations} reads, {args.repeat} interleaved rounds):")
    print(f"  {'variant':31s} {'best':>8s}          best/C  (per-round range)")
    for key, label in labels.items():
        best = min(runs[key])
        ratios = [t / base for t, base in zip(runs[key], runs["C"], strict=True)]
        print(
            f"  {label:31s} {best * 1e6:8.2f} us/exit   {best / c:.2f}x"
            f"  ({min(ratios):.2f}-{max(ratios):.2f}x)"
        )
    print(f"  target: sel4vmm VMM <= 1.2x C; runs use the {c_native}")
    print(f"virtio-blk read request round trip ({args.virtio_requests} requests, best round):")
    for key in virtio:
        per_request, exits = min(virtio[key])
        exit_cost = min(runs[key])
        print(
            f"  {labels[key]:31s} {per_request * 1e6:8.2f} us/request  {exits:.1f} MMIO exits; "
            f"{per_request / exit_cost:.1f}x its MMIO exit, {per_request / c:.1f}x the C exit"
        )
    print(
        f"  of a request, the VMM's fault handling (transport, rings, pread; C loop): "
        f"{host_share * 1e6:.2f} us; the rest is KVM (exits, interrupt, guest ring 0)"
    )
    with_kvm, without_kvm, raw_slots = slot_updates(args.slot_rounds)
    print(f"memory-slot update, 64 KiB reservation map + free ({args.slot_rounds} rounds):")
    print(f"  raw KVM ioctl pair (set + delete slot)  {raw_slots * 1e6:8.2f} us   1.00x")
    print(
        f"  reserve+map+free, KVM slots following   {with_kvm * 1e6:8.2f} us   "
        f"{with_kvm / raw_slots:.2f}x"
    )
    print(
        f"  reserve+map+free, no KVM listener       {without_kvm * 1e6:8.2f} us   "
        f"{without_kvm / raw_slots:.2f}x"
    )


if __name__ == "__main__":
    main()

"""Running guests/x86_64/virtio.c on a KVM session with virtio-mmio devices attached.

The guest's ``struct virtio_args`` is laid out here field by field (the C struct has
natural alignment and no implicit padding, so ``<`` packing matches it); the test writes
the inputs into guest RAM, runs the guest and decodes the outputs.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

from sel4vmm.backends.kvm import x86_boot
from sel4vmm.backends.kvm.run import RunOutcome
from sel4vmm.backends.kvm.session import KvmSession
from sel4vmm.backends.kvm.virtio import VirtioRequest, VirtioSlot

from .conftest import LAYOUT, STACK_BASE, STACK_TOP, make_vm

ARGS_ADDR = 0x2_0000
CONSOLE, BLOCK = 0, 1
#: guest_main's results (enum step in virtio.c).
STEP_OK = 0
STEP_DEVICE_ERROR = 9

_ARGS = struct.Struct("<2Q2IQII64s512s12I4I2B6x512s")
assert _ARGS.size == 1200


@dataclass(frozen=True)
class GuestInputs:
    """What the test asks of the guest (``struct virtio_args``' inputs)."""

    message: bytes = b""
    write_data: bytes = bytes(512)
    hostile_addr: int = 0
    repeat: int = 0


@dataclass(frozen=True)
class GuestOutputs:
    """What the guest saw (``struct virtio_args``' outputs), indexed by CONSOLE / BLOCK."""

    magic: tuple[int, int]
    version: tuple[int, int]
    device_id: tuple[int, int]
    interrupts: tuple[int, int]
    interrupt_status: tuple[int, int]
    status_after: tuple[int, int]
    used_len: tuple[int, int, int, int]
    request_status: tuple[int, int]
    read_data: bytes


def encode(inputs: GuestInputs, bases: tuple[int, int], gsis: tuple[int, int]) -> bytes:
    return _ARGS.pack(
        *bases,
        *gsis,
        inputs.hostile_addr,
        inputs.repeat,
        len(inputs.message),
        inputs.message,
        inputs.write_data,
        *([0] * 12),
        *([0] * 4),
        0,
        0,
        bytes(512),
    )


def decode(data: bytes) -> GuestOutputs:
    fields = _ARGS.unpack(data)
    words = fields[9:21]
    return GuestOutputs(
        magic=(words[0], words[1]),
        version=(words[2], words[3]),
        device_id=(words[4], words[5]),
        interrupts=(words[6], words[7]),
        interrupt_status=(words[8], words[9]),
        status_after=(words[10], words[11]),
        used_len=(fields[21], fields[22], fields[23], fields[24]),
        request_status=(fields[25], fields[26]),
        read_data=fields[27],
    )


@dataclass
class VirtioGuestRun:
    outcome: RunOutcome
    outputs: GuestOutputs
    #: The attached devices' windows and GSIs, and the device errors the VMM reported.
    slots: list[VirtioSlot]
    errors: list[str]
    console_output: bytes
    #: Seconds the vCPU ran (``session.run``), for bench/bench_kvm.py.
    elapsed: float
    #: How often each GSI went high, and whether it is still high, when the run ended.
    raised: dict[int, int] = field(default_factory=dict)
    still_raised: dict[int, bool] = field(default_factory=dict)


def run_virtio_guest(
    guest_elf: Path, request: VirtioRequest, inputs: GuestInputs, timeout: float = 60.0
) -> VirtioGuestRun:
    """A fresh VM and KVM session, ``request``'s devices attached, the guest run once."""
    vm = make_vm("virtio-guest")
    console: list[bytes] = []
    try:
        with KvmSession(vm) as session:
            virtio = session.attach_virtio(request, console_output=console.append)
            session.write_boot_tables(LAYOUT)
            vm.ram.mark_allocated(STACK_BASE, STACK_TOP - STACK_BASE)
            vm.ram.mark_allocated(ARGS_ADDR, _ARGS.size)
            entry = session.load_elf(guest_elf.read_bytes(), guest_elf.name)
            kinds = {"console": CONSOLE, "block": BLOCK}
            bases, gsis = [0, 0], [0, 0]
            for slot in virtio.slots:
                bases[kinds[slot.kind]] = slot.base
                gsis[kinds[slot.kind]] = slot.gsi
            vm.ram.write(ARGS_ADDR, encode(inputs, (bases[0], bases[1]), (gsis[0], gsis[1])))
            session.enter(LAYOUT, x86_boot.EntryState(rip=entry, rsp=STACK_TOP, rdi=ARGS_ADDR))
            start = time.perf_counter()
            outcome = session.run(timeout=timeout)
            elapsed = time.perf_counter() - start
            outputs = decode(vm.ram.read(ARGS_ADDR, _ARGS.size))
            gsi_list = [slot.gsi for slot in virtio.slots]
            run = VirtioGuestRun(
                outcome,
                outputs,
                list(virtio.slots),
                virtio.errors,
                b"".join(console),
                elapsed,
                raised={gsi: session.irqchip.raised[gsi] for gsi in gsi_list},
                still_raised={gsi: session.irqchip.is_raised(gsi) for gsi in gsi_list},
            )
    finally:
        vm.physmem.close()
    return run

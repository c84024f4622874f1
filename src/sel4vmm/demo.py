"""The embedded default job: seed 000's CAmkES VM, read, planned and exercised.

``sel4vmm demo`` reads the configuration of the DornerWorks VM-memory document (bundled
as a CAmkES ``devices.camkes``) — a 512 MiB guest at 0x40000000 whose frames come from
``simple_untyped24_pool = 33`` — plans it on a QEMU virt board with the same objects a run
uses, writes and reads all of guest RAM through the guest-RAM API, and shows the
guest-physical map and the seL4 resources it took.  It also plans the same file with a
pool of 32 (the failure users hit) and the document's 1:1 variant for DMA.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

from sel4vmm.config.camkes import read_camkes
from sel4vmm.config.spec import Finding
from sel4vmm.errors import Sel4VmmError
from sel4vmm.plan import SystemPlan, plan_system

BOARD = "qemu_virt_aarch64"
VM_RAM_BASE = 0x40000000
VM_RAM_SIZE = 0x20000000


@dataclass
class DemoResult:
    plan: SystemPlan
    one_to_one: SystemPlan
    pattern_ok: bool
    bytes_checked: int
    shortfall: list[Finding]


def seed_file(name: str) -> Path:
    """The bundled configuration ``name`` (a directory under ``sel4vmm/data``)."""
    return Path(str(resources.files("sel4vmm") / "data" / name / "devices.camkes"))


def run_demo() -> DemoResult:
    """Plan seed 000 three ways and exercise the planned VM's RAM."""
    plan = plan_system(read_camkes(seed_file("seed000")), board=BOARD)
    vm = plan.vms[0].vm
    if vm is None or plan.has_errors:
        raise Sel4VmmError("the bundled seed-000 configuration did not plan cleanly")

    # Write a pattern across the whole of guest RAM and read it back.
    chunk = bytes(range(256)) * 4096  # 1 MiB
    for offset in range(0, VM_RAM_SIZE, len(chunk)):
        vm.ram.write(VM_RAM_BASE + offset, chunk)
    ok = all(
        vm.ram.read(VM_RAM_BASE + offset, len(chunk)) == chunk
        for offset in range(0, VM_RAM_SIZE, len(chunk))
    )

    # What users see when they give the VM 32 untyped objects instead of 33.
    text = seed_file("seed000").read_text().replace("pool = 33", "pool = 32")
    with tempfile.TemporaryDirectory() as scratch:
        small = Path(scratch) / "devices.camkes"
        small.write_text(text)
        short = plan_system(read_camkes(small), board=BOARD)
    # The variant lives in a directory that is gone by the time this is printed: name the
    # place by the file's own name, devices.camkes:LINE:COL, as a user's copy would read.
    shortfall = [
        replace(f, location=replace(f.location, path=small.name)) if f.location else f
        for f in short.all_findings()
        if f.severity == "error"
    ]

    one_to_one = plan_system(read_camkes(seed_file("seed000_one_to_one")), board=BOARD)
    return DemoResult(plan, one_to_one, ok, VM_RAM_SIZE, shortfall)

"""Running a configuration's x86 VM on KVM with exactly the memory its plan gives it.

A CAmkES x86 application (camkes-vm's ``Init<N>``: ``guest_ram_mb``, untyped pools) or a
Microkit x86_64 system (libvmm's ``x86_64_generic_vtx/simple.system``) is planned by the
same :func:`~sel4vmm.plan.plan_system` that ``sel4vmm plan`` prints, so the VM that runs
is the plan's own :class:`~sel4vmm.vm.VirtualMachine`: its RAM (from pools, from board
RAM, 1:1 or at a ``phys_addr``), its passthrough frames and its emulated windows, built
once.  KVM is then attached to that VM (:class:`~.session.KvmSession` turns every mapped
extent into a memory slot and every unmapped access into the VMM's fault path), the
kernel is loaded by the Linux 64-bit boot protocol (:func:`~.linux.load_linux`: the
E820 map is the VM's registered RAM, the PC legacy hole reported reserved), and the exit
loop runs it.  Nothing here invents memory: a guest that touches what the plan did not
give it stops with the VMM's fault diagnostic.

:func:`run_configured_guest` is the one entry point (``sel4vmm kvm-boot SYSTEM`` calls it;
``run --backend kvm`` can too).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sel4vmm.backends.kvm.linux import (
    CMDLINE_ADDR,
    DEFAULT_CMDLINE_MAX,
    LinuxBoot,
    load_linux,
)
from sel4vmm.backends.kvm.run import RunOutcome
from sel4vmm.backends.kvm.session import KvmSession
from sel4vmm.backends.kvm.virtio import VirtioRequest
from sel4vmm.backends.kvm.x86_boot import LongModeLayout
from sel4vmm.config.load import pick_vm
from sel4vmm.config.spec import SystemSpec, VmSpec
from sel4vmm.errors import Location, Sel4VmmError
from sel4vmm.images.blob import ImageBlob
from sel4vmm.memory.guest_ram import RamRegion
from sel4vmm.plan import plan_system
from sel4vmm.plan.model import SystemPlan
from sel4vmm.vm import VirtualMachine

#: Guest RAM the 64-bit boot protocol's structures need (GDT, zero page, stack, boot page
#: tables, command line: see :mod:`.linux`), as a PC firmware leaves them in low memory.
BOOT_AREA = (LongModeLayout().gdt_addr, CMDLINE_ADDR + DEFAULT_CMDLINE_MAX + 1)

#: The kernel command line when neither the caller nor the configuration gives one.
DEFAULT_BOOTARGS = "console=ttyS0 earlyprintk=serial,ttyS0,115200"


@dataclass(frozen=True)
class ConfiguredVm:
    """A configuration's x86 VM as planned: the plan (for reports) and its VM."""

    plan: SystemPlan
    vm: VirtualMachine

    @property
    def ram(self) -> list[tuple[int, int]]:
        """The guest RAM the plan registered, (base, size), contiguous ranges merged.

        ``vm.ram.regions()`` splits RAM where allocations (boot structures, the kernel)
        begin and end; the layout the guest sees is the union.
        """
        merged: list[tuple[int, int]] = []
        for region in sorted(self.vm.ram.regions(), key=lambda r: r.start):
            if merged and merged[-1][0] + merged[-1][1] == region.start:
                merged[-1] = (merged[-1][0], merged[-1][1] + region.size)
            else:
                merged.append((region.start, region.size))
        return merged


@dataclass(frozen=True)
class ConfiguredRun:
    """What a run did: where the kernel went, why it stopped, what it printed."""

    vm_name: str
    boot: LinuxBoot
    outcome: RunOutcome
    console: str
    #: What the virtio devices refused during the run (:attr:`.virtio.KvmVirtio.errors`).
    device_errors: list[str]


def plan_x86_vm(
    spec: SystemSpec,
    vm_name: str | None,
    *,
    board: str | None = None,
    board_ram_size: int | None = None,
) -> ConfiguredVm:
    """Plan ``spec`` and return the VM ``vm_name`` (or the only one), which must be x86_64.

    ``board`` and ``board_ram_size`` are ``plan``'s ``--board`` and ``--ram-size``.
    The configuration's and the plan's first error stop it here, located, before any KVM
    resource exists: a VM the plan cannot build cannot run.
    """
    where = Location(spec.path)
    chosen = pick_vm(spec, vm_name)
    if chosen.arch != "x86_64":
        raise Sel4VmmError(
            f"VM '{chosen.name}' is {chosen.arch}; the KVM backend runs x86_64 VMs only",
            location=chosen.location or where,
            fix="run it with 'sel4vmm run' (emulator or qemu backend), or give an x86_64 "
            "configuration (a CAmkES Init<N> VM, a Microkit system for x86_64_generic)",
        )
    plan = plan_system(spec, board=board, ram_size=board_ram_size)
    try:
        return ConfiguredVm(plan, _runnable_vm(plan, chosen, where))
    except BaseException:
        # Nothing half-done: the board's host memory goes with the refusal.
        built = next((p.vm for p in plan.vms if p.vm is not None), None)
        if built is not None:
            built.physmem.close()
        raise


def _runnable_vm(plan: SystemPlan, chosen: VmSpec, where: Location) -> VirtualMachine:
    """The plan's VM for ``chosen``, refused when the plan or the boot protocol cannot run it."""
    vm_plan = next(p for p in plan.vms if p.name == chosen.name)
    errors = [f for f in plan.findings + vm_plan.findings if f.severity == "error"]
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if errors[1:] else ""
        raise Sel4VmmError(
            f"VM '{chosen.name}' cannot run as planned: {first.message}{more}",
            location=first.location or where,
            fix=first.fix or f"run 'sel4vmm plan {plan.path}' for every problem",
        )
    if vm_plan.vm is None:  # only with an error finding, handled above
        raise Sel4VmmError(
            f"VM '{chosen.name}' was not built by the plan",
            location=where,
            fix=f"run 'sel4vmm plan {plan.path}'",
        )
    if not vm_plan.vm.ram.regions():
        raise Sel4VmmError(
            f"VM '{chosen.name}' has no RAM in its plan",
            location=chosen.location or where,
            fix="give the VM RAM (guest_ram_mb, or a memory region mapped into it)",
        )
    start, end = BOOT_AREA
    if not vm_plan.vm.ram.is_ram(start, end - start):
        ram = ", ".join(
            f"[{r.start:#x}, {r.end:#x})" for r in sorted(vm_plan.vm.ram.regions(), key=_start)
        )
        raise Sel4VmmError(
            f"VM '{chosen.name}' has no guest RAM at [{start:#x}, {end:#x}), where the "
            f"64-bit boot protocol puts the GDT, zero page, stack, boot page tables and "
            f"command line (its RAM: {ram})",
            location=chosen.ram_location or chosen.location or where,
            fix="map guest RAM at guest-physical 0, as libvmm's x86_64 simple.system does "
            '(<map mr="guest_ram" vaddr="0x0" .../>)',
        )
    return vm_plan.vm


def _start(region: RamRegion) -> int:
    return region.start


def run_configured_guest(
    spec: SystemSpec,
    vm_name: str | None,
    kernel: Path,
    *,
    board: str | None = None,
    board_ram_size: int | None = None,
    initrd: Path | None = None,
    bootargs: str | None = None,
    timeout: float = 300.0,
    until: str | None = None,
    uart_output: Callable[[bytes], None] | None = None,
    on_boot: Callable[[ConfiguredVm, LinuxBoot], None] | None = None,
    virtio: VirtioRequest | None = None,
) -> ConfiguredRun:
    """Plan ``spec``, boot ``kernel`` in its x86 VM ``vm_name`` on KVM and run it.

    ``bootargs`` defaults to the configuration's (CAmkES ``kernel_cmdline``), else
    :data:`DEFAULT_BOOTARGS`.  The run ends when the guest exits, faults or fails, when
    the console has printed ``until``, or after ``timeout`` seconds; ``on_boot`` sees the
    planned VM and the loaded kernel just before the vCPU starts (the command line reports
    them).  ``virtio`` devices are attached at :mod:`.virtio`'s windows, which must be free
    in the plan.  The board's host memory is released when this returns.
    """
    with ImageBlob.open(kernel, role="kernel") as kernel_blob:
        initrd_bytes = None
        if initrd is not None:
            with ImageBlob.open(initrd, role="initrd") as initrd_blob:
                initrd_bytes = bytes(initrd_blob.data)
        configured = plan_x86_vm(spec, vm_name, board=board, board_ram_size=board_ram_size)
        vm = configured.vm
        vm_spec = pick_vm(spec, vm.name)
        cmdline = bootargs or vm_spec.images.bootargs or DEFAULT_BOOTARGS
        try:
            with KvmSession(vm, uart_output=uart_output) as session:
                devices = None
                if virtio is not None and virtio.any:
                    devices = session.attach_virtio(virtio)
                boot = load_linux(
                    session, kernel_blob.data, cmdline, initrd=initrd_bytes, kernel_path=str(kernel)
                )
                if on_boot is not None:
                    on_boot(configured, boot)
                condition = (lambda: until in session.uart.text()) if until is not None else None
                outcome = session.run(timeout=timeout, until=condition)
                console = session.uart.text()
                errors = devices.errors if devices is not None else []
        finally:
            vm.physmem.close()
    return ConfiguredRun(vm.name, boot, outcome, console, errors)

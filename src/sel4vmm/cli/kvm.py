"""``sel4vmm kvm-boot`` and ``sel4vmm kvm-info``: x86_64 Linux on KVM from the command line.

``kvm-boot KERNEL`` builds an x86_64 VM (RAM from an untyped pool, registered at guest 0),
loads a bzImage or ELF vmlinux by the 64-bit boot protocol and streams COM1 to standard
output until the guest stops, ``--until`` text appears or ``--timeout`` passes.  The exit
status is 0 when the guest exited cleanly or the ``--until`` text appeared, 1 otherwise
(the diagnostic says why).  ``kvm-info`` says whether KVM is usable here, whether guest
kernel mode runs at hardware speed, and which exit loop runs (C extension or pure Python).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from sel4vmm.backends.kvm import ioctls
from sel4vmm.backends.kvm.linux import load_linux
from sel4vmm.backends.kvm.run import StopReason
from sel4vmm.backends.kvm.session import KvmSession
from sel4vmm.backends.kvm.speed import measure_kernel_mode_speed
from sel4vmm.backends.kvm.system import KvmSystem, kvm_unavailable_reason
from sel4vmm.errors import Location, Sel4VmmError
from sel4vmm.images.blob import ImageBlob
from sel4vmm.native import describe
from sel4vmm.sel4.arch import X86_64
from sel4vmm.sel4.physmem import MemoryRange, PhysicalMemory
from sel4vmm.sel4.platform import Sel4Platform
from sel4vmm.vm import PoolRequest, VirtualMachine

DEFAULT_CMDLINE = "console=ttyS0 earlyprintk=serial,ttyS0,115200"
_POOL_BITS = 28
_MIB = 1 << 20

err_console = Console(stderr=True, highlight=False)


def _linux_vm(ram_mib: int) -> VirtualMachine:
    """A VM with ``ram_mib`` MiB of RAM at guest 0, backed by 256 MiB pool untyped."""
    if ram_mib < 64 or ram_mib % 2:
        raise Sel4VmmError(
            f"--ram {ram_mib}: x86_64 Linux needs at least 64 MiB, in whole 2 MiB pages",
            fix="use --ram 256",
        )
    ram = ram_mib * _MIB
    pools = -(-ram // (1 << _POOL_BITS)) + 1  # one more for page tables and vCPU objects
    physmem = PhysicalMemory([MemoryRange(0, pools << _POOL_BITS, name="ram")])
    vm = VirtualMachine.create(
        "linux", Sel4Platform(physmem, X86_64), pools=[PoolRequest(_POOL_BITS, pools)]
    )
    vm.ram.register_at(0, ram, page_bits=21)
    return vm


def kvm_boot(
    kernel: Annotated[Path, typer.Argument(help="bzImage (/boot/vmlinuz-*) or ELF vmlinux")],
    cmdline: Annotated[str, typer.Option(help="kernel command line")] = DEFAULT_CMDLINE,
    initrd: Annotated[Path | None, typer.Option(help="initial ramdisk")] = None,
    ram: Annotated[int, typer.Option(help="guest RAM in MiB")] = 256,
    timeout: Annotated[float | None, typer.Option(help="stop the guest after SECONDS")] = None,
    until: Annotated[
        str | None, typer.Option(help="stop once the console has printed this text")
    ] = None,
) -> None:
    """Boot an x86_64 Linux kernel on KVM with its console on standard output."""
    with ImageBlob.open(kernel, role="kernel") as kernel_blob:
        initrd_bytes = None
        if initrd is not None:
            with ImageBlob.open(initrd, role="initrd") as initrd_blob:
                initrd_bytes = bytes(initrd_blob.data)
        vm = _linux_vm(ram)
        out = sys.stdout.buffer

        def show(data: bytes) -> None:
            out.write(data)
            out.flush()

        with KvmSession(vm, uart_output=show) as session:
            boot = load_linux(
                session, kernel_blob.data, cmdline, initrd=initrd_bytes, kernel_path=str(kernel)
            )
            err_console.print(
                f"[dim]{escape(boot.kernel_format)} at {boot.kernel_addr:#x}, entry "
                f"{boot.entry:#x}, {len(boot.e820)} E820 ranges[/]"
            )
            condition = (lambda: until in session.uart.text()) if until is not None else None
            outcome = session.run(timeout=timeout, until=condition)
    if outcome.reason is StopReason.EXITED and outcome.exit_code == 0:
        return
    if (
        outcome.reason is StopReason.STOPPED
        and until is not None
        and outcome.diagnostic == ("stop condition met")
    ):
        return
    err_console.print(
        f"\n[bold red]guest stopped ({outcome.reason.value}):[/] {escape(outcome.diagnostic)}"
    )
    raise typer.Exit(1)


def kvm_info() -> None:
    """Say whether KVM guests can run here, and how fast guest kernel mode is."""
    reason = kvm_unavailable_reason()
    if reason is not None:
        raise Sel4VmmError(reason, location=Location("/dev/kvm"))
    with KvmSystem() as system:
        slots = system.check_extension(ioctls.KVM_CAP_NR_MEMSLOTS)
        leaves = system.supported_cpuid().nent
    speed = measure_kernel_mode_speed()
    print(
        f"/dev/kvm: KVM API {ioctls.KVM_API_VERSION}, {slots} memory slots, {leaves} CPUID leaves"
    )
    print(speed.describe())
    verdict = "hardware-backed" if speed.hardware_backed else "NOT hardware-backed"
    print(f"guest kernel mode: {verdict}")
    print(f"exit loop: {describe('_kvmexit')}")


def register(app: typer.Typer) -> None:
    app.command("kvm-boot")(kvm_boot)
    app.command("kvm-info")(kvm_info)

"""``sel4vmm kvm-boot`` and ``sel4vmm kvm-info``: x86_64 Linux on KVM from the command line.

``kvm-boot SYSTEM --kernel FILE`` runs the x86 VM of a configuration (a CAmkES ``.camkes``
with camkes-vm's ``Init<N>`` VM, or a Microkit ``.system`` for x86_64_generic; ``--vm``,
``--board``, ``-D``, ``-I`` as for ``plan``) with exactly the RAM and windows its plan
gives it (:mod:`sel4vmm.backends.kvm.configured`); without SYSTEM it builds a VM with
``--ram-size`` of RAM (from an untyped pool, registered at guest 0).  Either way it loads
a bzImage or ELF vmlinux by the 64-bit boot protocol and streams COM1 to standard
output until the guest stops, ``--until`` text appears or ``--timeout`` passes (default
:data:`DEFAULT_TIMEOUT`, said at start; a heartbeat on stderr shows the guest is still
running).  The exit status is 0 when the guest exited cleanly or the ``--until`` text
appeared, 1 otherwise (the diagnostic says why).  ``kvm-info`` says whether KVM is usable
here, whether guest kernel mode runs at hardware speed, and which exit loop runs (C
extension or pure Python); ``--json`` prints it as one document.

``--disk FILE`` (with ``--read-only``) serves the image as a virtio-blk device, as it does for
``run``'s emulator: on KVM at guest-physical 0xd0000000 with GSI 5
(:mod:`sel4vmm.backends.kvm.virtio`), announced to the kernel by
``virtio_mmio.device=0x200@0xd0000000:5`` appended to its command line.  Device errors (a
driver that broke the virtio rules, such as a buffer outside guest RAM) are reported on
stderr after the run.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sel4vmm.cli.options import (
    BoardOption,
    BootargsOption,
    DefineOption,
    DiskOption,
    IncludeOption,
    InitrdOption,
    JsonOption,
    KernelOption,
    RamSizeOption,
    ReadOnlyOption,
    TimeoutOption,
    UntilOption,
    VmOption,
    single_vm,
)
from sel4vmm.errors import Location, Sel4VmmError

if TYPE_CHECKING:
    from rich.console import Console

    from sel4vmm.backends.kvm.run import RunOutcome
    from sel4vmm.backends.kvm.virtio import VirtioRequest
    from sel4vmm.vm import VirtualMachine

DEFAULT_BOOTARGS = "console=ttyS0 earlyprintk=serial,ttyS0,115200"
#: Seconds a kvm-boot runs when ``--timeout`` is not given.
DEFAULT_TIMEOUT = 300.0
DEFAULT_RAM_SIZE = 256 << 20
_POOL_BITS = 28
_MIB = 1 << 20
_MIN_RAM = 64 * _MIB
_PAGE_2M = 2 * _MIB


def _linux_vm(ram: int) -> VirtualMachine:
    """A VM with ``ram`` bytes of RAM at guest 0, backed by 256 MiB pool untyped."""
    from sel4vmm.sel4.arch import X86_64
    from sel4vmm.sel4.objects import human_size
    from sel4vmm.sel4.physmem import MemoryRange, PhysicalMemory
    from sel4vmm.sel4.platform import Sel4Platform
    from sel4vmm.vm import PoolRequest, VirtualMachine

    if ram < _MIN_RAM or ram % _PAGE_2M:
        raise Sel4VmmError(
            f"--ram-size {human_size(ram)}: x86_64 Linux needs at least 64 MiB, "
            "in whole 2 MiB pages",
            fix="use --ram-size 256M",
        )
    pools = -(-ram // (1 << _POOL_BITS)) + 1  # one more for page tables and vCPU objects
    physmem = PhysicalMemory([MemoryRange(0, pools << _POOL_BITS, name="ram")])
    vm = VirtualMachine.create(
        "linux", Sel4Platform(physmem, X86_64), pools=[PoolRequest(_POOL_BITS, pools)]
    )
    vm.ram.register_at(0, ram, page_bits=21)
    return vm


def kvm_boot(
    system: Annotated[
        Path | None,
        typer.Argument(
            metavar="SYSTEM",
            help="x86 configuration whose VM runs: a CAmkES .camkes (Init<N> VM) or a "
            "Microkit .system for x86_64_generic (default: a VM with --ram-size of RAM at 0).",
        ),
    ] = None,
    kernel: KernelOption = None,
    vm: VmOption = None,
    board: BoardOption = None,
    define: DefineOption = None,
    include: IncludeOption = None,
    bootargs: BootargsOption = None,
    initrd: InitrdOption = None,
    ram_size: RamSizeOption = None,
    timeout: TimeoutOption = None,
    until: UntilOption = None,
    disk: DiskOption = None,
    read_only: ReadOnlyOption = False,
) -> None:
    """Boot an x86_64 Linux kernel on KVM with its console on standard output.

    With SYSTEM, in that configuration's x86 VM exactly as ``plan`` lays it out.
    """
    from rich.console import Console

    if kernel is None:
        raise Sel4VmmError(
            "no kernel given",
            fix="pass --kernel FILE: a bzImage (/boot/vmlinuz-*) or an ELF vmlinux",
        )
    vm_name = single_vm(vm, "kvm-boot")
    from sel4vmm.backends.kvm.virtio import VirtioRequest

    if read_only and disk is None:
        raise Sel4VmmError(
            "--read-only is about the --disk image, and no --disk was given",
            fix="add --disk FILE, or drop --read-only",
        )
    virtio = VirtioRequest(disk=disk, read_only=read_only)
    err_console = Console(stderr=True, highlight=False)
    limit = DEFAULT_TIMEOUT if timeout is None else timeout
    if system is None:
        options = (("--vm", vm_name), ("--board", board), ("-D", define), ("-I", include))
        given = [name for name, value in options if value]
        if given:
            raise Sel4VmmError(
                f"{', '.join(given)} choose(s) from a configuration, and none was given",
                fix="name the configuration: sel4vmm kvm-boot SYSTEM --kernel FILE",
            )
        outcome, errors = _boot_invented(
            kernel, initrd, bootargs, ram_size, virtio, limit, until, err_console
        )
    else:
        outcome, errors = _boot_configured(
            _ConfiguredRequest(system, vm_name, board, define or [], include or [], ram_size),
            kernel,
            initrd,
            bootargs,
            virtio,
            limit,
            until,
            err_console,
        )
    _report_device_errors(errors, err_console)
    _finish(outcome, until, limit, err_console)


def _report_device_errors(errors: list[str], err_console: Console) -> None:
    """What the virtio devices refused (the guest's driver broke the rules), on stderr."""
    from rich.markup import escape

    for error in errors:
        err_console.print(f"[bold yellow]virtio device error:[/] {escape(error)}", soft_wrap=True)


def _show(data: bytes) -> None:
    out = sys.stdout.buffer
    out.write(data)
    out.flush()


def _running(limit: float, until: str | None) -> str:
    waiting = f", until '{until}'" if until is not None else ""
    return f"running for at most {limit:g} s (--timeout){waiting}"


def _boot_invented(
    kernel: Path,
    initrd: Path | None,
    bootargs: str | None,
    ram_size: int | None,
    virtio: VirtioRequest,
    limit: float,
    until: str | None,
    err_console: Console,
) -> tuple[RunOutcome, list[str]]:
    """No configuration: ``--ram-size`` of RAM at guest 0 from pools, as before.

    Returns the outcome and the virtio devices' errors."""
    from rich.markup import escape

    from sel4vmm.backends.kvm.linux import load_linux
    from sel4vmm.backends.kvm.session import KvmSession
    from sel4vmm.cli.progress import Heartbeat
    from sel4vmm.images.blob import ImageBlob

    with ImageBlob.open(kernel, role="kernel") as kernel_blob:
        initrd_bytes = None
        if initrd is not None:
            with ImageBlob.open(initrd, role="initrd") as initrd_blob:
                initrd_bytes = bytes(initrd_blob.data)
        vm = _linux_vm(DEFAULT_RAM_SIZE if ram_size is None else ram_size)
        with KvmSession(vm, uart_output=_show) as session:
            devices = session.attach_virtio(virtio) if virtio.any else None
            boot = load_linux(
                session,
                kernel_blob.data,
                DEFAULT_BOOTARGS if bootargs is None else bootargs,
                initrd=initrd_bytes,
                kernel_path=str(kernel),
            )
            err_console.print(
                f"[dim]{escape(boot.kernel_format)} at {boot.kernel_addr:#x}, entry "
                f"{boot.entry:#x}, {len(boot.e820)} E820 ranges; "
                f"{escape(_running(limit, until))}[/]",
                soft_wrap=True,
            )
            condition = (lambda: until in session.uart.text()) if until is not None else None
            with Heartbeat("kvm-boot", limit, lambda: len(session.uart.transmitted)):
                outcome = session.run(timeout=limit, until=condition)
            return outcome, devices.errors if devices is not None else []


@dataclass(frozen=True)
class _ConfiguredRequest:
    path: Path
    vm: str | None
    board: str | None
    defines: list[str]
    includes: list[Path]
    board_ram_size: int | None


def _boot_configured(
    request: _ConfiguredRequest,
    kernel: Path,
    initrd: Path | None,
    bootargs: str | None,
    virtio: VirtioRequest,
    limit: float,
    until: str | None,
    err_console: Console,
) -> tuple[RunOutcome, list[str]]:
    """The configuration's VM, planned as ``sel4vmm plan`` plans it, on KVM."""
    from rich.markup import escape

    from sel4vmm.backends.kvm.configured import ConfiguredVm, run_configured_guest
    from sel4vmm.backends.kvm.linux import LinuxBoot
    from sel4vmm.cli.configuration import first_error, read_configuration
    from sel4vmm.cli.progress import Heartbeat

    spec = read_configuration(
        request.path, board=request.board, defines=request.defines, includes=request.includes
    )
    error = first_error(spec)
    if error is not None:
        raise error
    printed = [0]

    def show(data: bytes) -> None:
        printed[0] += len(data)
        _show(data)

    def report(configured: ConfiguredVm, boot: LinuxBoot) -> None:
        ram = ", ".join(f"[{base:#x}, {base + size:#x})" for base, size in configured.ram)
        err_console.print(
            f"[dim]{escape(configured.vm.name)} of {escape(str(request.path))} as planned on "
            f"{escape(configured.plan.board.name)}: RAM {escape(ram)}; "
            f"{escape(boot.kernel_format)} at {boot.kernel_addr:#x}, entry {boot.entry:#x}, "
            f"{len(boot.e820)} E820 ranges; {escape(_running(limit, until))}[/]",
            soft_wrap=True,
        )

    with Heartbeat("kvm-boot", limit, lambda: printed[0]):
        run = run_configured_guest(
            spec,
            request.vm,
            kernel,
            board=request.board,
            board_ram_size=request.board_ram_size,
            initrd=initrd,
            bootargs=bootargs,
            timeout=limit,
            until=until,
            uart_output=show,
            on_boot=report,
            virtio=virtio,
        )
    return run.outcome, run.device_errors


def _finish(outcome: RunOutcome, until: str | None, limit: float, err_console: Console) -> None:
    """Exit 0 for a clean guest exit or the ``--until`` text, else say why and exit 1."""
    from rich.markup import escape

    from sel4vmm.backends.kvm.run import StopReason

    if outcome.reason is StopReason.EXITED and outcome.exit_code == 0:
        return
    if (
        outcome.reason is StopReason.STOPPED
        and until is not None
        and outcome.diagnostic == ("stop condition met")
    ):
        return
    if outcome.reason is StopReason.STOPPED and outcome.diagnostic == "stopped by the host":
        # The only other stopper is the --timeout timer.
        err_console.print(
            f"\n[bold red]guest stopped:[/] it was still running after {limit:g} s "
            "(--timeout); give a longer --timeout to wait more",
            soft_wrap=True,
        )
        raise typer.Exit(1)
    err_console.print(
        f"\n[bold red]guest stopped ({outcome.reason.value}):[/] {escape(outcome.diagnostic)}",
        soft_wrap=True,
    )
    raise typer.Exit(1)


def kvm_info(as_json: JsonOption = False) -> None:
    """Say whether KVM guests can run here, and how fast guest kernel mode is."""
    from sel4vmm.backends.kvm import ioctls
    from sel4vmm.backends.kvm.speed import measure_kernel_mode_speed
    from sel4vmm.backends.kvm.system import KvmSystem, kvm_unavailable_reason
    from sel4vmm.native import describe

    reason = kvm_unavailable_reason()
    if reason is not None:
        if as_json:
            document = {"schema": "sel4vmm-kvm-info", "version": 1, "available": False}
            typer.echo(json.dumps({**document, "reason": reason}, indent=2))
            raise typer.Exit(1)
        raise Sel4VmmError(reason, location=Location("/dev/kvm"))
    with KvmSystem() as system:
        slots = system.check_extension(ioctls.KVM_CAP_NR_MEMSLOTS)
        leaves = system.supported_cpuid().nent
    speed = measure_kernel_mode_speed()
    verdict = "hardware-backed" if speed.hardware_backed else "NOT hardware-backed"
    if as_json:
        document = {
            "schema": "sel4vmm-kvm-info",
            "version": 1,
            "available": True,
            "api_version": ioctls.KVM_API_VERSION,
            "memory_slots": slots,
            "cpuid_leaves": leaves,
            "kernel_mode_ns_per_iteration": speed.ns_per_iteration,
            "speed_overridden": speed.overridden,
            "hardware_backed": speed.hardware_backed,
            "speed": speed.describe(),
            "exit_loop": describe("_kvmexit"),
        }
        typer.echo(json.dumps(document, indent=2))
        return
    print(
        f"/dev/kvm: KVM API {ioctls.KVM_API_VERSION}, {slots} memory slots, {leaves} CPUID leaves"
    )
    print(speed.describe())
    print(f"guest kernel mode: {verdict}")
    print(f"exit loop: {describe('_kvmexit')}")


def register(app: typer.Typer) -> None:
    app.command("kvm-boot")(kvm_boot)
    app.command("kvm-info")(kvm_info)

"""``run_guest``: boot a kernel on the emulated board as a system description lays it out.

This is the one entry point the command line (``sel4vmm run``, ``sel4vmm demo``) and the
tests use for one VM.  With no system file it uses the bundled qemu-virt system (libvmm's
``simple.system``); with no kernel it runs the bundled ``hello`` guest.  Several VMs of one
system run together through :func:`~.system_session.run_system`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

from sel4vmm.backends.unicorn.board import Console, EmulatedBoard, GuestLayout, PassthroughMap
from sel4vmm.backends.unicorn.console_watch import ConsoleEvent, ConsoleWatch
from sel4vmm.backends.unicorn.diagnostics import GuestDiagnostic, StopReason
from sel4vmm.backends.unicorn.event_loop import LoopStatistics
from sel4vmm.backends.unicorn.linux_boot import LinuxBootFiles, classify_kernel, load_linux
from sel4vmm.backends.unicorn.typed_input import TypedInput
from sel4vmm.backends.unicorn.virtio_devices import VirtioBackends
from sel4vmm.config.load import (
    board_from_path,
    config_kind,
    load_system,
    pick_vm,
    raise_first_error,
)
from sel4vmm.config.microkit import MicrokitTarget, read_microkit
from sel4vmm.config.spec import RegionKind, SystemSpec, VmSpec
from sel4vmm.devices.gicv2 import MAX_CPUS
from sel4vmm.errors import Location, Sel4VmmError
from sel4vmm.images.detect import KernelImage

#: The backends ``run_guest`` knows; QEMU and KVM runs live in their own modules.
BACKENDS = ("emulator",)
BUNDLED_GUESTS = ("hello", "memtest", "gictimer", "dma", "badaccess", "smp", "share")


def bundled_guest(name: str) -> Path:
    """Path of a guest binary shipped in ``sel4vmm/data/guests/aarch64``."""
    if name not in BUNDLED_GUESTS:
        raise Sel4VmmError(
            f"there is no bundled guest '{name}'", fix=f"use one of {', '.join(BUNDLED_GUESTS)}"
        )
    return Path(str(resources.files("sel4vmm") / "data" / "guests" / "aarch64" / f"{name}.bin"))


def raw_binary_bootargs(
    kernel: Path, image: KernelImage | None, linux: LinuxBootFiles
) -> str | None:
    """The command line ``--bootargs`` gives a raw binary (it goes to ``/chosen/bootargs``
    of the DTB the VMM generates, as for Linux), or None; the Linux boot files are refused
    for one."""
    if image is not None:
        return None
    if linux.initrd or linux.dtb or linux.dts or linux.overlays:
        raise Sel4VmmError(
            f"{kernel} is a raw binary: --initrd, --dtb, --dts and --overlay are for a Linux Image",
            location=Location(str(kernel)),
            fix="pass an arm64 Linux Image with --kernel, or drop the Linux options",
        )
    return linux.bootargs


def bundled_system() -> Path:
    """The bundled qemu-virt system description (libvmm's ``simple.system``)."""
    return Path(str(resources.files("sel4vmm") / "data" / "systems" / "qemu_virt_aarch64.system"))


@dataclass
class RunResult:
    """How a guest run ended and what it printed."""

    stop_reason: StopReason
    console: bytes
    diagnostic: GuestDiagnostic | None
    layout: GuestLayout
    statistics: LoopStatistics
    faults_handled: int
    #: The console's last lines (what a panic report ends with).
    last_lines: list[str] = field(default_factory=list)
    #: Host seconds the run took, and guest seconds that passed (idle skips included).
    host_seconds: float = 0.0
    guest_seconds: float = 0.0
    #: Guest seconds the VMM skipped while every vCPU idled.
    skipped_seconds: float = 0.0
    #: Whether the kernel booted by the Linux boot protocol (not a raw binary).
    linux: bool = False
    #: What the run reported without stopping (DMA reaching memory not the guest's).
    warnings: list[str] = field(default_factory=list)
    #: Which path emulated MMIO took (the C trampoline or pure Python, and why), and how
    #: many fault-path accesses the C trampoline finished without the Python callbacks.
    mmio_path: str = ""
    trampoline_accesses: int = 0
    #: The virtio-net card (``--net``): MAC, peer, frame counters; None without one.
    network: dict[str, object] | None = None

    @property
    def console_text(self) -> str:
        return self.console.decode("utf-8", "replace").replace("\r\n", "\n")

    @property
    def ok(self) -> bool:
        """The guest powered itself off, or printed what the run waited for."""
        return self.stop_reason in (StopReason.SYSTEM_OFF, StopReason.CONSOLE_MATCH)


def read_system(
    path: Path, *, defines: dict[str, str] | None = None, include_dirs: tuple[Path, ...] = ()
) -> SystemSpec:
    """The system at ``path``, free of errors.  A Microkit system is checked against a
    kernel with as many cores as the emulated board has (as :func:`~.session.run_guest`
    reads it); CAmkES files take the preprocessor's ``-D`` and ``-I``."""
    if config_kind(path) == "microkit" and path.is_file():
        spec = read_microkit(path, MicrokitTarget(arch="aarch64", num_cores=MAX_CPUS))
        spec.board = board_from_path(path) or "qemu_virt_aarch64"
    else:
        # As run_guest reads it (config.load.load_vm): for the emulated board, whose
        # CAmkES platform (PLAT) is the default unless -D gives one.
        spec = load_system(
            path,
            arch="aarch64",
            board="qemu_virt_aarch64",
            defines=defines,
            include_dirs=include_dirs,
        )
    raise_first_error(spec, path)
    return spec


def _load_vm(path: Path, vm_name: str | None) -> VmSpec:
    """The VM to run: one of the system :func:`read_system` reads."""
    return pick_vm(read_system(path), vm_name, first_if_many=True)


def layout_from_system(path: Path, vm_name: str | None = None) -> GuestLayout:
    """Take the first virtual machine's RAM and passthrough maps from a configuration.

    Microkit ``.system`` and CAmkES ``.camkes`` files are read by the configuration
    readers (which decide which region is guest RAM); of the passthrough regions, the
    one at the UART's physical address is the console and the one at the GIC's virtual
    CPU interface is the guest's GICC.  The VM's vCPU count is the configuration's.
    """
    return layout_of_vm(_load_vm(path, vm_name), path)


def layout_of_vm(vm: VmSpec, path: Path) -> GuestLayout:
    """The emulated board's layout of one VM of the configuration at ``path``."""
    layout = GuestLayout(name=vm.name, source=str(path), num_vcpus=vm.num_vcpus)
    ram = [r for r in vm.regions if r.kind is RegionKind.RAM]
    if not ram:
        raise Sel4VmmError(
            f"virtual machine '{vm.name}' maps no RAM (an executable region without phys_addr)",
            location=vm.location or Location(str(path)),
            fix='map a memory region with perms="rwx" into the virtual machine',
        )
    for region in vm.regions:
        if region.kind is not RegionKind.PASSTHROUGH or region.phys_addr is None:
            continue
        passthrough = PassthroughMap(region.name, region.guest_addr, region.phys_addr, region.size)
        if region.phys_addr == layout.uart.paddr:
            layout = replace(layout, uart=passthrough)
        elif region.phys_addr == layout.gic_vcpu.paddr:
            layout = replace(layout, gic_vcpu=passthrough)
    return replace(layout, ram_base=ram[0].guest_addr, ram_size=ram[0].size)


def run_guest(
    system_path: str | Path | None = None,
    kernel_path: str | Path | None = None,
    backend: str = "emulator",
    console: Callable[[bytes], None] | None = None,
    *,
    one_to_one: bool = True,
    ram_size: int | None = None,
    console_input: bytes = b"",
    wait_for_input: Callable[[float], bool] | None = None,
    input_source: Callable[[], bytes] | None = None,
    time_limit: float | None = 60.0,
    num_vcpus: int | None = None,
    linux: LinuxBootFiles | None = None,
    until: str | None = None,
    stop_check: Callable[[], StopReason | None] | None = None,
    interactive: bool | None = None,
    vm_name: str | None = None,
    smmu: bool = False,
    virtio: VirtioBackends | None = None,
) -> RunResult:
    """Boot ``kernel_path`` (default: the bundled hello guest) in the VM ``system_path``
    describes (default: the bundled qemu-virt system) and run it until it stops.

    An arm64 Linux Image boots by the Linux boot protocol with ``linux``'s initrd, device
    tree and command line (:mod:`.linux_boot`); any other file of no known format is a
    bare-metal binary.  ``console`` receives guest output as it is printed;
    ``console_input`` is typed into the UART (before a bare-metal guest starts, once
    Linux listens: :mod:`.typed_input`); ``wait_for_input(timeout)`` (with
    ``input_source`` reading what arrived) lets an idle guest wait for a terminal instead
    of stopping.  ``until`` ends the run successfully when the console prints it; a
    kernel panic or oops ends it as :attr:`StopReason.KERNEL_PANIC`; ``stop_check`` is
    asked between slices (Ctrl-C, signals).  ``num_vcpus`` overrides the configuration's
    vCPU count.  ``virtio`` names the backends of the DTB's virtio-mmio nodes (``--disk``,
    ``--console virtio``: then console input goes to virtio-console, not the UART).
    """
    if backend not in BACKENDS:
        raise Sel4VmmError(f"unknown backend '{backend}'", fix=f"use one of {', '.join(BACKENDS)}")
    started = time.monotonic()
    layout = layout_from_system(Path(system_path) if system_path else bundled_system(), vm_name)
    layout = layout.with_ram(one_to_one=one_to_one, size=ram_size).with_vcpus(num_vcpus)
    layout = replace(layout, smmu=smmu)
    kernel = Path(kernel_path) if kernel_path else bundled_guest("hello")
    linux = linux or LinuxBootFiles()
    image = classify_kernel(kernel)
    bootargs = raw_binary_bootargs(kernel, image, linux)
    if bootargs is not None:
        layout = replace(layout, bootargs=bootargs)
    watch = ConsoleWatch(until)

    def to_console(data: bytes) -> None:
        watch.feed(data)
        if console is not None:
            console(data)

    sink = Console(to_console)
    board: EmulatedBoard
    typed: TypedInput | None = None
    #: --input for virtio-console, held until the guest has printed through it: Linux's
    #: hvc leaves bytes that arrive before its tty is open in the receive buffer until
    #: the next interrupt, so text typed at boot would wait for more typing.
    held_input = b""

    def deliver_held_input() -> bool:
        nonlocal held_input
        if not held_input or not board.virtio.console_output_bytes:
            return False
        board.feed_input(held_input)
        held_input = b""
        return True

    def wait(timeout: float) -> bool:
        if typed is not None and typed.poll(idle=True):
            return True
        if deliver_held_input():
            return True
        if wait_for_input is None or not wait_for_input(timeout):
            return False
        data = input_source() if input_source is not None else b""
        board.feed_input(data)
        return True

    def check() -> StopReason | None:
        if typed is not None:
            typed.poll()
        deliver_held_input()
        if wait_for_input is not None and wait_for_input(0):
            # Keys typed while the guest is busy (Ctrl-C to a running command).
            board.feed_input(input_source() if input_source is not None else b"")
        if watch.event is ConsoleEvent.UNTIL:
            return StopReason.CONSOLE_MATCH
        if watch.event is ConsoleEvent.PANIC:
            return StopReason.KERNEL_PANIC
        return stop_check() if stop_check is not None else None

    needs_wait = wait_for_input is not None or (console_input != b"" and image is not None)
    board = EmulatedBoard(
        layout,
        sink,
        wait_for_input=wait if needs_wait else None,
        interactive=wait_for_input is not None if interactive is None else interactive,
    )
    board.loop.stop_checks.append(check)
    try:
        if image is None and virtio is not None and virtio.any:
            raise Sel4VmmError(
                f"{kernel} is a raw binary: --disk and --console virtio are for a Linux Image "
                "booted with a device tree that declares virtio,mmio nodes",
                location=Location(str(kernel)),
                fix="pass an arm64 Linux Image with --kernel and --dts, or drop --disk/--console",
            )
        if image is None and virtio is not None and virtio.net_required:
            raise Sel4VmmError(
                f"{kernel} is a raw binary: --net {virtio.net} is for a Linux Image booted "
                "with a device tree that declares a virtio-net node",
                location=Location(str(kernel)),
                fix="pass an arm64 Linux Image with --kernel and --dts, or drop --net",
            )
        entry = (
            board.load_file(kernel) if image is None else load_linux(board, image, linux, virtio)
        )
        if console_input and image is None:
            board.feed_input(console_input)
        elif console_input and board.virtio.console is not None:
            held_input = console_input
        elif console_input:
            typed = TypedInput(board.uart, board.clock, console_input)
        reason = board.loop.run(entry, time_limit=time_limit)
    finally:
        board.close()
    if watch.panicking and reason is not StopReason.CONSOLE_MATCH:
        reason = StopReason.KERNEL_PANIC
    clock = board.clock
    return RunResult(
        stop_reason=reason,
        console=bytes(sink.output),
        diagnostic=(board.loop.stopped_by or board.vcpu).diagnostic,
        layout=layout,
        statistics=board.loop.stats,
        faults_handled=sum(vcpu.faults_handled for vcpu in board.vcpus),
        last_lines=watch.last_lines,
        host_seconds=time.monotonic() - started,
        guest_seconds=clock.ticks_to_seconds(clock.now()),
        skipped_seconds=clock.ticks_to_seconds(clock.skipped_ticks),
        linux=image is not None,
        warnings=[*board.warnings, *board.virtio.errors],
        mmio_path=board.mmio_path,
        trampoline_accesses=sum(
            vcpu.trampolines.fast_accesses for vcpu in board.vcpus if vcpu.trampolines
        ),
        network=board.virtio.net.report() if board.virtio.net is not None else None,
    )

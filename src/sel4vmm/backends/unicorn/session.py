"""``run_guest``: boot a kernel on the emulated board as a system description lays it out.

This is the one entry point the command line (``sel4vmm run``, ``sel4vmm demo``) and the
tests use.  With no system file it uses the bundled qemu-virt system (libvmm's
``simple.system``); with no kernel it runs the bundled ``hello`` guest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

from sel4vmm.backends.unicorn.board import Console, EmulatedBoard, GuestLayout, PassthroughMap
from sel4vmm.backends.unicorn.diagnostics import GuestDiagnostic, StopReason
from sel4vmm.backends.unicorn.event_loop import LoopStatistics
from sel4vmm.backends.unicorn.linux_boot import LinuxBootFiles, classify_kernel, load_linux
from sel4vmm.config.load import load_vm
from sel4vmm.config.spec import RegionKind
from sel4vmm.errors import Location, Sel4VmmError

#: The backends ``run_guest`` knows; QEMU and KVM runs live in their own modules.
BACKENDS = ("emulator",)
BUNDLED_GUESTS = ("hello", "memtest", "gictimer", "dma", "badaccess", "smp")


def bundled_guest(name: str) -> Path:
    """Path of a guest binary shipped in ``sel4vmm/data/guests/aarch64``."""
    if name not in BUNDLED_GUESTS:
        raise Sel4VmmError(
            f"there is no bundled guest '{name}'", fix=f"use one of {', '.join(BUNDLED_GUESTS)}"
        )
    return Path(str(resources.files("sel4vmm") / "data" / "guests" / "aarch64" / f"{name}.bin"))


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

    @property
    def console_text(self) -> str:
        return self.console.decode("utf-8", "replace").replace("\r\n", "\n")

    @property
    def ok(self) -> bool:
        """The guest powered itself off: the only clean end of a run."""
        return self.stop_reason is StopReason.SYSTEM_OFF


def layout_from_system(path: Path) -> GuestLayout:
    """Take the first virtual machine's RAM and passthrough maps from a configuration.

    Microkit ``.system`` and CAmkES ``.camkes`` files are read by the configuration
    readers (which decide which region is guest RAM); of the passthrough regions, the
    one at the UART's physical address is the console and the one at the GIC's virtual
    CPU interface is the guest's GICC.  The VM's vCPU count is the configuration's.
    """
    vm = load_vm(path, board="qemu_virt_aarch64", first_if_many=True)
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
) -> RunResult:
    """Boot ``kernel_path`` (default: the bundled hello guest) in the VM ``system_path``
    describes (default: the bundled qemu-virt system) and run it until it stops.

    ``console`` receives guest output as it is printed; ``console_input`` is typed into
    the UART before the guest starts; ``wait_for_input(timeout)`` (with ``input_source``
    reading what arrived) lets an idle guest wait for a terminal instead of stopping.
    ``num_vcpus`` overrides the configuration's vCPU count.
    """
    if backend not in BACKENDS:
        raise Sel4VmmError(f"unknown backend '{backend}'", fix=f"use one of {', '.join(BACKENDS)}")
    layout = layout_from_system(Path(system_path) if system_path else bundled_system())
    layout = layout.with_ram(one_to_one=one_to_one, size=ram_size).with_vcpus(num_vcpus)
    kernel = Path(kernel_path) if kernel_path else bundled_guest("hello")
    linux = linux or LinuxBootFiles()
    image = classify_kernel(kernel)
    if image is None and linux.any:
        raise Sel4VmmError(
            f"{kernel} is a raw binary: --initrd, --dtb, --dts, --overlay and --bootargs "
            "are for a Linux Image",
            location=Location(str(kernel)),
            fix="pass an arm64 Linux Image with --kernel, or drop the Linux options",
        )
    sink = Console(console)

    board: EmulatedBoard

    def wait(timeout: float) -> bool:
        assert wait_for_input is not None
        if not wait_for_input(timeout):
            return False
        data = input_source() if input_source is not None else b""
        board.uart.feed_input(data)
        return True

    board = EmulatedBoard(layout, sink, wait_for_input=wait if wait_for_input else None)
    try:
        entry = board.load_file(kernel) if image is None else load_linux(board, image, linux)
        if console_input:
            board.uart.feed_input(console_input)
        reason = board.loop.run(entry, time_limit=time_limit)
    finally:
        board.close()
    return RunResult(
        stop_reason=reason,
        console=bytes(sink.output),
        diagnostic=(board.loop.stopped_by or board.vcpu).diagnostic,
        layout=layout,
        statistics=board.loop.stats,
        faults_handled=sum(vcpu.faults_handled for vcpu in board.vcpus),
    )

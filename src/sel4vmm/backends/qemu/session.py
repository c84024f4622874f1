"""``run_qemu``: boot Linux in QEMU from guest RAM that sel4vmm placed and loaded.

The steps, each owned by one module of this package:

1. the Microkit system (or CAmkES configuration) says where guest RAM is, how big, and
   how many vCPUs (:func:`vm_layout`);
2. :class:`~.shared_ram.SharedGuestRam` makes that RAM a shared-memory file and gives it to
   a :class:`~sel4vmm.vm.VirtualMachine` 1:1;
3. QEMU is started *paused* on the same file (:mod:`.machine`, :mod:`.process`) with the
   machine the guest's device tree needs (:mod:`.tree_requirements`);
4. meanwhile :func:`~.loading.load_for_qemu` places and writes kernel, initrd, DTB and
   boot stub through ``vm.ram``;
5. ``cont`` over QMP (:mod:`.monitor`) starts the CPU at the stub; QEMU plays the board's
   devices (PL011 on stdout, GIC, PSCI) and the console is streamed until the guest
   powers off.

The RAM file is removed and QEMU is killed on every way out (timeout, ``until`` text,
error, Ctrl-C, SIGTERM: :mod:`.signals`).  A run without an explicit limit stops after
:data:`DEFAULT_TIMEOUT` seconds unless it is interactive; the limit is said at the start and
a progress line every few seconds says the guest is still running.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

from sel4vmm.backends.qemu.console import ConsoleSink, ConsoleStream
from sel4vmm.backends.qemu.loading import BootFiles, LoadedBoot, load_for_qemu
from sel4vmm.backends.qemu.machine import (
    DEFAULT_CPU,
    QemuMachine,
    dump_dtb_command,
    find_qemu,
    sel4vmm_boot_command,
)
from sel4vmm.backends.qemu.monitor import QmpClient, QmpError
from sel4vmm.backends.qemu.process import ProcessOutcome, QemuProcess
from sel4vmm.backends.qemu.shared_ram import SharedGuestRam
from sel4vmm.backends.qemu.signals import signals_stop_the_run
from sel4vmm.backends.qemu.tree_requirements import tree_requirements
from sel4vmm.config.load import load_vm
from sel4vmm.config.spec import RegionKind, VmSpec
from sel4vmm.errors import Location, Sel4VmmError
from sel4vmm.images.prepare import ram_windows_of

#: The board QEMU plays (CAmkES configurations pick their platform directory by it).
QEMU_BOARD = "qemu_virt_aarch64"
#: Seconds QEMU may take to write its device tree and exit (no guest runs).
DUMP_DTB_TIMEOUT = 60.0
#: Seconds a non-interactive run lasts when no timeout is given (a Linux boot to a shell
#: takes ~2 s here; a guest that never powers off must not run forever).
DEFAULT_TIMEOUT = 600.0

#: Where a run says what it is doing (its limit, its progress): one line each.
StatusReport = Callable[[str], None]


def status_to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class VmLayout:
    """What the QEMU backend takes from a system description: the VM and its RAM."""

    name: str
    ram_base: int
    ram_size: int
    page_bits: int
    source: str
    num_vcpus: int = 1


@dataclass
class QemuRunResult:
    """How a QEMU run ended."""

    #: QEMU's exit status (0 after the guest's PSCI SYSTEM_OFF); None when it was stopped.
    exit_code: int | None
    console: str
    timed_out: bool
    #: Seconds from the start of :func:`run_qemu` to the marker, or None if never seen.
    marker_seconds: float | None
    #: Seconds spent reading, placing and writing the images (before QEMU started).
    load_seconds: float
    command: list[str]
    boot: LoadedBoot
    stderr: str = ""
    layout: VmLayout | None = None
    notes: list[str] = field(default_factory=list)
    #: Seconds from the start of :func:`run_qemu` to the ``until`` text, or None.
    until_seconds: float | None = None
    #: Seconds per step, in order (configuration, RAM file, device tree, QEMU start, image
    #: load, QMP handshake + cont), for bench/bench_qemu_boot.py.
    steps: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """The console printed the ``until`` text, or QEMU exited by itself with status 0
        (the guest powered off).

        QEMU also exits 0 when somebody else sends it SIGTERM; it says so on stderr, and
        that is not a power-off.
        """
        if self.until_seconds is not None:
            return True
        killed = "terminating on signal" in self.stderr
        return self.exit_code == 0 and not self.timed_out and not killed


def bundled_system() -> Path:
    """The qemu_virt_aarch64 system shipped with sel4vmm (libvmm's ``simple.system``)."""
    return Path(str(resources.files("sel4vmm") / "data" / "systems" / "qemu_virt_aarch64.system"))


def vm_layout(system_path: Path, vm_name: str | None = None) -> VmLayout:
    """Read a Microkit ``.system`` or CAmkES ``.camkes`` configuration for QEMU virt and take
    the guest RAM and vCPUs of one of its virtual machines."""
    vm = load_vm(system_path, vm_name=vm_name, board=QEMU_BOARD, first_if_many=True)
    return layout_of(vm, str(system_path))


def layout_of(vm: VmSpec, source: str) -> VmLayout:
    """The one RAM window of ``vm`` (a QEMU virt machine has a single RAM bank)."""
    windows = ram_windows_of(vm)
    if not windows:
        raise Sel4VmmError(
            f"virtual machine '{vm.name}' has no guest RAM",
            location=vm.location or Location(source),
            fix="map a memory region into both the virtual machine and its VMM",
        )
    if len(windows) > 1:
        shown = ", ".join(f"[{w.base:#x}, {w.end:#x})" for w in windows)
        raise Sel4VmmError(
            f"virtual machine '{vm.name}' has {len(windows)} separate RAM windows ({shown}); "
            "QEMU virt has one RAM bank",
            location=vm.ram_location or vm.location or Location(source),
            fix="give the guest one contiguous RAM region, or use the emulator backend",
        )
    ram_regions = [r for r in vm.regions if r.kind is RegionKind.RAM]
    page_bits = min((r.page_bits for r in ram_regions), default=12)
    return VmLayout(
        vm.name, windows[0].base, windows[0].size, page_bits, source, num_vcpus=vm.num_vcpus
    )


def qemu_device_tree(qemu: str, machine: QemuMachine, directory: Path) -> Path:
    """The device tree QEMU generates for ``machine`` (``-M ...,dumpdtb=``), as a file.

    It describes exactly the devices QEMU emulates, so it is the right base when the user
    has no device tree of their own; sel4vmm still rewrites its memory and /chosen.
    """
    output = directory / "qemu-virt.dtb"
    with QemuProcess(dump_dtb_command(qemu, machine, output)) as process:
        outcome = process.stream(ConsoleStream(), DUMP_DTB_TIMEOUT)
    if outcome.exit_code != 0 or not output.is_file():
        lines = [line for line in outcome.stderr.splitlines() if line.strip()]
        raise Sel4VmmError(
            "QEMU could not produce its device tree (dumpdtb): "
            + (lines[-1] if lines else f"exit status {outcome.exit_code}"),
            fix="pass the guest's device tree with --dtb or --dts",
        )
    return output


def _resume(process: QemuProcess, qmp_socket: Path) -> ProcessOutcome | None:
    """Start the paused CPU; if QEMU died instead, how it ended (its stderr says why)."""
    try:
        client = QmpClient.connect(qmp_socket, alive=process.alive)
    except QmpError:
        if process.alive():
            raise
        return process.stream(ConsoleStream())
    try:
        client.command("cont")
    finally:
        client.close()
    return None


def run_qemu(
    system_path: Path | None,
    kernel: Path,
    initrd: Path | None = None,
    dtb: Path | None = None,
    dts: Path | None = None,
    overlays: list[Path] | None = None,
    bootargs: str | None = None,
    console: ConsoleSink | None = None,
    timeout: float | None = None,
    marker: str | None = None,
    *,
    vm_name: str | None = None,
    qemu_binary: str | os.PathLike[str] | None = None,
    cpu: str = DEFAULT_CPU,
    interactive: bool = False,
    until: str | None = None,
    status: StatusReport | None = status_to_stderr,
) -> QemuRunResult:
    """Boot ``kernel`` in QEMU from RAM sel4vmm loaded, stream the console, wait for exit.

    ``system_path`` (default: the bundled qemu_virt_aarch64 system) gives guest RAM;
    ``dtb`` or ``dts`` + ``overlays`` the guest's device tree (default: the one QEMU
    generates), whose ``/memory`` and ``/chosen`` (``bootargs``, initrd) sel4vmm
    rewrites.  ``timeout`` stops QEMU that many seconds after it started (default
    :data:`DEFAULT_TIMEOUT`, none for an interactive run); ``marker`` is a console string
    whose first appearance is timed; ``until`` is one whose appearance ends the run
    successfully.  ``interactive`` connects the terminal's input to the guest UART.
    ``status`` gets the limit at the start and a progress line now and then.  SIGINT and
    SIGTERM stop the run cleanly (:class:`~.signals.RunStopped` propagates).
    """
    with signals_stop_the_run():
        return _run_qemu(
            system_path,
            kernel,
            BootFiles(kernel, initrd, dtb, dts, tuple(overlays or ()), bootargs),
            console,
            _limit(timeout, interactive),
            marker,
            until,
            vm_name=vm_name,
            qemu_binary=qemu_binary,
            cpu=cpu,
            interactive=interactive,
            status=status,
        )


def _limit(timeout: float | None, interactive: bool) -> float | None:
    """The run's time limit: the one given, else none when interactive, else the default."""
    if timeout is not None:
        return timeout
    return None if interactive else DEFAULT_TIMEOUT


def _run_qemu(
    system_path: Path | None,
    kernel: Path,
    files: BootFiles,
    console: ConsoleSink | None,
    timeout: float | None,
    marker: str | None,
    until: str | None,
    *,
    vm_name: str | None,
    qemu_binary: str | os.PathLike[str] | None,
    cpu: str,
    interactive: bool,
    status: StatusReport | None,
) -> QemuRunResult:
    started = time.monotonic()
    steps: dict[str, float] = {}
    last = [started]

    def step(name: str) -> None:
        now = time.monotonic()
        steps[name], last[0] = now - last[0], now

    qemu = find_qemu(qemu_binary)
    layout = vm_layout(system_path if system_path is not None else bundled_system(), vm_name)
    step("configuration")
    stream = ConsoleStream(console, marker, until=until, started=started)
    notes: list[str] = []
    with (
        SharedGuestRam(
            layout.name, layout.ram_size, ram_base=layout.ram_base, page_bits=layout.page_bits
        ) as ram,
        tempfile.TemporaryDirectory(prefix="sel4vmm-qemu-") as scratch,
    ):
        step("RAM file")
        if files.dtb is None and files.dts is None and not files.overlays:
            default = QemuMachine(layout.ram_size, cpu=cpu, cpus=layout.num_vcpus)
            files = replace(files, dtb=qemu_device_tree(qemu, default, Path(scratch)))
            notes.append("no device tree given: QEMU virt's own (dumpdtb) was used")
        tree = files.open_tree()
        step("device tree")
        needs = tree_requirements(tree.to_bytes(), files.tree_source)
        machine = QemuMachine(
            layout.ram_size,
            cpu=cpu,
            cpus=layout.num_vcpus,
            gic_version=needs.gic_version,
            virtualization=needs.psci_smc,
        )
        qmp_socket = Path(scratch) / "qmp.sock"
        command = sel4vmm_boot_command(
            qemu, machine, ram.path, ram.stub_addr, qmp_socket=qmp_socket
        )
        with QemuProcess(command, interactive=interactive) as process:
            step("QEMU start")
            # QEMU starts paused and initialises while the images are loaded.
            boot = load_for_qemu(ram, files, tree)
            load_seconds = time.monotonic() - started
            step("image load")
            outcome = _resume(process, qmp_socket)
            step("QMP handshake + cont")
            if outcome is None:
                # QEMU answered QMP, so its memory backend has mapped the file.
                ram.remove_name()
                if status is not None:
                    _say_limits(status, timeout, until)
                outcome = process.stream(
                    stream, timeout, _progress(status, timeout) if status is not None else None
                )
    if outcome.exit_code not in (0, None) and not stream.text:
        lines = [line for line in outcome.stderr.splitlines() if line.strip()]
        raise Sel4VmmError(
            f"QEMU refused to start (exit status {outcome.exit_code}): "
            + (lines[-1] if lines else "no message"),
            fix="check that QEMU is 7.2 or newer and supports this machine",
        )
    if outcome.timed_out:
        notes.append(
            f"the guest was still running after {timeout:g} s (--timeout); QEMU was stopped"
        )
    if outcome.until_seen:
        notes.append(f"the console printed {until!r} (--until); QEMU was stopped")
    return QemuRunResult(
        exit_code=outcome.exit_code,
        console=stream.text,
        timed_out=outcome.timed_out,
        marker_seconds=stream.marker_seconds,
        load_seconds=load_seconds,
        command=command,
        boot=boot,
        stderr=outcome.stderr,
        layout=layout,
        notes=notes,
        until_seconds=stream.until_seconds,
        steps=steps,
    )


def _say_limits(status: StatusReport, timeout: float | None, until: str | None) -> None:
    limit = f"at most {timeout:g} s (--timeout)" if timeout is not None else "no time limit"
    stop = f", or until the console prints {until!r} (--until)" if until is not None else ""
    status(f"[qemu: guest running; {limit}{stop}]")


def _progress(status: StatusReport, timeout: float | None) -> Callable[[float, int], None]:
    def report(seconds: float, console_bytes: int) -> None:
        limit = f", stops at {timeout:g} s (--timeout)" if timeout is not None else ""
        status(f"[qemu: running {seconds:.0f} s, {console_bytes} console bytes{limit}]")

    return report

"""``sel4vmm run [SYSTEM] [--kernel IMAGE] [--backend emulator|qemu]``: boot a guest.

Both backends boot Linux from RAM sel4vmm placed and loaded with the same options
(``--initrd``, ``--dtb``/``--dts``, ``--overlay``, ``--bootargs``): on the emulator (the
default) sel4vmm's own VMM runs it on unicorn; with ``--backend qemu`` QEMU plays the
board.  The emulator also runs raw bare-metal binaries (the bundled guests).  With no
``--kernel`` the emulator boots Debian's arm64 kernel (fetched by ``./install.sh``) with a
busybox initramfs whose ``/init`` prints a marker and powers off.

The guest's UART goes to the terminal (or ``--log``).  With a terminal on stdin it is
put in raw mode: keys (Ctrl-C included) go to the guest, and Ctrl-A X stops the VM (as
in QEMU; Ctrl-A Ctrl-A types a Ctrl-A).  Exit status: 0 when the guest powers itself off
(or prints ``--until``'s text, or is stopped with Ctrl-A X), 1 when the VMM had to stop
it or the guest kernel panicked (the diagnostic or the panic's last lines say why), 130
after SIGINT and 143 after SIGTERM (checked between slices, never inside unicorn).
"""

from __future__ import annotations

import io
import json
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, BinaryIO, TextIO

import typer
from rich.console import Console
from rich.markup import escape

from sel4vmm.backends.unicorn.default_linux import build_marker_initramfs, find_debian_arm64
from sel4vmm.backends.unicorn.diagnostics import StopReason
from sel4vmm.backends.unicorn.linux_boot import LinuxBootFiles
from sel4vmm.backends.unicorn.session import (
    BUNDLED_GUESTS,
    bundled_guest,
    run_guest,
)
from sel4vmm.backends.unicorn.virtio_devices import VirtioBackends
from sel4vmm.cli.options import (
    BackendOption,
    BootargsOption,
    ConsoleKind,
    ConsoleOption,
    DefineOption,
    DiskOption,
    DtbOption,
    DtsOption,
    IncludeOption,
    InitrdOption,
    InputOption,
    JsonOption,
    KernelOption,
    LogOption,
    NetKind,
    NetOption,
    OutOption,
    OverlayOption,
    PoolsOption,
    RamSizeOption,
    ReadOnlyOption,
    SmmuOption,
    TimeoutOption,
    UntilOption,
    VcpusOption,
    VmOption,
    single_vm,
)
from sel4vmm.cli.run_report import exit_status, report, run_document
from sel4vmm.cli.terminal import SignalFlag, TerminalSession
from sel4vmm.errors import Sel4VmmError


def _kernel_path(kernel: str | None) -> Path | None:
    if kernel is None:
        return None
    if kernel in BUNDLED_GUESTS:
        return bundled_guest(kernel)
    return Path(kernel)


def _open_log(path: Path) -> BinaryIO:
    """The console log file, or a clear error when it cannot be written."""
    try:
        return path.open("wb")
    except OSError as error:
        raise Sel4VmmError(
            f"cannot write the console log {path}: {error.strerror}",
            fix="give --log a writable path",
        ) from None


def _open_text_log(path: Path) -> TextIO:
    return io.TextIOWrapper(_open_log(path), encoding="utf-8", write_through=True)


#: The emulator's time limit when none is given and stdin is not a terminal.
DEFAULT_TIMEOUT = 300.0


def run(
    system: Annotated[
        Path | None,
        typer.Argument(
            metavar="SYSTEM",
            help="Microkit .system or CAmkES .camkes file (default: the bundled qemu-virt system)",
        ),
    ] = None,
    kernel: KernelOption = None,
    backend: BackendOption = "emulator",
    initrd: InitrdOption = None,
    dtb: DtbOption = None,
    dts: DtsOption = None,
    overlay: OverlayOption = None,
    bootargs: BootargsOption = None,
    vm: VmOption = None,
    define: DefineOption = None,
    include: IncludeOption = None,
    until: UntilOption = None,
    qemu: Annotated[
        str | None,
        typer.Option("--qemu", metavar="FILE", help="qemu: the qemu-system-aarch64 to run."),
    ] = None,
    pools: PoolsOption = False,
    smmu: SmmuOption = False,
    disk: DiskOption = None,
    read_only: ReadOnlyOption = False,
    console: ConsoleOption = "pl011",
    net: NetOption = None,
    ram_size: RamSizeOption = None,
    send: InputOption = None,
    log: LogOption = None,
    out: OutOption = None,
    timeout: TimeoutOption = None,
    vcpus: VcpusOption = None,
    as_json: JsonOption = False,
) -> None:
    """Boot a guest and stream its console; exit 0 when it powers off, 1 if it was stopped.

    Both backends take --kernel, --initrd, --dtb/--dts/--overlay, --bootargs, --vm,
    --until, --timeout and --log.  Only the emulator (unicorn) backend takes --pools,
    --smmu, --ram-size, --input, --vcpus, --json, --disk/--read-only, --console and --net, and
    bundled guest names as --kernel (hello, memtest, gictimer, dma, badaccess, smp, share)
    (--bootargs is a raw binary's /chosen/bootargs); only
    the qemu backend takes --qemu.  --disk and --console virtio serve virtio-blk and
    virtio-console on the virtio,mmio nodes of the guest's device tree (--dts); --net
    names the peer of the virtio-net card on its net node (default: the VMM's switch).
    The emulator's default kernel is Debian's arm64 kernel from ./install.sh with a
    busybox initramfs; its default --timeout is 300 s without a terminal.

    A system of several VMs runs them all together on one emulated board (or those
    named by --vm, repeatable; -D/-I for CAmkES files), each with the same --kernel and
    Linux options, in the system's schedule (Microkit priority, budget, period).  Each
    console line is labelled [vm]; --log FILE takes the whole labelled console, --out
    DIR also writes each VM's console to DIR/<vm>.log (with --json and no --out, to a
    temporary directory).  Typed keys go to the focused VM; Ctrl-A N moves the focus.
    """
    if backend == "qemu":
        emulator_only = {
            "--json": as_json,
            "--pools": pools,
            "--ram-size": ram_size is not None,
            "--input": send is not None,
            "--vcpus": vcpus is not None,
            "--smmu": smmu,
            "--disk": disk is not None,
            "--read-only": read_only,
            "--console": console != "pl011",
            "--net": net is not None,
            "--out": out is not None,
            "-D/--define": bool(define),
            "-I/--include": bool(include),
        }
        given = [name for name, used in emulator_only.items() if used]
        if given:
            raise Sel4VmmError(
                f"{', '.join(given)}: only the emulator backend has "
                f"{'this option' if len(given) == 1 else 'these options'}",
                fix="drop it, or run on the emulator (the default backend)",
            )
        if kernel is None:
            raise Sel4VmmError(
                "no kernel given for the qemu backend",
                fix="pass --kernel PATH (an arm64 Linux Image)",
            )
        run_on_qemu(
            QemuRequest(
                system,
                Path(kernel),
                initrd,
                dtb,
                dts,
                overlay or [],
                bootargs,
                single_vm(vm, "run --backend qemu"),
                until,
                qemu,
                log,
                timeout,
            )
        )
        return
    request = EmulatorRequest(
        system=system,
        kernel=None if kernel is None else str(kernel),
        linux=LinuxBootFiles(initrd, dtb, dts, tuple(overlay or ()), bootargs),
        pools=pools,
        ram_size=ram_size,
        send=send,
        log=log,
        timeout=timeout,
        vcpus=vcpus,
        until=until,
        as_json=as_json,
        vm=vm[0] if vm and len(vm) == 1 else None,
        vms=list(vm or []),
        defines=list(define or []),
        includes=list(include or []),
        out=out,
        smmu=smmu,
        virtio=_virtio_backends(disk, read_only, console, net),
    )
    raise typer.Exit(run_on_emulator(request))


def _virtio_backends(
    disk: Path | None, read_only: bool, console: ConsoleKind, net: NetKind | None = None
) -> VirtioBackends:
    if read_only and disk is None:
        raise Sel4VmmError(
            "--read-only is about the --disk image, and no --disk was given",
            fix="add --disk FILE, or drop --read-only",
        )
    return VirtioBackends(
        disk=disk,
        read_only=read_only,
        console=console == "virtio",
        net=net or "switch",
        net_required=net is not None and net != "none",
    )


@dataclass
class EmulatorRequest:
    """What ``run`` (emulator backend) was asked to do."""

    system: Path | None = None
    kernel: str | None = None
    linux: LinuxBootFiles = field(default_factory=LinuxBootFiles)
    pools: bool = False
    ram_size: int | None = None
    send: str | None = None
    log: Path | None = None
    timeout: float | None = None
    vcpus: int | None = None
    until: str | None = None
    as_json: bool = False
    vm: str | None = None
    smmu: bool = False
    virtio: VirtioBackends = field(default_factory=VirtioBackends)
    #: Several VMs (``--vm`` repeated), CAmkES ``-D``/``-I``, per-VM logs (``--out``).
    vms: list[str] = field(default_factory=list)
    defines: list[str] = field(default_factory=list)
    includes: list[Path] = field(default_factory=list)
    out: Path | None = None


def run_on_emulator(request: EmulatorRequest) -> int:
    """The unicorn backend: boot, stream the console, report; the exit status."""
    with tempfile.TemporaryDirectory(prefix="sel4vmm-run-") as scratch:
        kernel = _kernel_path(request.kernel)
        linux = request.linux
        until = request.until
        if kernel is None:
            debian = find_debian_arm64()
            kernel = debian.kernel
            if linux.initrd is None:
                initrd = build_marker_initramfs(debian.busybox, Path(scratch))
                linux = replace(linux, initrd=initrd)
        from sel4vmm.cli.run_several import run_several, runs_several

        if runs_several(request):
            return run_several(request, kernel, linux)
        if request.out is not None:
            raise Sel4VmmError(
                "--out is where a run of several VMs writes each VM's console, and this "
                "run has one VM",
                fix="use --log FILE for one VM's console",
            )
        log_path = request.log
        if request.as_json and log_path is None:
            log_path = Path(tempfile.mkstemp(prefix="sel4vmm-console-", suffix=".log")[1])
        log_file = _open_log(log_path) if log_path is not None else None
        out = log_file if log_file is not None else sys.stdout.buffer

        def console(data: bytes) -> None:
            out.write(data)
            out.flush()

        interactive = sys.stdin.isatty()
        timeout = request.timeout
        if timeout is None and not interactive:
            timeout = DEFAULT_TIMEOUT
        signals = SignalFlag()
        try:
            with TerminalSession() if interactive else nullcontext() as terminal:
                result = run_guest(
                    request.system,
                    kernel,
                    "emulator",
                    console,
                    one_to_one=not request.pools,
                    ram_size=request.ram_size,
                    console_input=request.send.encode() if request.send else b"",
                    wait_for_input=terminal.wait if terminal else None,
                    input_source=terminal.take if terminal else None,
                    time_limit=timeout,
                    num_vcpus=request.vcpus,
                    linux=linux,
                    until=until,
                    stop_check=_stop_check(signals, terminal, timeout),
                    vm_name=request.vm,
                    smmu=request.smmu,
                    virtio=request.virtio,
                )
        finally:
            signals.restore()
            if log_file is not None:
                log_file.close()
    status = exit_status(result, signals)
    if request.as_json:
        print(json.dumps(run_document(result, kernel, log_path, status, timeout), indent=2))
    else:
        report(result, status, timeout, request.timeout is None)
    return status


#: Host seconds between "still running" notes on a run without a terminal.
PROGRESS_SECONDS = 30.0


def _stop_check(
    signals: SignalFlag, terminal: TerminalSession | None, timeout: float | None
) -> Callable[[], StopReason | None]:
    started = time.monotonic()
    next_note = started + PROGRESS_SECONDS
    err = Console(stderr=True, highlight=False)

    def check() -> StopReason | None:
        nonlocal next_note
        if terminal is not None and terminal.escaped:
            return StopReason.ESCAPE
        if signals.received is not None:
            return StopReason.INTERRUPTED
        now = time.monotonic()
        if terminal is None and now >= next_note:
            limit = f" of {timeout:g}" if timeout is not None else ""
            err.print(f"sel4vmm: the guest is still running ({now - started:.0f} s{limit})")
            next_note = now + PROGRESS_SECONDS
        return None

    return check


@dataclass
class QemuRequest:
    """What ``run --backend qemu`` was asked to boot."""

    system: Path | None
    kernel: Path
    initrd: Path | None
    dtb: Path | None
    dts: Path | None
    overlays: list[Path]
    bootargs: str | None
    vm: str | None
    until: str | None
    qemu: str | None
    log: Path | None
    timeout: float | None


def run_on_qemu(request: QemuRequest) -> None:
    """The QEMU backend: Linux from RAM sel4vmm loaded, console until power-off."""
    from sel4vmm.backends.qemu.session import run_qemu

    sink: TextIO = sys.stdout
    log_file: TextIO | None = None
    if request.log is not None:
        log_file = sink = _open_text_log(request.log)
    try:
        result = run_qemu(
            request.system,
            request.kernel,
            request.initrd,
            dtb=request.dtb,
            dts=request.dts,
            overlays=request.overlays,
            bootargs=request.bootargs,
            console=sink,
            timeout=request.timeout,
            until=request.until,
            vm_name=request.vm,
            qemu_binary=request.qemu,
            interactive=sys.stdin.isatty(),
        )
    finally:
        if log_file is not None:
            log_file.close()
    err = Console(stderr=True, highlight=False)
    name = result.layout.name if result.layout is not None else "guest"
    timing = f"images loaded in {result.load_seconds:.2f} s"
    if request.until is not None:
        timing += (
            f"; '{request.until}' after {result.until_seconds:.2f} s"
            if result.until_seconds is not None
            else f"; '{request.until}' never appeared"
        )
    for note in result.notes:
        err.print(f"note: {escape(note)}", soft_wrap=True)
    if result.ok:
        how = "stopped at the --until text" if result.until_seconds is not None else "powered off"
        err.print(f"[green]{escape(name)}[/]: {how} ({escape(timing)})", soft_wrap=True)
        return
    status = "stopped" if result.exit_code is None else f"QEMU exit status {result.exit_code}"
    err.print(f"[bold red]{escape(name)}: {status}[/] ({escape(timing)})", soft_wrap=True)
    if result.stderr.strip():
        err.print(escape(result.stderr.strip()), soft_wrap=True)
    raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("run")(run)

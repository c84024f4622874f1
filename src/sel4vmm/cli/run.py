"""``sel4vmm run [SYSTEM] [--kernel GUEST] [--backend emulator|qemu]``: boot a guest.

The emulator backend runs bare-metal AArch64 guests on unicorn; the qemu backend boots
Linux in QEMU from RAM sel4vmm placed and loaded (``--initrd``, ``--dtb``/``--dts``,
``--overlay``, ``--bootargs``).

The guest's UART goes to the terminal (or ``--log``); when standard input is a terminal,
what you type goes to the guest's UART and an idle guest waits for it.  The exit status is
0 when the guest powers itself off, 1 when the VMM had to stop it (the diagnostic says
where and why).
"""

from __future__ import annotations

import io
import os
import queue
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, BinaryIO, TextIO

import typer
from rich.console import Console
from rich.markup import escape

from sel4vmm.backends.unicorn.session import BUNDLED_GUESTS, bundled_guest, run_guest
from sel4vmm.errors import Sel4VmmError


class _TerminalInput:
    """Bytes typed at the terminal, read by a daemon thread so the VMM never blocks."""

    def __init__(self) -> None:
        self._chunks: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(sys.stdin.fileno(), 1024)
            except OSError:
                return
            if not data:
                return
            self._chunks.put(data)

    def wait(self, timeout: float) -> bool:
        try:
            chunk = self._chunks.get(timeout=timeout)
        except queue.Empty:
            return False
        self._chunks.put(chunk)
        return True

    def take(self) -> bytes:
        out = bytearray()
        while True:
            try:
                out += self._chunks.get_nowait()
            except queue.Empty:
                return bytes(out)


def _kernel_path(kernel: str | None) -> Path | None:
    if kernel is None:
        return None
    if kernel in BUNDLED_GUESTS:
        return bundled_guest(kernel)
    return Path(kernel)


BACKENDS = ("emulator", "qemu")


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


def run(
    system: Annotated[
        Path | None,
        typer.Argument(help="Microkit .system file (default: the bundled qemu-virt system)"),
    ] = None,
    kernel: Annotated[
        str | None,
        typer.Option(
            "--kernel",
            help="guest image: for the emulator a raw AArch64 binary or one of "
            f"{', '.join(BUNDLED_GUESTS)}; for qemu a Linux Image",
        ),
    ] = None,
    backend: Annotated[
        str, typer.Option(help="where the guest runs: emulator (unicorn) or qemu")
    ] = "emulator",
    initrd: Annotated[Path | None, typer.Option(help="qemu: initramfs / initrd")] = None,
    dtb: Annotated[Path | None, typer.Option(help="qemu: the guest's device tree blob")] = None,
    dts: Annotated[Path | None, typer.Option(help="qemu: the guest's device tree source")] = None,
    overlay: Annotated[
        list[Path] | None, typer.Option(help="qemu: a DTS overlay for --dts (repeatable)")
    ] = None,
    bootargs: Annotated[str | None, typer.Option(help="qemu: kernel command line")] = None,
    vm: Annotated[
        str | None, typer.Option(help="qemu: which <virtual_machine> of the system to boot")
    ] = None,
    marker: Annotated[
        str | None, typer.Option(help="qemu: report when this text first appears")
    ] = None,
    qemu: Annotated[str | None, typer.Option(help="qemu: the qemu-system-aarch64 to run")] = None,
    pools: Annotated[
        bool, typer.Option("--pools", help="emulator: back guest RAM from untyped pools, not 1:1")
    ] = False,
    smmu: Annotated[
        bool, typer.Option("--smmu", help="emulator: DMA behind an SMMU confining it to guest RAM")
    ] = False,
    ram_size: Annotated[
        str | None, typer.Option(help="emulator: override the guest RAM size (e.g. 0x1000000)")
    ] = None,
    send: Annotated[
        str | None,
        typer.Option("--input", help="emulator: text typed into the guest's UART at start"),
    ] = None,
    log: Annotated[Path | None, typer.Option(help="write the guest console to this file")] = None,
    time_limit: Annotated[
        float | None, typer.Option(help="stop the guest after this many seconds")
    ] = None,
    vcpus: Annotated[
        int | None,
        typer.Option("--vcpus", help="emulator: number of vCPUs (default: the system's, else 1)"),
    ] = None,
) -> None:
    """Boot a guest and stream its console; exit 0 when it powers off, 1 if it was stopped."""
    if backend == "qemu":
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
                vm,
                marker,
                qemu,
                log,
                time_limit,
            )
        )
        return
    if backend != "emulator":
        raise Sel4VmmError(f"unknown backend '{backend}'", fix=f"use one of {', '.join(BACKENDS)}")
    run_on_emulator(system, kernel, pools, ram_size, send, log, time_limit or 60.0, vcpus, smmu)


def run_on_emulator(
    system: Path | None,
    kernel: str | None,
    pools: bool,
    ram_size: str | None,
    send: str | None,
    log: Path | None,
    time_limit: float,
    vcpus: int | None = None,
    smmu: bool = False,
) -> None:
    """The unicorn backend: the bundled board, a bare-metal guest, its console."""
    size = None
    if ram_size is not None:
        try:
            size = int(ram_size, 0)
        except ValueError:
            raise Sel4VmmError(
                f"--ram-size '{ram_size}' is not a number", fix="write it like 0x10000000"
            ) from None
    log_file = _open_log(log) if log is not None else None
    out = log_file if log_file is not None else sys.stdout.buffer

    def console(data: bytes) -> None:
        out.write(data)
        out.flush()

    terminal = _TerminalInput() if sys.stdin.isatty() else None
    try:
        result = run_guest(
            system,
            _kernel_path(kernel),
            "emulator",
            console,
            one_to_one=not pools,
            ram_size=size,
            console_input=send.encode() if send else b"",
            wait_for_input=terminal.wait if terminal else None,
            input_source=terminal.take if terminal else None,
            time_limit=time_limit,
            num_vcpus=vcpus,
            smmu=smmu,
        )
    finally:
        if log_file is not None:
            log_file.close()
    err = Console(stderr=True, highlight=False)
    for warning in result.warnings:
        err.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    if result.ok:
        err.print(f"[green]{escape(result.layout.name)}[/]: {result.stop_reason.value}")
        return
    err.print(f"[bold red]stopped:[/] {escape(result.stop_reason.value)}", soft_wrap=True)
    if result.diagnostic is not None:
        err.print(escape(str(result.diagnostic)), soft_wrap=True)
    raise typer.Exit(1)


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
    marker: str | None
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
            marker=request.marker,
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
    if request.marker is not None:
        timing += (
            f"; '{request.marker}' after {result.marker_seconds:.2f} s"
            if result.marker_seconds is not None
            else f"; '{request.marker}' never appeared"
        )
    for note in result.notes:
        err.print(f"note: {escape(note)}", soft_wrap=True)
    if result.ok:
        err.print(f"[green]{escape(name)}[/]: powered off ({escape(timing)})", soft_wrap=True)
        return
    status = "stopped" if result.exit_code is None else f"QEMU exit status {result.exit_code}"
    err.print(f"[bold red]{escape(name)}: {status}[/] ({escape(timing)})", soft_wrap=True)
    if result.stderr.strip():
        err.print(escape(result.stderr.strip()), soft_wrap=True)
    raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("run")(run)

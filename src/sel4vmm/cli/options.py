"""The command-line vocabulary (issue 12): every option defined once, used by every command.

One name, one syntax, one meaning wherever an option appears: a command that takes a board
takes ``--board NAME`` spelt and explained exactly as every other command does, and every
size option accepts the same spellings (``256M``, ``2G``, ``4096K``, ``0x10000000``, decimal
bytes) through :func:`parse_size`.  Commands annotate their parameters with these aliases
(``board: BoardOption = None``); ``tests/cli/test_options.py`` walks the command tree and
fails when two options of the same name differ in type, metavar or help.

This module imports nothing but typer, so registering a command costs nothing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Literal

import typer

from sel4vmm.errors import Sel4VmmError

#: Architectures seL4 and the configuration checkers know.
Arch = Literal["aarch64", "riscv64", "x86_64"]
ARCHES: tuple[Arch, ...] = ("aarch64", "riscv64", "x86_64")
#: Where ``run`` can put a guest.
Backend = Literal["emulator", "qemu"]
BACKENDS: tuple[Backend, ...] = ("emulator", "qemu")

_SIZE = re.compile(r"(?:0x(?P<hex>[0-9a-f]+)|(?P<number>[0-9]+)\s*(?P<unit>[kmgt])?(?:i?b)?)")
_UNIT_SHIFT = {None: 0, "k": 10, "m": 20, "g": 30, "t": 40}
SIZE_SPELLINGS = "256M, 2G, 4096K, 0x10000000 or a number of bytes"


def parse_size(text: str) -> int:
    """A size as users write it: ``256M``, ``2G``, ``4096K`` (binary units, optionally
    ``MiB``/``GB``), ``0x10000000`` or plain decimal bytes.  ``ValueError`` names the
    spellings that work (click shows it as the option's error)."""
    raw = text.strip().replace("_", "").lower()
    match = _SIZE.fullmatch(raw)
    if match is None:
        raise ValueError(f"cannot read the size {text!r}: write {SIZE_SPELLINGS}")
    if match["hex"] is not None:
        size = int(match["hex"], 16)
    else:
        size = int(match["number"]) << _UNIT_SHIFT[match["unit"]]
    if size <= 0:
        raise ValueError(f"the size {text!r} is zero: give a size above 0")
    return size


def parse_defines(pairs: Sequence[str]) -> dict[str, str]:
    """``-D NAME=VALUE`` (or ``-D NAME``, meaning 1, as a C compiler does) as a dict."""
    defines = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        if not name.strip():
            raise Sel4VmmError(f"bad --define '{pair}'", fix="write -D NAME=VALUE")
        defines[name.strip()] = value or "1"
    return defines


def _size_option(name: str, help_text: str) -> typer.models.OptionInfo:
    option: typer.models.OptionInfo = typer.Option(
        name, metavar="SIZE", parser=parse_size, help=help_text
    )
    return option


# --- the configuration -----------------------------------------------------------------

BoardOption = Annotated[
    str | None,
    typer.Option(
        "--board",
        metavar="NAME",
        help="Board (qemu_virt_aarch64, odroidc4, x86_64_generic, ... or an alias such as "
        "qemu-arm-virt); default: the configuration's, else the path's board/<name>/.",
    ),
]
DefineOption = Annotated[
    list[str] | None,
    typer.Option(
        "-D",
        "--define",
        metavar="NAME=VALUE",
        help="C preprocessor define for CAmkES files, e.g. -D PLAT=qemu-arm-virt (repeatable).",
    ),
]
IncludeOption = Annotated[
    list[Path] | None,
    typer.Option(
        "-I",
        "--include",
        metavar="DIR",
        help="Include directory for CAmkES files (repeatable).",
    ),
]
ArchOption = Annotated[
    Arch | None,
    typer.Option(
        "--arch",
        metavar="aarch64|riscv64|x86_64",
        help="Target architecture; default: the board's, else aarch64.",
    ),
]
MicrokitOption = Annotated[
    str | None,
    typer.Option(
        "--microkit",
        metavar="VERSION",
        help="Microkit tool version whose rules the .system file is checked against.",
    ),
]
VmOption = Annotated[
    list[str] | None,
    typer.Option(
        "--vm",
        metavar="NAME",
        help="The virtual machine to use when there are several (run: repeatable, the VMs "
        "that run together; the other commands take one).",
    ),
]


def single_vm(names: list[str] | None, command: str) -> str | None:
    """The one ``--vm`` of a command that works on one VM; a second is an error, never
    silently dropped (``run`` is the command that takes several)."""
    if not names:
        return None
    if len(names) > 1:
        raise Sel4VmmError(
            f"{command} works on one VM, and --vm was given {len(names)} times "
            f"({', '.join(names)})",
            fix=f"pass one --vm NAME to {command} (sel4vmm run takes several)",
        )
    return names[0]


RamSizeOption = Annotated[
    int | None,
    _size_option(
        "--ram-size",
        "Guest RAM size (the board's RAM for a QEMU board): " + SIZE_SPELLINGS + ".",
    ),
]

# --- the guest's images ----------------------------------------------------------------

KernelOption = Annotated[
    Path | None,
    typer.Option(
        "--kernel",
        metavar="FILE",
        help="Guest kernel: arm64 Image, bzImage, ELF (run's emulator also takes a bundled "
        "guest's name).",
    ),
]
InitrdOption = Annotated[
    Path | None,
    typer.Option("--initrd", metavar="FILE", help="Initial RAM disk (newc cpio, maybe gzip'd)."),
]
DtbOption = Annotated[
    Path | None, typer.Option("--dtb", metavar="FILE", help="The guest's device tree blob.")
]
DtsOption = Annotated[
    Path | None,
    typer.Option("--dts", metavar="FILE", help="The guest's device tree source (compiled)."),
]
OverlayOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--overlay",
        metavar="FILE",
        help="Device tree overlay for --dts: libvmm overlay.dts or /plugin/ (repeatable).",
    ),
]
BootargsOption = Annotated[
    str | None,
    typer.Option("--bootargs", metavar="TEXT", help="The kernel command line."),
]

# --- running a guest ---------------------------------------------------------------------

VcpusOption = Annotated[
    int | None,
    typer.Option(
        "--vcpus", metavar="N", min=1, help="emulator: number of vCPUs (default: the VM's)."
    ),
]
PoolsOption = Annotated[
    bool, typer.Option("--pools", help="emulator: back guest RAM from untyped pools, not 1:1.")
]
SmmuOption = Annotated[
    bool,
    typer.Option(
        "--smmu", help="emulator: the guest's DMA goes through an SMMU confining it to guest RAM."
    ),
]
#: Which device is the guest's console (``run --console``).
ConsoleKind = Literal["pl011", "virtio"]
DiskOption = Annotated[
    Path | None,
    typer.Option(
        "--disk",
        metavar="FILE",
        help="A raw disk image served as virtio-blk (emulator: on a virtio,mmio node of the "
        "guest's device tree; kvm-boot: at 0xd0000000, GSI 5).",
    ),
]
ReadOnlyOption = Annotated[
    bool,
    typer.Option("--read-only", help="The --disk is read-only (writes fail)."),
]
ConsoleOption = Annotated[
    ConsoleKind,
    typer.Option(
        "--console",
        metavar="pl011|virtio",
        help="emulator: the guest's console: the PL011 UART, or virtio-console (hvc0) on a "
        "virtio,mmio node of the guest's device tree.",
    ),
]
#: The peer of the guest's virtio-net card (``run --net``).
NetKind = Literal["none", "loopback", "switch"]
NetOption = Annotated[
    NetKind | None,
    typer.Option(
        "--net",
        metavar="none|loopback|switch",
        help="emulator: the peer of the virtio-net card on the guest device tree's net node: "
        "switch (the default: a port of the VMM's virtual switch, shared by every VM of the "
        "run), loopback (frames come straight back) or none (no card).",
    ),
]
InputOption = Annotated[
    str | None,
    typer.Option(
        "--input",
        metavar="TEXT",
        help="emulator: text typed into the guest's console (Linux: once it listens).",
    ),
]
LogOption = Annotated[
    Path | None,
    typer.Option("--log", metavar="FILE", help="Write the guest console to FILE."),
]
TimeoutOption = Annotated[
    float | None,
    typer.Option(
        "--timeout",
        metavar="SECONDS",
        min=0.0,
        help="Stop the guest (exit status 1) after SECONDS; the default is reported at start.",
    ),
]
UntilOption = Annotated[
    str | None,
    typer.Option(
        "--until",
        metavar="TEXT",
        help="Stop the guest with exit status 0 once its console has printed TEXT.",
    ),
]
BackendOption = Annotated[
    Backend,
    typer.Option(
        "--backend",
        metavar="emulator|qemu",
        help="Where the guest runs: emulator (unicorn) or qemu.",
    ),
]

# --- output ------------------------------------------------------------------------------

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON document instead of text.")
]
OutOption = Annotated[
    Path | None,
    typer.Option("--out", metavar="DIR", help="Directory to write the outputs into."),
]

"""The boards sel4vmm can model: RAM, device windows, GIC and console UART.

The facts live in ``sel4vmm/data/boards.toml``, each with the device tree it came from, so
that adding or correcting a board is a data change reviewed against its source, not a
code change.  This module validates that table once and answers :func:`load_board`.

Names follow Microkit (``qemu_virt_aarch64``, ``odroidc4``, ``maaxboard``...); CAmkES and
seL4 platform names (``qemu-arm-virt``, ``zynqmp``, ``odroid-c4``) are aliases.  Case,
``-`` and ``_`` do not matter.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any

from sel4vmm.errors import Sel4VmmError
from sel4vmm.sel4.physmem import MemoryRange

_TABLE = "boards.toml"


@dataclass(frozen=True)
class Window:
    """A physical address window of a device."""

    base: int
    size: int

    @property
    def end(self) -> int:
        return self.base + self.size


@dataclass(frozen=True)
class Gic:
    """The board's interrupt controller as a VMM sees it.

    ``vcpu_control`` is GICH (the hypervisor's list registers) and ``vcpu_interface`` is
    GICV, the window a guest's GICC accesses are mapped to.  A GICv3 without legacy
    support has neither (the virtual CPU interface is system registers) but has
    ``redistributor``.
    """

    version: int
    distributor: Window
    cpu_interface: Window | None = None
    vcpu_control: Window | None = None
    vcpu_interface: Window | None = None
    redistributor: Window | None = None

    def windows(self) -> dict[str, Window]:
        named = {
            "gic-distributor": self.distributor,
            "gic-cpu-interface": self.cpu_interface,
            "gic-vcpu-control": self.vcpu_control,
            "gic-vcpu-interface": self.vcpu_interface,
            "gic-redistributor": self.redistributor,
        }
        return {name: window for name, window in named.items() if window is not None}


@dataclass(frozen=True)
class Uart:
    """The console UART; ``irq`` is the interrupt number seL4 uses (GIC SPI n -> n + 32)."""

    base: int
    size: int
    irq: int
    compatible: tuple[str, ...]
    #: x86 port I/O (COM1 at 0x3f8) rather than memory-mapped registers.
    io_port: bool = False


@dataclass(frozen=True)
class Board:
    """One board: everything needed to build its physical memory and describe a guest."""

    name: str
    arch: str
    description: str
    aliases: tuple[str, ...]
    ram: tuple[MemoryRange, ...]
    devices: tuple[MemoryRange, ...]
    uart: Uart
    gic: Gic | None = None
    #: True when the RAM size is a parameter of the board (QEMU's ``-m``).
    ram_configurable: bool = False
    #: RAM the kernel build keeps from itself for VMs (``reserved-memory`` overlays such as
    #: seL4's ``overlay-reserve-vm-memory.dts``): no kernel untyped, device untyped instead.
    #: Only the part inside ``ram`` (QEMU's ``-m`` may be smaller than the overlay).
    reserved_memory: tuple[MemoryRange, ...] = ()
    #: Cores of the Microkit SDK's SMP configuration for this board.
    smp_cores: int = 1
    #: Where the early-boot ELF loader puts the root task's image, where known.
    elfloader_image_base: int | None = None

    @property
    def ram_size(self) -> int:
        return sum(r.size for r in self.ram)

    def memory_ranges(self) -> list[MemoryRange]:
        """RAM and every memory-mapped device window, sorted, for ``PhysicalMemory``."""
        ranges = list(self.ram) + list(self.devices)
        if self.gic is not None:
            for name, window in self.gic.windows().items():
                ranges.append(MemoryRange(window.base, window.size, device=True, name=name))
        if not self.uart.io_port:
            page = 0x1000
            base = self.uart.base & ~(page - 1)
            size = max(page, -(-(self.uart.base + self.uart.size - base) // page) * page)
            if not any(r.device and r.contains(base, size) for r in ranges):
                ranges.append(MemoryRange(base, size, device=True, name="uart"))
        return sorted(ranges, key=lambda r: r.base)


def normalise(name: str) -> str:
    """``Qemu-Arm-Virt`` -> ``qemu_arm_virt``: the spelling aliases are compared in."""
    return name.strip().lower().replace("-", "_")


def _table_error(board: str, problem: str) -> Sel4VmmError:
    return Sel4VmmError(
        f"sel4vmm's board table {_TABLE}: board {board!r}: {problem}",
        fix="correct src/sel4vmm/data/boards.toml",
    )


def _window(board: str, data: Any, what: str) -> Window:
    if not isinstance(data, dict) or not isinstance(data.get("base"), int):
        raise _table_error(board, f"{what} needs integer base and size")
    size = data.get("size")
    if not isinstance(size, int) or size <= 0:
        raise _table_error(board, f"{what} needs a positive integer size")
    return Window(data["base"], size)


def _ranges(board: str, items: Any, device: bool, what: str) -> tuple[MemoryRange, ...]:
    if not isinstance(items, list):
        raise _table_error(board, f"{what} must be a list")
    ranges = []
    for index, item in enumerate(items):
        window = _window(board, item, f"{what}[{index}]")
        name = item.get("name", f"{what}{index}")
        ranges.append(MemoryRange(window.base, window.size, device=device, name=str(name)))
    return tuple(ranges)


def _fill_windows(board: str, windows: Any, size: int) -> tuple[MemoryRange, ...]:
    """Place ``size`` bytes of RAM into the board's RAM windows, lowest first."""
    if not isinstance(windows, list) or not windows:
        raise _table_error(board, "ram_windows must be a non-empty list")
    ranges: list[MemoryRange] = []
    left = size
    for index, window in enumerate(windows):
        base, limit = window.get("base"), window.get("limit")
        if not isinstance(base, int) or not isinstance(limit, int) or limit <= base:
            raise _table_error(board, f"ram_windows[{index}] needs base < limit")
        take = min(left, limit - base)
        if take > 0:
            ranges.append(MemoryRange(base, take, name="ram" if index == 0 else f"ram{index}"))
        left -= take
    if left > 0:
        capacity = sum(w["limit"] - w["base"] for w in windows)
        raise Sel4VmmError(
            f"board {board} cannot hold {size:#x} bytes of RAM (at most {capacity:#x})",
            fix=f"choose a RAM size of at most {capacity:#x} bytes",
        )
    return tuple(ranges)


def _truncate(board: str, ram: tuple[MemoryRange, ...], size: int) -> tuple[MemoryRange, ...]:
    """The first ``size`` bytes of a fixed-RAM board (a variant with less memory fitted)."""
    total = sum(r.size for r in ram)
    if size > total:
        raise Sel4VmmError(
            f"board {board} has {total:#x} bytes of RAM, not {size:#x}",
            fix=f"choose a RAM size of at most {total:#x} bytes, or a board with more RAM",
        )
    kept: list[MemoryRange] = []
    left = size
    for r in ram:
        if left <= 0:
            break
        take = min(left, r.size)
        kept.append(MemoryRange(r.base, take, device=False, name=r.name))
        left -= take
    return tuple(kept)


def _build(name: str, data: dict[str, Any], ram_size: int | None) -> Board:
    if ram_size is not None and (ram_size <= 0 or ram_size % 0x1000):
        raise Sel4VmmError(
            f"RAM size {ram_size:#x} is not a positive multiple of 4 KiB",
            fix="give the RAM size in whole pages, e.g. 0x80000000 for 2 GiB",
        )
    configurable = "ram_windows" in data
    if configurable:
        size = ram_size if ram_size is not None else data.get("default_ram_size")
        if not isinstance(size, int):
            raise _table_error(name, "ram_windows needs an integer default_ram_size")
        ram = _fill_windows(name, data["ram_windows"], size)
    else:
        ram = _ranges(name, data.get("ram"), False, "ram")
        if ram_size is not None:
            ram = _truncate(name, ram, ram_size)
    gic = None
    gic_data = data.get("gic")
    if gic_data is not None:
        optional = {
            key: _window(name, gic_data[key], f"gic.{key}")
            for key in ("cpu_interface", "vcpu_control", "vcpu_interface", "redistributor")
            if key in gic_data
        }
        gic = Gic(
            version=int(gic_data.get("version", 0)),
            distributor=_window(name, gic_data.get("distributor"), "gic.distributor"),
            **optional,
        )
        if gic.version not in (2, 3):
            raise _table_error(name, f"GIC version {gic.version} is not 2 or 3")
    uart_data = data.get("uart")
    if not isinstance(uart_data, dict) or not isinstance(uart_data.get("irq"), int):
        raise _table_error(name, "uart needs base, size, irq and compatible")
    uart_window = _window(name, uart_data, "uart")
    uart = Uart(
        uart_window.base,
        uart_window.size,
        uart_data["irq"],
        tuple(str(c) for c in uart_data.get("compatible", [])),
        bool(uart_data.get("io_port", False)),
    )
    reserved = tuple(
        MemoryRange(lo, hi - lo, device=False, name=r.name)
        for r in _ranges(name, data.get("reserved_memory", []), False, "reserved_memory")
        for ram_range in ram
        for lo, hi in [(max(r.base, ram_range.base), min(r.end, ram_range.end))]
        if lo < hi
    )
    return Board(
        name=name,
        arch=str(data.get("arch", "")),
        description=str(data.get("description", "")),
        aliases=tuple(str(a) for a in data.get("aliases", [])),
        ram=ram,
        devices=_ranges(name, data.get("devices", []), True, "devices"),
        uart=uart,
        gic=gic,
        ram_configurable=configurable,
        reserved_memory=reserved,
        smp_cores=int(data.get("smp_cores", 1)),
        elfloader_image_base=data.get("elfloader_image_base"),
    )


@functools.cache
def _table() -> dict[str, dict[str, Any]]:
    text = resources.files("sel4vmm").joinpath("data", _TABLE).read_text(encoding="utf-8")
    boards = tomllib.loads(text).get("boards", {})
    if not isinstance(boards, dict):
        raise _table_error("*", "the [boards] table is missing")
    return boards


@functools.cache
def _aliases() -> dict[str, str]:
    """Every accepted spelling (normalised) -> canonical board name."""
    aliases: dict[str, str] = {}
    for name, data in _table().items():
        for spelling in (name, *data.get("aliases", [])):
            key = normalise(spelling)
            if aliases.get(key, name) != name:
                raise _table_error(name, f"alias {spelling!r} is also {aliases[key]!r}'s")
            aliases[key] = name
    return aliases


def board_names() -> list[str]:
    """The canonical names of all known boards, sorted."""
    return sorted(_table())


def canonical_board_name(name: str) -> str | None:
    """The canonical name for any accepted spelling, or None if no board has it."""
    return _aliases().get(normalise(name))


def load_board(name: str, ram_size: int | None = None) -> Board:
    """The board called ``name`` (any alias).

    ``ram_size`` sets the RAM of boards whose RAM is a parameter (QEMU's ``-m``; default
    2 GiB for ``qemu_virt_aarch64``) and limits fixed-RAM boards to their first
    ``ram_size`` bytes (a variant with less memory fitted).
    """
    canonical = canonical_board_name(name)
    if canonical is None:
        known = ", ".join(board_names())
        raise Sel4VmmError(
            f"unknown board {name!r}; known boards: {known}",
            fix="use one of the known board names (aliases such as qemu-arm-virt work too)",
        )
    return _build(canonical, _table()[canonical], ram_size)

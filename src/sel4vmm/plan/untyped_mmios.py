"""Seed 000's manual step, automated: the ``untyped_mmios`` lines that cover guest RAM.

The seed's recipe for 1:1 guest RAM is "use the ``CapDLLoaderPrintUntypeds`` CMake option
to have the capDL loader print out the untyped objects list, then place the objects
associated with the guest memory region into the ``untyped_mmios`` pool".  The loader
prints (seL4/capdl 01b3bd48dd0097ed15f4737c8134d47b66e780a2,
``capdl-loader-app/src/main.c``, under ``CONFIG_CAPDL_LOADER_PRINT_UNTYPEDS``)::

    ZF_LOGD("  Untyped memory (%d)", num_untyped);
    ZF_LOGD("    0x%016" PRIxPTR " - 0x%016" PRIxPTR " (%s)", ut_paddr,
            ut_paddr + BIT(ut_size), ut_isDevice ? "device" : "memory");

so each untyped is a line ``0x<paddr> - 0x<end> (device|memory)`` behind whatever prefix
the log configuration adds.  Without a log the board model's boot untyped stand in (what
seL4 would hand the loader, reserved-memory overlays included).

The answer is the aligned blocks, each inside one printed untyped, that exactly cover
``[base, base + size)`` — the loader retypes a child untyped at each address — and how many
pool untyped of a chosen size the kernel RAM outside guest RAM can still give.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sel4vmm.errors import Location, Sel4VmmError
from sel4vmm.sel4.untyped import Untyped, aligned_blocks

#: One untyped line of the loader's list (any prefix: ZF_LOG adds file, line, level).
_UNTYPED_LINE = re.compile(r"0x([0-9a-fA-F]{1,16}) - 0x([0-9a-fA-F]{1,16}) \((device|memory)\)")
_HEADER = re.compile(r"Untyped memory \((\d+)\)")
#: A boot log is a console capture; anything larger is not one.
MAX_LOG_BYTES = 64 << 20
#: Smallest untyped seL4 can have (``seL4_MinUntypedBits``), largest on 64-bit.
MIN_UNTYPED_BITS = 4
MAX_UNTYPED_BITS = 47


@dataclass(frozen=True)
class PrintedUntyped:
    """One untyped the loader printed, with the log line it came from."""

    paddr: int
    size_bits: int
    device: bool
    line: int = 0

    @property
    def end(self) -> int:
        return self.paddr + (1 << self.size_bits)


@dataclass
class UntypedMmios:
    """The lines to write and what is left for pools."""

    base: int
    size: int
    entries: list[tuple[int, int, PrintedUntyped]] = field(default_factory=list)
    pool_bits: int = 24
    pool_count: int = 0
    kernel_ram_in_guest_ram: int = 0

    def camkes_lines(self, vm: str) -> list[str]:
        """``vm0.untyped_mmios = [...]`` exactly as a configuration says it."""
        lines = [f"{vm}.untyped_mmios = ["]
        for paddr, bits, source in self.entries:
            kind = "device" if source.device else "memory"
            lines.append(
                f'    "{paddr:#x}:{bits}", // {kind} untyped '
                f"{source.paddr:#x}-{source.end:#x}"
                + (f" (log line {source.line})" if source.line else "")
            )
        lines.append("];")
        return lines


def parse_untyped_log(text: str, path: str) -> list[PrintedUntyped]:
    """The untyped list of a capDL loader boot log; a located error if it has none."""
    found: list[PrintedUntyped] = []
    announced: tuple[int, int] | None = None
    for number, line in enumerate(text.splitlines(), 1):
        header = _HEADER.search(line)
        if header and announced is None:
            announced = (int(header.group(1)), number)
            continue
        match = _UNTYPED_LINE.search(line)
        if match is None:
            continue
        start, end = int(match.group(1), 16), int(match.group(2), 16)
        size = end - start
        where = Location(path, number, match.start() + 1)
        if size <= 0 or size & (size - 1) or start % size:
            raise Sel4VmmError(
                f"untyped {start:#x} - {end:#x} is not a naturally aligned power of two, "
                "which every seL4 untyped is",
                location=where,
                fix="give the loader's log unedited",
            )
        bits = size.bit_length() - 1
        found.append(PrintedUntyped(start, bits, match.group(3) == "device", number))
    if not found:
        raise Sel4VmmError(
            "the log has no untyped list of the capDL loader ('0x... - 0x... (memory)' lines)",
            location=Location(path),
            fix="build with -DCapDLLoaderPrintUntypeds=ON (and debug log level) and capture "
            "the boot console, or leave out the log to use the board model",
        )
    if announced is not None and announced[0] != len(found):
        raise Sel4VmmError(
            f"the loader announced {announced[0]} untyped but the log lists {len(found)}: "
            "the capture is cut short or mixes two boots",
            location=Location(path, announced[1]),
            fix="capture one complete boot",
        )
    return found


def from_boot_untypeds(untypeds: list[Untyped]) -> list[PrintedUntyped]:
    """The board model's boot untyped, as the loader would print them."""
    return [PrintedUntyped(u.paddr, u.size_bits, u.device) for u in untypeds]


def cover_guest_ram(
    untypeds: list[PrintedUntyped],
    base: int,
    size: int,
    *,
    pool_bits: int = 24,
    board_ram: list[tuple[int, int]] | None = None,
) -> UntypedMmios:
    """The ``untyped_mmios`` that back ``[base, base + size)`` and the pool left over.

    ``board_ram`` (``(base, size)`` pairs, known when the untyped come from the board
    model) refuses guest RAM outside the board's memory: seL4 hands out the empty
    physical address space as device untyped too, and backing RAM with it gives nothing.
    """
    if size <= 0 or base < 0 or base % 0x1000 or size % 0x1000:
        raise Sel4VmmError(
            f"guest RAM {base:#x}+{size:#x} is not a positive whole number of 4 KiB pages",
            fix="give --ram BASE:SIZE with both page aligned, e.g. 0x40000000:512M",
        )
    if not MIN_UNTYPED_BITS <= pool_bits <= MAX_UNTYPED_BITS:
        raise Sel4VmmError(
            f"pool untyped of 2^{pool_bits} bytes cannot exist",
            fix=f"give --pool-bits between {MIN_UNTYPED_BITS} and {MAX_UNTYPED_BITS}",
        )
    end = base + size
    if board_ram is not None and not any(b <= base and end <= b + n for b, n in board_ram):
        have = ", ".join(f"[{b:#x}, {b + n:#x})" for b, n in board_ram)
        raise Sel4VmmError(
            f"guest RAM [{base:#x}, {end:#x}) is not memory on this board (RAM: {have})",
            fix="place guest RAM inside the board's RAM (QEMU: or a larger --ram-size)",
        )
    result = UntypedMmios(base, size, pool_bits=pool_bits)
    ordered = sorted(untypeds, key=lambda u: u.paddr)
    cursor = base
    for untyped in ordered:
        lo, hi = max(cursor, untyped.paddr), min(end, untyped.end)
        if lo >= hi:
            continue
        if lo > cursor:
            break
        for paddr, bits in aligned_blocks(lo, hi, untyped.size_bits, MIN_UNTYPED_BITS):
            result.entries.append((paddr, bits, untyped))
        if not untyped.device:
            result.kernel_ram_in_guest_ram += hi - lo
        cursor = hi
    if cursor < end:
        gap_end = min([end, *(u.paddr for u in ordered if u.paddr > cursor)])
        raise Sel4VmmError(
            f"guest RAM [{cursor:#x}, {gap_end:#x}) is in no untyped the loader has: the board "
            "has no memory there, or the kernel keeps it",
            fix="place guest RAM inside the listed untyped (see the log's memory and device "
            "ranges), or give the board more memory",
        )
    for untyped in ordered:
        if untyped.device:
            continue
        for lo, hi in _minus(untyped.paddr, untyped.end, base, end):
            first = -(-lo // (1 << pool_bits)) << pool_bits
            if hi > first:
                result.pool_count += (hi - first) >> pool_bits
    return result


def _minus(lo: int, hi: int, hole_lo: int, hole_hi: int) -> list[tuple[int, int]]:
    pieces = [(lo, min(hi, hole_lo)), (max(lo, hole_hi), hi)]
    return [(a, b) for a, b in pieces if a < b]

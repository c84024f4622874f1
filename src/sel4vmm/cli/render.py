"""Rich tables for what users need to see: a VM's guest-physical map and its seL4 bill."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from sel4vmm.memory.reservation import Reservation
from sel4vmm.sel4.objects import human_size
from sel4vmm.vm import ResourceReport, VirtualMachine


def make_console(stderr: bool = False) -> Console:
    """A console that keeps tables readable when output goes to a file or a pipe."""
    console = Console(highlight=False, stderr=stderr)
    if not console.is_terminal:
        console = Console(highlight=False, stderr=stderr, width=140)
    return console


def _backing(vm: VirtualMachine, reservation: Reservation) -> str:
    if reservation.deferred is not None:
        return "mapped on first fault"
    if not reservation.extents:
        return "emulated by the VMM (faults)"
    one_to_one = all(e.guest_addr == e.paddr for e in reservation.extents)
    bits = sorted({e.page_bits for e in reservation.extents})
    frames = "/".join(human_size(1 << b) for b in bits)
    if one_to_one:
        return f"{frames} frames, 1:1 (IPA == PA)"
    pieces = len(reservation.extents)
    return f"{frames} frames from the pool, {pieces} physical piece{'s' if pieces != 1 else ''}"


def guest_map_table(vm: VirtualMachine) -> Table:
    """Every reservation in guest-physical order, with what backs it."""
    table = Table(title=f"{vm.name}: guest-physical map", title_justify="left")
    table.add_column("guest-physical range", style="cyan", no_wrap=True)
    table.add_column("size", justify="right")
    table.add_column("what")
    table.add_column("backed by")
    table.add_column("physical", style="dim")
    for reservation in vm.memory.reservations():
        first = reservation.extents[0].paddr if reservation.extents else None
        last = reservation.extents[-1] if reservation.extents else None
        physical = (
            f"{first:#x}..{last.translate(last.guest_end - 1) + 1:#x}"
            if first is not None and last is not None
            else "-"
        )
        table.add_row(
            f"{reservation.start:#012x}-{reservation.end:#012x}",
            human_size(reservation.size),
            reservation.label or ("anonymous" if reservation.anonymous else "reservation"),
            _backing(vm, reservation),
            physical,
        )
    return table


def resources_table(name: str, report: ResourceReport) -> Table:
    """Untyped given and used, objects by type and size, CSpace slots and CNode bits."""
    table = Table(title=f"{name}: seL4 resources", title_justify="left")
    table.add_column("resource")
    table.add_column("count", justify="right")
    table.add_column("detail", style="dim")
    for (bits, device), count in sorted(report.untyped_given.items()):
        used = report.untyped_used.get((bits, device), 0)
        kind = "device untyped" if device else "untyped"
        table.add_row(f"{kind} 2^{bits} ({human_size(1 << bits)})", str(count), f"{used} used")
    for (kind_name, bits), count in sorted(report.objects.items()):
        table.add_row(f"{kind_name} {human_size(1 << bits)}", str(count), "")
    table.add_row("bytes lost to alignment", str(report.bytes_lost_to_alignment), "")
    table.add_row(
        "CSpace slots",
        str(report.cspace_peak),
        f"peak; CNode of 2^{report.cnode_bits} slots holds it",
    )
    return table

"""Rich tables for what users need to see: a VM's guest-physical map and its seL4 bill.

Numbers are never cut short: at 80 columns addresses and sizes keep their width and the
words beside them fold onto more lines (never an ellipsis); sizes read as ``512 MiB``
(exact) or ``~895.9 MiB`` (beside the exact address range).
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from sel4vmm.plan.model import VmPlan
from sel4vmm.sel4.objects import human_size
from sel4vmm.vm import ResourceReport


def table_size(size: int) -> str:
    """``512 MiB`` when exact; ``~895.9 MiB`` rather than ``917436 KiB`` when the exact
    figure needs a small unit (the address range beside it stays exact)."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift:
            if size % (1 << shift) == 0:
                return f"{size >> shift} {unit}"
            return f"~{size / (1 << shift):.1f} {unit}"
    return f"{size} B"


def make_console(stderr: bool = False) -> Console:
    """A console that keeps tables readable when output goes to a file or a pipe."""
    console = Console(highlight=False, stderr=stderr)
    if not console.is_terminal:
        console = Console(highlight=False, stderr=stderr, width=140)
    return console


def map_table(vm: VmPlan) -> Table:
    table = Table(title=f"{vm.name}: guest-physical map", title_justify="left")
    ranges = [f"{e.start:#x}-{e.end:#x}" for e in vm.entries]
    sizes = [table_size(e.size) for e in vm.entries]
    # Addresses and sizes keep their width; the words beside them fold instead.
    table.add_column(
        "guest-physical", style="cyan", no_wrap=True, min_width=max(map(len, ranges), default=8)
    )
    table.add_column(
        "size", justify="right", no_wrap=True, min_width=max(map(len, sizes), default=4)
    )
    table.add_column("kind", overflow="fold")
    table.add_column("name", overflow="fold")
    table.add_column("backed by", overflow="fold")
    table.add_column("physical", overflow="fold")
    for e, address_range, size in zip(vm.entries, ranges, sizes, strict=True):
        physical = ", ".join(f"{p:#x}+{human_size(n)}" for p, n in e.physical[:3])
        if len(e.physical) > 3:
            physical += f" (+{len(e.physical) - 3} more)"
        style = "dim" if e.kind == "hole" else None
        frames = f"{human_size(1 << e.page_bits)} " if e.page_bits else ""
        table.add_row(
            address_range,
            size,
            e.kind,
            f"{e.name} (shared with {', '.join(e.shared_with)})" if e.shared_with else e.name,
            f"{frames}{e.backing}".strip(),
            physical,
            style=style,
        )
    return table


def resources_table(name: str, report: ResourceReport) -> Table:
    """Untyped given and used, objects by type and size, CSpace slots and CNode bits."""
    table = Table(title=f"{name}: seL4 resources", title_justify="left")
    table.add_column("resource", overflow="fold")
    table.add_column("count", justify="right", overflow="fold")
    table.add_column("detail", style="dim", overflow="fold")
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

"""Rich tables for what users need to see: a VM's guest-physical map and its seL4 bill."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from sel4vmm.plan.model import VmPlan
from sel4vmm.sel4.objects import human_size
from sel4vmm.vm import ResourceReport


def make_console(stderr: bool = False) -> Console:
    """A console that keeps tables readable when output goes to a file or a pipe."""
    console = Console(highlight=False, stderr=stderr)
    if not console.is_terminal:
        console = Console(highlight=False, stderr=stderr, width=140)
    return console


def map_table(vm: VmPlan) -> Table:
    table = Table(title=f"{vm.name}: guest-physical map", title_justify="left")
    table.add_column("guest-physical", style="cyan", no_wrap=True)
    table.add_column("size", justify="right")
    table.add_column("kind")
    table.add_column("name")
    table.add_column("backed by")
    table.add_column("physical", no_wrap=True)
    for e in vm.entries:
        physical = ", ".join(f"{p:#x}+{human_size(n)}" for p, n in e.physical[:3])
        if len(e.physical) > 3:
            physical += f" (+{len(e.physical) - 3} more)"
        style = "dim" if e.kind == "hole" else None
        frames = f"{human_size(1 << e.page_bits)} " if e.page_bits else ""
        table.add_row(
            f"{e.start:#012x}-{e.end:#012x}",
            human_size(e.size),
            e.kind,
            e.name,
            f"{frames}{e.backing}".strip(),
            physical,
            style=style,
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

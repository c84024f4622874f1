"""``sel4vmm demo``: the embedded default job (see :mod:`sel4vmm.demo`)."""

from __future__ import annotations

import typer
from rich.console import Console

from sel4vmm.cli.render import guest_map_table, resources_table
from sel4vmm.demo import run_demo
from sel4vmm.sel4.objects import human_size


def demo() -> None:
    """Build seed 000's 512 MiB CAmkES guest, write and read its RAM, show map and resources."""
    console = Console(highlight=False)
    result = run_demo()
    console.print(
        "[bold]seed 000[/]: vm0 with 512 MiB of RAM at 0x40000000, "
        "simple_untyped24_pool = 33, on qemu-arm-virt (-m 2G)"
    )
    verdict = "[green]ok[/]" if result.pattern_ok else "[red]MISMATCH[/]"
    console.print(f"wrote and read back {human_size(result.bytes_checked)} of guest RAM: {verdict}")
    console.print(guest_map_table(result.vm))
    console.print(resources_table(result.vm.name, result.vm.resources()))
    console.print(f"[bold]with simple_untyped24_pool = 32[/]: {result.shortfall}")
    console.print(guest_map_table(result.one_to_one_vm))
    console.print(resources_table(result.one_to_one_vm.name, result.one_to_one_vm.resources()))
    if not result.pattern_ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)

"""``sel4vmm demo``: the embedded default job (see :mod:`sel4vmm.demo`)."""

from __future__ import annotations

import typer


def demo() -> None:
    """Plan seed 000's 512 MiB CAmkES guest, write and read its RAM, show map and resources."""
    from sel4vmm.cli.plan import print_findings, print_plan
    from sel4vmm.cli.render import make_console
    from sel4vmm.demo import run_demo
    from sel4vmm.sel4.objects import human_size

    console = make_console()
    result = run_demo()
    console.rule("seed 000: vm0, 512 MiB at 0x40000000, simple_untyped24_pool = 33")
    print_plan(console, result.plan, None)
    verdict = "[green]ok[/]" if result.pattern_ok else "[red]MISMATCH[/]"
    console.print(f"wrote and read back {human_size(result.bytes_checked)} of guest RAM: {verdict}")
    console.rule("the same file with simple_untyped24_pool = 32")
    print_findings(console, result.shortfall)
    console.rule("seed 000's 1:1 variant (map_one_to_one, untyped_mmios 0x40000000:29, pool 1)")
    print_plan(console, result.one_to_one, None)
    if not result.pattern_ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)

"""``sel4vmm plan FILE``: what a configuration needs, before an image is built."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from sel4vmm.cli.render import make_console, map_table
from sel4vmm.config.load import load_system
from sel4vmm.config.spec import Finding
from sel4vmm.errors import Sel4VmmError
from sel4vmm.plan import SystemPlan, plan_system
from sel4vmm.plan.document import plan_json
from sel4vmm.plan.root_task import RootTaskImage
from sel4vmm.sel4.objects import human_size


def parse_size(text: str) -> int:
    """``2G``, ``512M``, ``0x80000000`` or plain bytes, as QEMU's ``-m`` (M by default)."""
    raw = text.strip().upper().replace("_", "")
    units = {"K": 10, "M": 20, "G": 30, "T": 40}
    try:
        if raw.startswith("0X"):
            return int(raw, 16)
        if raw and raw[-1] in units:
            return int(raw[:-1]) << units[raw[-1]]
        return int(raw) << 20
    except ValueError:
        raise Sel4VmmError(
            f"cannot read the RAM size '{text}'", fix="write it as QEMU's -m does: 2G, 512M"
        ) from None


def print_findings(console: Console, findings: list[Finding]) -> None:
    colours = {"error": "red", "warning": "yellow", "note": "blue"}
    for finding in findings:
        colour = colours.get(finding.severity, "white")
        where = f"{finding.location}: " if finding.location else ""
        text = f"{escape(where)}[{colour}]{finding.severity}[/]: {escape(finding.message)}"
        if finding.fix:
            text += f"\n    fix: {escape(finding.fix)}"
        console.print(text, soft_wrap=True)


def print_plan(console: Console, plan: SystemPlan, vm_name: str | None) -> None:
    from sel4vmm.cli.render import resources_table

    console.print(
        f"[bold]{escape(plan.path)}[/] ({plan.format}) on [bold]{plan.board.name}[/] "
        f"with {human_size(plan.board.ram_size)} of RAM"
    )
    print_findings(console, plan.findings)
    for vm in plan.vms:
        if vm_name is not None and vm.name != vm_name:
            continue
        console.print(map_table(vm))
        if vm.resources is not None:
            console.print(resources_table(vm.name, vm.resources))
        print_findings(console, vm.findings)


def plan(
    file: Annotated[Path, typer.Argument(help="A Microkit .system or CAmkES .camkes file.")],
    vm: Annotated[str | None, typer.Option("--vm", help="Show only this VM.")] = None,
    board: Annotated[str | None, typer.Option("--board", help="Board to plan for.")] = None,
    ram_size: Annotated[
        str | None, typer.Option("--ram-size", help="QEMU board RAM (-m), e.g. 2G.")
    ] = None,
    arch: Annotated[
        str | None,
        typer.Option("--arch", help="aarch64, riscv64 or x86_64 (default: the board's)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
    loader_image: Annotated[
        Path | None,
        typer.Option(
            "--loader-image",
            help="The root-task ELF the ELF loader loads (guest images embedded): adds its "
            "CNode, virtual-pool, untyped and placement sizing.",
        ),
    ] = None,
) -> None:
    """Plan a configuration: guest-physical map, seL4 objects, CSpace, findings with fixes."""
    spec = load_system(file, arch=arch, board=board)
    if vm is not None and vm not in [v.name for v in spec.vms]:
        names = ", ".join(v.name for v in spec.vms) or "none"
        raise Sel4VmmError(f"{file}: no VM named '{vm}'", fix=f"the VMs are: {names}")
    root_task = _root_task_image(loader_image) if loader_image is not None else None
    result = plan_system(
        spec,
        board=board,
        ram_size=parse_size(ram_size) if ram_size else None,
        root_task=root_task,
    )
    if as_json:
        typer.echo(json.dumps(plan_json(result, vm), indent=2))
    else:
        print_plan(make_console(), result, vm)
    if result.has_errors:
        raise typer.Exit(1)


def _root_task_image(path: Path) -> RootTaskImage:
    """The span of a root-task image: its ELF segments' virtual range, else its size."""
    from sel4vmm.images.blob import ImageBlob
    from sel4vmm.images.elf import is_elf, parse_elf

    with ImageBlob.open(path, role="loader image") as blob:
        if is_elf(blob.data):
            image = parse_elf(blob.data, str(path))
            low = min(s.vaddr for s in image.segments)
            high = max(s.vaddr + s.mem_size for s in image.segments)
            return RootTaskImage(str(path), high - low, low & ~0xFFF)
        return RootTaskImage(str(path), blob.size)


def register(app: typer.Typer) -> None:
    app.command("plan")(plan)

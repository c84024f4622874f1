"""``sel4vmm plan FILE``: what a configuration needs, before an image is built.

Prints the guest-physical map, the seL4 objects and the findings; ``--json`` prints the
stable plan document, ``--html``/``--svg`` draw it (:mod:`sel4vmm.cli.picture`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sel4vmm.cli.options import (
    ArchOption,
    BoardOption,
    DefineOption,
    IncludeOption,
    JsonOption,
    RamSizeOption,
    VmOption,
    single_vm,
)
from sel4vmm.errors import Location, Sel4VmmError

if TYPE_CHECKING:
    from rich.console import Console

    from sel4vmm.config.spec import Finding
    from sel4vmm.plan import SystemPlan
    from sel4vmm.plan.root_task import RootTaskImage


def print_findings(console: Console, findings: list[Finding]) -> None:
    from rich.markup import escape

    colours = {"error": "red", "warning": "yellow", "note": "blue"}
    for finding in findings:
        colour = colours.get(finding.severity, "white")
        where = f"{finding.location}: " if finding.location else ""
        text = f"{escape(where)}[{colour}]{finding.severity}[/]: {escape(finding.message)}"
        if finding.fix:
            text += f"\n    fix: {escape(finding.fix)}"
        console.print(text, soft_wrap=True)


def print_plan(console: Console, plan: SystemPlan, vm_name: str | None) -> None:
    from rich.markup import escape

    from sel4vmm.cli.render import map_table, resources_table
    from sel4vmm.sel4.objects import human_size

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


def _write(path: Path, text: str, what: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        raise Sel4VmmError(
            f"cannot write the {what}: {error.strerror}",
            location=Location(str(path)),
            fix=f"give a writable path for the {what}",
        ) from None


def plan(
    file: Annotated[
        Path, typer.Argument(metavar="FILE", help="A Microkit .system or CAmkES .camkes file.")
    ],
    vm: VmOption = None,
    board: BoardOption = None,
    ram_size: RamSizeOption = None,
    arch: ArchOption = None,
    define: DefineOption = None,
    include: IncludeOption = None,
    as_json: JsonOption = False,
    html: Annotated[
        Path | None,
        typer.Option(
            "--html", metavar="FILE", help="Also draw the memory map as a self-contained page."
        ),
    ] = None,
    svg: Annotated[
        Path | None,
        typer.Option("--svg", metavar="FILE", help="Also draw the memory map as an SVG image."),
    ] = None,
    loader_image: Annotated[
        Path | None,
        typer.Option(
            "--loader-image",
            metavar="FILE",
            help="The root-task ELF the ELF loader loads (guest images embedded): adds its "
            "CNode, virtual-pool, untyped and placement sizing.",
        ),
    ] = None,
) -> None:
    """Plan a configuration: guest-physical map, seL4 objects, CSpace, findings with fixes."""
    from sel4vmm.cli.configuration import read_configuration
    from sel4vmm.plan import plan_system
    from sel4vmm.plan.document import plan_json

    vm_name = single_vm(vm, "plan")
    spec = read_configuration(
        file, arch=arch, board=board, defines=define or (), includes=include or ()
    )
    if vm_name is not None and vm_name not in [v.name for v in spec.vms]:
        names = ", ".join(v.name for v in spec.vms) or "none"
        raise Sel4VmmError(f"{file}: no VM named '{vm_name}'", fix=f"the VMs are: {names}")
    root_task = _root_task_image(loader_image) if loader_image is not None else None
    result = plan_system(spec, board=board, ram_size=ram_size, root_task=root_task)
    if html is not None or svg is not None:
        from sel4vmm.cli.picture import memory_map_page, memory_map_svg

        document = plan_json(result, vm_name)
        windows = [
            {"name": r.name, "base": r.base, "size": r.size}
            for r in result.board.memory_ranges()
            if r.device
        ]
        if html is not None:
            _write(html, memory_map_page(document, windows), "HTML page")
        if svg is not None:
            _write(svg, memory_map_svg(document, windows), "SVG image")
    if as_json:
        typer.echo(json.dumps(plan_json(result, vm_name), indent=2))
    else:
        from sel4vmm.cli.render import make_console

        print_plan(make_console(), result, vm_name)
    if result.has_errors:
        raise typer.Exit(1)


def _root_task_image(path: Path) -> RootTaskImage:
    """The span of a root-task image: its ELF segments' virtual range, else its size."""
    from sel4vmm.images.blob import ImageBlob
    from sel4vmm.images.elf import is_elf, parse_elf
    from sel4vmm.plan.root_task import RootTaskImage

    with ImageBlob.open(path, role="loader image") as blob:
        if is_elf(blob.data):
            image = parse_elf(blob.data, str(path))
            low = min(s.vaddr for s in image.segments)
            high = max(s.vaddr + s.mem_size for s in image.segments)
            return RootTaskImage(str(path), high - low, low & ~0xFFF)
        return RootTaskImage(str(path), blob.size)


def register(app: typer.Typer) -> None:
    app.command("plan")(plan)

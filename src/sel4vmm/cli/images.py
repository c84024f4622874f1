"""``sel4vmm images`` and ``sel4vmm initramfs``: place a VM's images, build an initramfs.

``images`` shows where a VM's kernel, initrd and device tree go, and what is wrong.

Reads the system description (Microkit ``.system`` or CAmkES ``.camkes``) for the VM's
guest RAM and configured addresses, opens the images (command-line paths override the
configuration's), and prints the placement table and every finding.  With ``--out`` it
writes the final DTB (or x86 zero page) and a raw guest-RAM image that a backend or QEMU's
``-device loader`` can load at the RAM base.  Exit status 1 when there is an error.

``initramfs`` writes a bootable newc archive from a static busybox and/or a directory, for
demos and tests that need a guest userland without root or a cpio binary.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from sel4vmm.cli.options import (
    ArchOption,
    BoardOption,
    BootargsOption,
    DefineOption,
    DtbOption,
    DtsOption,
    IncludeOption,
    InitrdOption,
    JsonOption,
    KernelOption,
    OutOption,
    OverlayOption,
    VmOption,
    single_vm,
)
from sel4vmm.errors import Sel4VmmError, read_user_file

if TYPE_CHECKING:
    from rich.console import Console

    from sel4vmm.config.spec import SystemSpec, VmSpec
    from sel4vmm.images.loader import ProgressCallback
    from sel4vmm.images.prepare import PreparedBoot

#: Images at least this big get a progress bar when written.
PROGRESS_THRESHOLD = 16 << 20


def load_system(
    path: Path,
    *,
    arch: str | None,
    board: str | None,
    defines: Sequence[str] = (),
    includes: Sequence[Path] = (),
) -> SystemSpec:
    """The configuration, checked as ``check`` does: an invalid one stops here with the
    checker's own located error."""
    from sel4vmm.cli.configuration import read_valid_configuration

    return read_valid_configuration(
        path, arch=arch, board=board, defines=defines, includes=includes
    )


def boot_to_json(vm: VmSpec, boot: PreparedBoot) -> dict[str, Any]:
    plan = boot.plan
    return {
        "vm": vm.name,
        "arch": plan.arch,
        "ram": [{"base": w.base, "size": w.size} for w in plan.ram],
        "kernel": boot.kernel.description if boot.kernel else None,
        "initrd": boot.initrd.description if boot.initrd else None,
        "placement": [
            {
                "role": p.role,
                "addr": p.addr,
                "end": p.end,
                "reserved": p.size,
                "bytes": p.load_size,
                "configured": p.configured,
                "source": p.source,
            }
            for p in plan.placed
        ],
        "entry": plan.entry,
        "registers": boot.boot_state.registers() if boot.boot_state else None,
        "findings": [
            {
                "severity": f.severity,
                "message": f.message,
                "location": str(f.location) if f.location else None,
                "fix": f.fix,
            }
            for f in boot.findings
        ],
        "ok": boot.ok,
    }


def render(console: Console, vm: VmSpec, boot: PreparedBoot) -> None:
    from rich.markup import escape
    from rich.table import Table

    plan = boot.plan
    ram = ", ".join(f"[{w.base:#x}, {w.end:#x})" for w in plan.ram) or "none"
    console.print(f"[bold]VM {escape(vm.name)}[/] ({plan.arch}), guest RAM {ram}")
    table = Table(show_edge=False, header_style="bold")
    for column in ("image", "format", "guest range", "bytes", "reserved", "address"):
        table.add_column(column, overflow="fold")  # never an ellipsis: whole names, numbers
    descriptions = {
        "kernel": boot.kernel.description if boot.kernel else "",
        "initrd": boot.initrd.description if boot.initrd else "",
        "dtb": "device tree blob",
        "zero page": "boot_params + command line",
    }
    for placed in plan.placed:
        table.add_row(
            escape(placed.role + (f" ({Path(placed.source).name})" if placed.source else "")),
            escape(descriptions.get(placed.role, "")),
            f"[{placed.addr:#x}, {placed.end:#x})",
            f"{placed.load_size:#x}",
            f"{placed.size:#x}",
            "configured" if placed.configured else "chosen",
        )
    console.print(table)
    if boot.boot_state is not None:
        registers = ", ".join(f"{k}={v:#x}" for k, v in boot.boot_state.registers().items())
        console.print(f"entry: {registers}")
    styles = {"error": "bold red", "warning": "yellow", "note": "cyan"}
    for finding in boot.findings:
        where = f"{finding.location}: " if finding.location else ""
        style = styles.get(finding.severity, "")
        console.print(
            f"{escape(where)}[{style}]{finding.severity}:[/] {escape(finding.message)}",
            soft_wrap=True,
        )
        if finding.fix:
            console.print(f"    fix: {escape(finding.fix)}", soft_wrap=True)
    console.print("[green]ok[/]" if boot.ok else "[bold red]the images cannot boot as placed[/]")


def write_outputs(
    boot: PreparedBoot, out: Path, vm: VmSpec, progress: ProgressCallback | None
) -> list[Path]:
    """The final DTB / zero page and the RAM image; nothing is written if the plan fails."""
    from sel4vmm.images.loader import write_ram_image

    boot.plan.raise_if_errors()
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if boot.boot_data is not None and boot.plan.boot_data is not None:
        suffix = "dtb" if boot.plan.boot_data.role == "dtb" else "zeropage.bin"
        boot_path = out / f"{vm.name}.{suffix}"
        boot_path.write_bytes(boot.boot_data)
        written.append(boot_path)
    base = min(w.base for w in boot.plan.ram)
    ram_path = out / f"{vm.name}-ram.bin"
    write_ram_image(boot, ram_path, base=base, progress=progress)
    written.append(ram_path)
    return written


def run_images(
    system: SystemSpec,
    *,
    vm_name: str | None,
    kernel: Path | None,
    initrd: Path | None,
    dtb: Path | None,
    dts: Path | None,
    overlays: Sequence[Path],
    bootargs: str | None,
    out: Path | None,
    as_json: bool,
    console: Console,
) -> bool:
    """The command's work, separated from argument parsing so tests can call it."""
    from rich.markup import escape
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    from sel4vmm.config import load as config_load
    from sel4vmm.images.prepare import prepare_from_spec

    if dtb is not None and dts is not None:
        raise Sel4VmmError("--dtb and --dts are alternatives", fix="pass only one of them")
    vm = config_load.pick_vm(system, vm_name)
    boot = prepare_from_spec(
        vm,
        kernel=kernel,
        initrd=initrd,
        dtb=dtb,
        dts=dts,
        overlays=overlays,
        bootargs=bootargs,
        base_dir=Path(system.path).parent,
        camkes=system.format == "camkes",
    )
    if as_json:
        console.print_json(json.dumps(boot_to_json(vm, boot)))
    else:
        render(console, vm, boot)
    if out is not None and boot.ok:
        total = sum(p.load_size for p in boot.plan.placed)
        if total >= PROGRESS_THRESHOLD and not as_json:
            with Progress(
                TextColumn("writing {task.description}"),
                BarColumn(),
                DownloadColumn(),
                console=console,
                transient=True,
            ) as bar:
                task = bar.add_task("RAM image", total=total)

                def advance(role: str, done: int, _total: int) -> None:
                    bar.update(task, completed=done, description=role)

                paths = write_outputs(boot, out, vm, advance)
        else:
            paths = write_outputs(boot, out, vm, None)
        if not as_json:
            for path in paths:
                console.print(f"wrote {escape(str(path))}")
    return boot.ok


def build_initramfs(
    out: Path,
    *,
    busybox: Path | None,
    tree: Path | None,
    init: Path | None,
    compress: bool = True,
    modules: Sequence[str] = (),
    modules_dir: Path | None = None,
) -> int:
    """Write an initramfs (newc, gzip'd unless ``compress`` is False); returns its size.

    ``modules`` are kernel module names: they and their dependencies go under
    ``/lib/modules/<version>/``, and ``/init`` runs ``/sbin/load-modules`` first, which
    insmods them in dependency order.
    """
    from sel4vmm.images.cpio import DEFAULT_INIT, InitramfsBuilder
    from sel4vmm.images.modules import load_script, resolve_modules

    if busybox is None and tree is None:
        raise Sel4VmmError(
            "nothing to put in the initramfs",
            fix="pass --busybox PATH (a static busybox) and/or --dir DIRECTORY",
        )
    if modules and busybox is None:
        raise Sel4VmmError(
            "--modules needs --busybox: busybox's insmod loads the modules in the guest",
            fix="add --busybox PATH (a static busybox)",
        )
    script: str | None = None
    if init is not None:
        script = read_user_file(init, "the init script", "check the path given to --init").decode(
            "utf-8", "replace"
        )
    builder = InitramfsBuilder()
    if modules:
        version, found = resolve_modules(list(modules), modules_dir)
        for module in found:
            builder.add_file(f"/lib/modules/{version}/{module.archive_path}", module.data)
        builder.add_file("/sbin/load-modules", load_script(version, found).encode(), 0o755)
        script = with_module_loading(script or DEFAULT_INIT)
    if busybox is not None:
        builder.add_busybox(busybox, init_script=script or DEFAULT_INIT)
    elif script is not None:
        builder.add_file("/init", script.encode(), 0o755)
    if tree is not None:
        builder.add_tree(tree)
    data = builder.build_gzip() if compress else builder.build()
    out.write_bytes(data)
    return len(data)


def with_module_loading(script: str) -> str:
    """``script`` with ``/sbin/load-modules`` run first (after its ``#!`` line)."""
    first, _newline, rest = script.partition("\n")
    if first.startswith("#!"):
        return f"{first}\n/sbin/load-modules\n{rest}"
    return f"/sbin/load-modules\n{script}"


def register(app: typer.Typer) -> None:
    @app.command("initramfs")
    def initramfs(
        out: Annotated[
            Path, typer.Argument(metavar="FILE", help="File to write (rootfs.cpio.gz).")
        ],
        busybox: Annotated[
            Path | None,
            typer.Option(
                "--busybox", metavar="FILE", help="Static busybox binary (e.g. busybox-static's)."
            ),
        ] = None,
        directory: Annotated[
            Path | None,
            typer.Option("--dir", metavar="DIR", help="Directory whose contents are added."),
        ] = None,
        init: Annotated[
            Path | None, typer.Option("--init", metavar="FILE", help="Script to use as /init.")
        ] = None,
        gzip: Annotated[bool, typer.Option("--gzip/--no-gzip", help="Gzip the archive.")] = True,
        modules: Annotated[
            str,
            typer.Option(
                "--modules",
                metavar="NAMES",
                help="Kernel modules to load in /init, comma-separated "
                "(virtio_mmio,virtio_blk,virtio_console,virtio_net); their dependencies follow.",
            ),
        ] = "",
        modules_dir: Annotated[
            Path | None,
            typer.Option(
                "--modules-dir",
                metavar="DIR",
                help="lib/modules/<version> of the guest's kernel "
                "(default: the one version under .cache/debian-arm64/root/lib/modules).",
            ),
        ] = None,
    ) -> None:
        """Build a newc initramfs (with /dev/console) from busybox and/or a directory."""
        names = [name.strip() for name in modules.split(",") if name.strip()]
        size = build_initramfs(
            out,
            busybox=busybox,
            tree=directory,
            init=init,
            compress=gzip,
            modules=names,
            modules_dir=modules_dir,
        )
        typer.echo(f"wrote {out} ({size} bytes)")

    @app.command("images")
    def images(
        system: Annotated[
            Path,
            typer.Argument(metavar="FILE", help="A Microkit .system or CAmkES .camkes file."),
        ],
        kernel: KernelOption = None,
        initrd: InitrdOption = None,
        dtb: DtbOption = None,
        dts: DtsOption = None,
        overlay: OverlayOption = None,
        bootargs: BootargsOption = None,
        vm: VmOption = None,
        arch: ArchOption = None,
        board: BoardOption = None,
        define: DefineOption = None,
        include: IncludeOption = None,
        out: OutOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Place and check a VM's kernel, initrd and device tree."""
        from sel4vmm.cli.render import make_console

        spec = load_system(
            system, arch=arch, board=board, defines=define or (), includes=include or ()
        )
        ok = run_images(
            spec,
            vm_name=single_vm(vm, "images"),
            kernel=kernel,
            initrd=initrd,
            dtb=dtb,
            dts=dts,
            overlays=overlay or [],
            bootargs=bootargs,
            out=out,
            as_json=as_json,
            console=make_console(),
        )
        if not ok:
            raise typer.Exit(1)

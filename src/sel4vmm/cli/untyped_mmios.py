"""``sel4vmm untyped-mmios [LOG] --ram BASE:SIZE``: the ``untyped_mmios`` lines for 1:1 RAM.

Reads the capDL loader's printed untyped list (``CapDLLoaderPrintUntypeds``) from a boot
log, or without a log takes the boot untyped of the board model (``--board``), and prints
the exact CAmkES lines that back guest RAM at ``BASE`` with device untyped, and the pool
the rest of kernel RAM can still give.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from sel4vmm.cli.options import (
    BoardOption,
    JsonOption,
    RamSizeOption,
    VmOption,
    parse_size,
    single_vm,
)
from sel4vmm.errors import Sel4VmmError, read_user_file
from sel4vmm.plan.untyped_mmios import (
    MAX_LOG_BYTES,
    PrintedUntyped,
    cover_guest_ram,
    from_boot_untypeds,
    parse_untyped_log,
)


def _address(text: str, what: str) -> int:
    try:
        return parse_size(text) if not text.strip().lower().startswith("0x") else int(text, 16)
    except ValueError as error:
        raise Sel4VmmError(
            f"cannot read {what}: {error}", fix="write --ram 0x40000000:512M"
        ) from None


def parse_ram(text: str) -> tuple[int, int]:
    """``--ram BASE:SIZE``: the guest RAM whose untyped the lines must name."""
    base, sep, size = text.partition(":")
    if not sep:
        raise Sel4VmmError(f"--ram {text!r} is not BASE:SIZE", fix="write --ram 0x40000000:512M")
    return _address(base, "the RAM base"), _address(size, "the RAM size")


def read_log(path: Path) -> str:
    """A boot log: a regular file of bounded size, decoded leniently (consoles mangle)."""
    data = read_user_file(
        path,
        "the boot log",
        "save the boot console to a file and give that",
        max_bytes=MAX_LOG_BYTES,
    )
    return data.decode("utf-8", errors="replace")


def _board_untypeds(
    board: str, ram_size: int | None
) -> tuple[list[PrintedUntyped], list[tuple[int, int]]]:
    from sel4vmm.boards import load_board
    from sel4vmm.sel4.arch import arch_by_name
    from sel4vmm.sel4.platform import boot_untypeds_of_ram

    model = load_board(board, ram_size)
    arch = arch_by_name("aarch64" if model.arch == "aarch32" else model.arch)
    untypeds = boot_untypeds_of_ram(model.ram, arch, device_reserved=model.reserved_memory)
    return from_boot_untypeds(untypeds), [(r.base, r.size) for r in model.ram]


def untyped_mmios(
    log: Annotated[
        Path | None,
        typer.Argument(help="A boot log with the capDL loader's untyped list (optional)."),
    ] = None,
    ram: Annotated[
        str, typer.Option("--ram", help="Guest RAM as BASE:SIZE, e.g. 0x40000000:512M.")
    ] = "",
    board: BoardOption = None,
    ram_size: RamSizeOption = None,
    vm: VmOption = None,
    pool_bits: Annotated[
        int, typer.Option("--pool-bits", help="Untyped size of the pool left (bits).")
    ] = 24,
    as_json: JsonOption = False,
) -> None:
    """Print the untyped_mmios lines that back guest RAM 1:1, and the pool size left.

    Without a log the board model's boot untyped are used (``--board``); ``--vm`` names
    the VM instance the lines are for (default ``vm0``)."""
    vm_name = single_vm(vm, "untyped-mmios") or "vm0"
    if not ram:
        raise Sel4VmmError("--ram BASE:SIZE is required", fix="e.g. --ram 0x40000000:512M")
    base, size = parse_ram(ram)
    board_ram = None
    if log is not None:
        untypeds = parse_untyped_log(read_log(log), str(log))
        source = str(log)
    else:
        if board is None:
            raise Sel4VmmError(
                "give the capDL loader's boot log, or --board to use the board model",
                fix="sel4vmm untyped-mmios boot.log --ram ... (or --board qemu-arm-virt)",
            )
        untypeds, board_ram = _board_untypeds(board, ram_size)
        source = f"board model {board}"
    result = cover_guest_ram(untypeds, base, size, pool_bits=pool_bits, board_ram=board_ram)
    if as_json:
        document = {
            "source": source,
            "ram": {"base": base, "size": size},
            "untyped_mmios": [
                {"paddr": paddr, "size_bits": bits, "device": origin.device}
                for paddr, bits, origin in result.entries
            ],
            "pool": {"size_bits": result.pool_bits, "count": result.pool_count},
        }
        typer.echo(json.dumps(document, indent=2))
        return
    typer.echo(f"// guest RAM {base:#x}-{base + size:#x} from the untyped of {source}")
    for line in result.camkes_lines(vm_name):
        typer.echo(line)
    typer.echo(
        f"// pool size left: {result.pool_count} untyped of 2^{result.pool_bits} in kernel RAM "
        f"outside guest RAM, at most simple_untyped{result.pool_bits}_pool = "
        f"{result.pool_count} for all components together"
    )
    typer.echo(
        "// the VM itself now needs a pool only for its paging structures (seed 000: "
        "simple_untyped24_pool = 1); 'sel4vmm plan' says exactly how many"
    )
    if result.kernel_ram_in_guest_ram:
        typer.echo(
            f"// warning: {result.kernel_ram_in_guest_ram:#x} bytes of guest RAM are kernel "
            "RAM (memory untyped) the loader also allocates from; reserve them from the "
            "kernel (a reserved-memory overlay) so they become device untyped",
            err=True,
        )


def register(app: typer.Typer) -> None:
    app.command("untyped-mmios")(untyped_mmios)

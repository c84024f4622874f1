"""CAmkES VM configurations (camkes-vm's ``devices.camkes`` and application files).

:func:`read_camkes` is the entry point: it preprocesses the file with the headers
camkes-vm provides, finds the platform's ``devices.camkes``, parses the assembly and
returns the same :class:`~sel4vmm.config.spec.SystemSpec` the Microkit reader produces.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from sel4vmm.boards import canonical_board_name, load_board
from sel4vmm.config.camkes.reader import read_files
from sel4vmm.config.camkes.to_spec import build_system_spec
from sel4vmm.config.spec import Finding, SystemSpec
from sel4vmm.errors import Location

__all__ = ["read_camkes"]


def read_camkes(
    path: str | Path,
    *,
    include_dirs: Sequence[str | Path] = (),
    defines: Mapping[str, str] | None = None,
) -> SystemSpec:
    """Read a CAmkES VM configuration into a :class:`SystemSpec` (``format="camkes"``).

    ``path`` is an application file (``vm_minimal.camkes``, which imports
    ``devices.camkes``) or a platform ``devices.camkes`` read on its own.  For an
    application file the platform directory comes from ``defines["PLAT"]`` (or
    ``KernelARMPlatform``), e.g. ``{"PLAT": "qemu-arm-virt"}``, or from ``include_dirs``.
    Every problem is a :class:`~sel4vmm.errors.Sel4VmmError` with the file location.
    """
    source = Path(path)
    read = read_files(
        source, include_dirs=[Path(d) for d in include_dirs], defines=dict(defines or {})
    )
    board = None
    if read.platform is not None:
        platform_board = Path(read.platform).parts[0]
        board = canonical_board_name(platform_board) or platform_board
    spec = build_system_spec(str(path), read, board)
    if board is not None and canonical_board_name(board) is not None:
        architecture = load_board(board).arch
        if architecture != "aarch64":
            # camkes-vm's VM_Arm also runs on 32-bit ARM boards (HYP mode with LPAE); the
            # stage-2 layout sel4vmm models is the AArch64 one, which has the same frame
            # sizes, so the VMs are kept as aarch64 and the difference is said out loud.
            spec.findings.append(
                Finding(
                    "note",
                    f"board {board} is {architecture}; its VMs are modelled with the AArch64 "
                    "stage-2 layout (same 4 KiB/2 MiB/1 GiB frames)",
                    location=Location(str(path)),
                )
            )
    return spec

"""Reading a user's configuration the same way in every command.

``check``, ``plan``, ``images`` and ``run`` all take a Microkit ``.system`` (any name: the
Microkit tool does not care about the extension) or a CAmkES ``.camkes`` file, with the same
``--board``, ``--arch``, ``-D`` and ``-I``.  The target architecture follows the board (libvmm's
``board/x86_64_generic_vtx/simple.system`` is checked as x86_64) unless ``--arch`` says
otherwise, and a command that needs a valid configuration refuses an invalid one with the
checker's own located error, never a later, vaguer one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sel4vmm.cli.options import parse_defines
from sel4vmm.config.spec import SystemSpec
from sel4vmm.errors import Location, Sel4VmmError

#: The architecture when neither ``--arch`` nor a board says one.
DEFAULT_ARCH = "aarch64"


def board_name_for(path: Path, board: str | None) -> str | None:
    """The board ``--board`` names (canonical), else the one a directory of ``path`` names."""
    from sel4vmm.boards import canonical_board_name, load_board
    from sel4vmm.config.load import board_from_path

    if board is not None:
        canonical = canonical_board_name(board)
        if canonical is None:
            load_board(board)  # raises the error that lists the known boards
        return canonical
    return board_from_path(path) if path.exists() else None


def target_arch(path: Path, arch: str | None, board: str | None) -> str:
    """``--arch`` if given, else the board's architecture, else aarch64."""
    if arch is not None:
        return arch
    name = board_name_for(path, board)
    if name is None:
        return DEFAULT_ARCH
    from sel4vmm.boards import load_board

    board_arch = load_board(name).arch
    return board_arch if board_arch in ("aarch64", "riscv64", "x86_64") else DEFAULT_ARCH


def read_configuration(
    path: Path,
    *,
    arch: str | None = None,
    board: str | None = None,
    defines: Sequence[str] = (),
    includes: Sequence[Path] = (),
) -> SystemSpec:
    """The configuration with the checker's findings (errors included) for ``plan``."""
    from sel4vmm.config.load import load_system

    return load_system(
        path,
        arch=target_arch(path, arch, board),
        board=board,
        defines=parse_defines(defines),
        include_dirs=tuple(includes),
    )


def first_error(spec: SystemSpec) -> Sel4VmmError | None:
    """The configuration's first error as the located error ``check`` prints, or None."""
    errors = [f for f in spec.findings if f.severity == "error"]
    if not errors:
        return None
    first = errors[0]
    more = f" (and {len(errors) - 1} more: run 'sel4vmm check {spec.path}')" if errors[1:] else ""
    return Sel4VmmError(
        first.message + more,
        location=first.location or Location(spec.path),
        fix=first.fix or f"run 'sel4vmm check {spec.path}' for every problem",
    )


def read_valid_configuration(
    path: Path,
    *,
    arch: str | None = None,
    board: str | None = None,
    defines: Sequence[str] = (),
    includes: Sequence[Path] = (),
) -> SystemSpec:
    """The configuration, which must have no error: commands that build or run from it
    (``images``, ``run``) stop at the checker's first located error, as ``check`` shows it."""
    spec = read_configuration(path, arch=arch, board=board, defines=defines, includes=includes)
    error = first_error(spec)
    if error is not None:
        raise error
    return spec

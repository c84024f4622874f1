"""Read any configuration file users write, by its kind: one entry point for the commands.

``.system`` files are Microkit system descriptions, ``.camkes`` files are CAmkES VM
configurations.  The board is taken from the command line, else from the configuration
(CAmkES platform directory), else from a path component that names a board (libvmm keeps
its systems under ``board/<board>/``).
"""

from __future__ import annotations

from pathlib import Path

from sel4vmm.boards import canonical_board_name, load_board
from sel4vmm.config.spec import SystemSpec, VmSpec
from sel4vmm.errors import Location, Sel4VmmError


def board_from_path(path: Path) -> str | None:
    """A board named by a directory of ``path`` (``board/qemu_virt_aarch64/simple.system``)."""
    for part in reversed(path.resolve().parent.parts):
        name = canonical_board_name(part)
        if name is not None:
            return name
    return None


def _camkes_platform(path: Path, board: str) -> str | None:
    """The platform directory beside a CAmkES application file that belongs to ``board``."""
    canonical = canonical_board_name(board)
    if canonical is None:
        return None
    names = [board, canonical, *load_board(canonical).aliases]
    for name in names:
        if (path.parent / name / "devices.camkes").is_file():
            return name
        versions = sorted((path.parent / name).glob("*/devices.camkes"))
        if versions:  # zcu102/2018_3, zcu102/2022_1: the newest tool version
            return f"{name}/{versions[-1].parent.name}"
    for child in sorted(path.parent.iterdir()) if path.parent.is_dir() else []:
        if child.is_dir() and canonical_board_name(child.name) == canonical:
            return child.name
    return None


def config_kind(path: Path) -> str:
    """``"camkes"`` for ``.camkes`` files, else ``"microkit"``: the Microkit tool reads a
    system description of any name (``ok.xml``, ``simple.system``), so every command does."""
    return "camkes" if path.suffix == ".camkes" else "microkit"


def load_system(
    path: str | Path,
    *,
    arch: str = "aarch64",
    hypervisor: bool = True,
    board: str | None = None,
    defines: dict[str, str] | None = None,
    include_dirs: tuple[Path, ...] = (),
) -> SystemSpec:
    """Read and check ``path``; the result carries the readers' findings.  ``defines`` and
    ``include_dirs`` are the CAmkES preprocessor's ``-D`` and ``-I``."""
    source = Path(path)
    if not source.is_file():
        raise Sel4VmmError(
            f"cannot read '{source}': no such file",
            location=Location(str(source)),
            fix="give the path of a .system or .camkes file",
        )
    if board is not None and canonical_board_name(board) is None:
        load_board(board)  # raises the error listing the known boards
    if config_kind(source) == "microkit":
        from sel4vmm.config.microkit import MicrokitTarget, read_microkit

        spec = read_microkit(source, MicrokitTarget(arch=arch, hypervisor=hypervisor))
        spec.board = canonical_board_name(board) if board else board_from_path(source)
        for vm in spec.vms:
            vm.board = spec.board
        return spec
    from sel4vmm.config.camkes import read_camkes

    camkes_defines = dict(defines or {})
    if board is not None and "PLAT" not in camkes_defines:
        platform = _camkes_platform(source, board)
        if platform is not None:
            camkes_defines["PLAT"] = platform
    spec = read_camkes(source, defines=camkes_defines, include_dirs=include_dirs)
    if board is not None:
        spec.board = canonical_board_name(board)
        for vm in spec.vms:
            vm.board = spec.board
    return spec


def pick_vm(spec: SystemSpec, name: str | None, *, first_if_many: bool = False) -> VmSpec:
    """The VM called ``name``, or the only one; several without a name need ``--vm``
    unless ``first_if_many`` (a run of the first ``<virtual_machine>``, as libvmm does)."""
    where = Location(spec.path)
    names = ", ".join(vm.name for vm in spec.vms)
    if not spec.vms:
        raise Sel4VmmError(
            "the configuration describes no virtual machine",
            location=where,
            fix="add a <virtual_machine> (Microkit) or a VM component (CAmkES)",
        )
    if name is None:
        if len(spec.vms) > 1 and not first_if_many:
            raise Sel4VmmError(
                f"the configuration has {len(spec.vms)} VMs ({names})",
                location=where,
                fix="choose one with --vm NAME",
            )
        return spec.vms[0]
    for vm in spec.vms:
        if vm.name == name:
            return vm
    raise Sel4VmmError(f"no VM named '{name}'", location=where, fix=f"use one of: {names}")


def load_vm(
    path: str | Path,
    *,
    vm_name: str | None = None,
    arch: str = "aarch64",
    board: str | None = None,
    first_if_many: bool = False,
) -> VmSpec:
    """One VM of a configuration that must be free of errors (for running it)."""
    spec = load_system(path, arch=arch, board=board)
    errors = [f for f in spec.findings if f.severity == "error"]
    if errors:
        first = errors[0]
        raise Sel4VmmError(
            f"{path} is not a valid system description: {first.message}",
            location=first.location or Location(str(path)),
            fix=first.fix or "run 'sel4vmm check' on it for every problem",
        )
    return pick_vm(spec, vm_name, first_if_many=first_if_many)

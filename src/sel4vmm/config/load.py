"""Read any configuration file users write, by its kind: one entry point for the commands.

``.system`` files are Microkit system descriptions, ``.camkes`` files are CAmkES VM
configurations.  The board is taken from the command line, else from the configuration
(CAmkES platform directory), else from a path component that names a board (libvmm keeps
its systems under ``board/<board>/``).
"""

from __future__ import annotations

import re
from pathlib import Path

from sel4vmm.boards import canonical_board_name, load_board
from sel4vmm.config.spec import SystemSpec, VmSpec
from sel4vmm.errors import Location, Sel4VmmError

#: Suffixes of Microkit/libvmm board directories that name a build of a board rather
#: than another board: ``qemu_virt_aarch64_hyp``, ``odroidc4_4_cores``.
_BUILD_SUFFIX = re.compile(r"^(?P<board>.+?)(?:_hyp|_\d+_cores?)+$")


def _board_of_directory(part: str) -> str | None:
    name = canonical_board_name(part)
    if name is None:
        build = _BUILD_SUFFIX.match(part)
        if build is not None:
            name = canonical_board_name(build["board"])
    return name


def board_from_path(path: Path) -> str | None:
    """A board named by a directory of ``path`` (``board/qemu_virt_aarch64/simple.system``).

    A directory right under ``board/`` that names no known board is returned as it is
    spelled, so that planning refuses it by name instead of falling back to a default.
    """
    parts = path.resolve().parent.parts
    for index in range(len(parts) - 1, -1, -1):
        name = _board_of_directory(parts[index])
        if name is not None:
            return name
        if index > 0 and parts[index - 1] == "board":
            return parts[index]
    return None


def arch_of_board(board: str | None) -> str | None:
    """The architecture of a known board (the arch follows the board, issue 12)."""
    if board is None or canonical_board_name(board) is None:
        return None
    arch = load_board(board).arch
    return "aarch64" if arch == "aarch32" else arch


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
    arch: str | None = "aarch64",
    hypervisor: bool = True,
    board: str | None = None,
    defines: dict[str, str] | None = None,
    include_dirs: tuple[Path, ...] = (),
) -> SystemSpec:
    """Read and check ``path``; the result carries the readers' findings.

    ``arch=None`` takes the kernel from the board (``--board``, else the path): its
    architecture (else AArch64) and the cores of the SDK's SMP build of it, which is
    what ``plan`` wants: the file says which cores it uses.  ``defines`` and
    ``include_dirs`` are the CAmkES preprocessor's ``-D`` and ``-I``.
    """
    source = Path(path)
    if not source.is_file():
        what = (
            "not a regular file (a device, FIFO or directory)"
            if source.exists()
            else "no such file"
        )
        raise Sel4VmmError(
            f"cannot read '{source}': {what}",
            location=Location(str(source)),
            fix="give the path of a .system or .camkes file",
        )
    if board is not None and canonical_board_name(board) is None:
        load_board(board)  # raises the error listing the known boards
    if config_kind(source) == "microkit":
        from sel4vmm.config.microkit import MicrokitTarget, read_microkit

        named = canonical_board_name(board) if board else board_from_path(source)
        cores = 1
        if arch is None:
            arch = arch_of_board(named) or "aarch64"
            if named is not None and canonical_board_name(named) is not None:
                cores = load_board(named).smp_cores
        target = MicrokitTarget(arch=arch, hypervisor=hypervisor, num_cores=cores)
        spec = read_microkit(source, target)
        spec.board = named
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
    raise_first_error(spec, path)
    return pick_vm(spec, vm_name, first_if_many=first_if_many)


def raise_first_error(spec: SystemSpec, path: str | Path) -> None:
    """Refuse to run a configuration with errors: the first one, where it is, and its fix."""
    errors = [f for f in spec.findings if f.severity == "error"]
    if errors:
        first = errors[0]
        raise Sel4VmmError(
            f"{path} is not a valid system description: {first.message}",
            location=first.location or Location(str(path)),
            fix=first.fix or "run 'sel4vmm check' on it for every problem",
        )

"""``sel4vmm check``: validate configuration files before building anything.

Each file is dispatched on its suffix -- ``.system`` to the Microkit checker, ``.camkes``
to the CAmkES reader -- and every finding is printed as ``file:line:col: error: message``
(or ``warning:``), the format editors and CI annotators understand.  The exit status is 1
if any file has an error, so the command can gate a build.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from sel4vmm.config.microkit import MicrokitTarget, check_file
from sel4vmm.config.microkit.sdk_boards import target_for_board
from sel4vmm.config.microkit.versions import DEFAULT_VERSION, parse_version
from sel4vmm.config.spec import Finding
from sel4vmm.errors import Location, Sel4VmmError

ARCHES = ("aarch64", "riscv64", "x86_64")


def _format(finding: Finding, default_path: str) -> list[str]:
    location = finding.location or Location(default_path)
    lines = [f"{location}: {finding.severity}: {finding.message}"]
    if finding.fix:
        lines.append(f"    fix: {finding.fix}")
    return lines


def _check_microkit(
    path: Path,
    target: MicrokitTarget,
    tool_messages: bool,
    include_dirs: Sequence[Path],
    defines: dict[str, str],
) -> tuple[list[str], bool]:
    result = check_file(path, target, include_dirs=include_dirs, defines=defines)
    if tool_messages:
        return [d.tool_text for d in result.diagnostics], result.ok
    lines = [line for d in result.diagnostics for line in _format(d.to_finding(), str(path))]
    return lines, result.ok


def _check_camkes(
    path: Path, include_dirs: Sequence[Path], defines: dict[str, str]
) -> tuple[list[str], bool]:
    try:
        camkes = importlib.import_module("sel4vmm.config.camkes")
    except ImportError:
        raise Sel4VmmError(
            "CAmkES support is not available in this installation",
            location=Location(str(path)),
            fix="install sel4vmm with its CAmkES reader (sel4vmm.config.camkes)",
        ) from None
    read_camkes: Callable[..., object] = camkes.read_camkes
    spec = read_camkes(path, include_dirs=include_dirs, defines=defines)
    findings: list[Finding] = list(getattr(spec, "findings", []))
    lines = [line for finding in findings for line in _format(finding, str(path))]
    return lines, not any(finding.severity == "error" for finding in findings)


def _parse_defines(pairs: Sequence[str]) -> dict[str, str]:
    defines = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        if not name:
            raise Sel4VmmError(f"bad --define '{pair}'", fix="write -D NAME=VALUE")
        defines[name] = value or "1"
    return defines


def check_paths(
    paths: Sequence[Path],
    target: MicrokitTarget,
    *,
    tool_messages: bool = False,
    include_dirs: Sequence[Path] = (),
    defines: dict[str, str] | None = None,
    echo: Callable[[str], None] = typer.echo,
) -> bool:
    """Check every path, print its findings; True when no file had an error."""
    all_ok = True
    for path in paths:
        try:
            if path.suffix == ".camkes":
                lines, ok = _check_camkes(path, include_dirs, defines or {})
            elif path.suffix in (".system", ".xml"):
                lines, ok = _check_microkit(
                    path, target, tool_messages, include_dirs, defines or {}
                )
            else:
                raise Sel4VmmError(
                    f"don't know how to check '{path.name}'",
                    location=Location(str(path)),
                    fix="give a Microkit .system file or a CAmkES .camkes file",
                )
        except Sel4VmmError as error:
            where = error.location or Location(str(path))
            lines = [f"{where}: error: {error.message}"]
            if error.fix:
                lines.append(f"    fix: {error.fix}")
            ok = False
        for line in lines:
            echo(line)
        if ok and not lines:
            echo(f"{path}: ok")
        all_ok = all_ok and ok
    return all_ok


def microkit_target(
    *,
    board: str | None,
    microkit: str | None,
    arch: str | None,
    no_hypervisor: bool,
    cores: int | None,
    no_iommu: bool,
    no_smc: bool,
    search_paths: Sequence[Path],
) -> MicrokitTarget:
    """The kernel configuration ``.system`` files are checked against: the SDK's for
    ``--board``, else the tool's test defaults for ``--arch``; the other flags override."""
    version = parse_version(microkit) if microkit is not None else DEFAULT_VERSION
    base = MicrokitTarget(search_paths=tuple(search_paths), microkit=version)
    if arch is not None and arch not in ARCHES:
        raise Sel4VmmError(f"unknown architecture '{arch}'", fix=f"use one of {', '.join(ARCHES)}")
    if board is not None:
        target = target_for_board(board, cores=cores, base=base)
        if arch is not None and arch != target.arch:
            raise Sel4VmmError(
                f"--arch {arch} contradicts --board {target.board}, an {target.arch} board",
                fix="drop --arch: the board decides the architecture",
            )
    else:
        target = replace(base, arch=arch or "aarch64", num_cores=cores or 1)
    return replace(
        target,
        hypervisor=target.hypervisor and not no_hypervisor,
        iommu=target.iommu and not no_iommu,
        arm_smc=False if no_smc and target.arm_smc is not None else target.arm_smc,
    )


def check(
    files: Annotated[list[Path], typer.Argument(help="Microkit .system or CAmkES .camkes files.")],
    arch: Annotated[
        str | None,
        typer.Option("--arch", help="Target architecture: aarch64 (default), riscv64 or x86_64."),
    ] = None,
    board: Annotated[
        str | None,
        typer.Option(
            "--board",
            help="Microkit SDK board (odroidc4, qemu_virt_aarch64, ...): check .system files "
            "against the kernel configuration the SDK builds for it.",
        ),
    ] = None,
    microkit: Annotated[
        str | None,
        typer.Option(
            "--microkit", help="Microkit release the .system files are for: 1.4 or 2.0 (default)."
        ),
    ] = None,
    no_hypervisor: Annotated[
        bool, typer.Option("--no-hypervisor", help="seL4 built without hypervisor support.")
    ] = False,
    cores: Annotated[
        int | None,
        typer.Option(
            "--cores", min=1, help="CPU cores seL4 is built for (default 1, or the board's)."
        ),
    ] = None,
    no_iommu: Annotated[
        bool, typer.Option("--no-iommu", help="seL4 built without IOMMU support.")
    ] = False,
    no_smc: Annotated[
        bool,
        typer.Option("--no-smc", help="seL4 built without SMC forwarding (KernelAllowSMCCalls)."),
    ] = False,
    search_path: Annotated[
        list[Path] | None,
        typer.Option("--search-path", help="Directory to find prefill_path files in."),
    ] = None,
    include: Annotated[
        list[Path] | None,
        typer.Option(
            "--include-dir", "--include", "-I", help="Include directory for the C preprocessor."
        ),
    ] = None,
    define: Annotated[
        list[str] | None,
        typer.Option("--define", "-D", help="C preprocessor define NAME=VALUE."),
    ] = None,
    tool_messages: Annotated[
        bool,
        typer.Option(
            "--tool-messages", help="Print Microkit findings exactly as the microkit tool does."
        ),
    ] = False,
) -> None:
    """Check configuration files; exit 1 if any has an error."""
    # --board, --microkit and the kernel flags describe the Microkit kernel: only resolved
    # (and only an error when wrong) if a .system file is being checked.
    microkit_files = any(path.suffix in (".system", ".xml") for path in files)
    target = microkit_target(
        board=board if microkit_files else None,
        microkit=microkit if microkit_files else None,
        arch=arch,
        no_hypervisor=no_hypervisor,
        cores=cores,
        no_iommu=no_iommu,
        no_smc=no_smc,
        search_paths=search_path or (),
    )
    ok = check_paths(
        files,
        target,
        tool_messages=tool_messages,
        include_dirs=include or (),
        defines=_parse_defines(define or ()),
    )
    if not ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``check`` to the ``sel4vmm`` command line."""
    app.command("check")(check)

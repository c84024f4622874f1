"""``sel4vmm check``: validate configuration files before building anything.

Each file is dispatched on its suffix -- ``.system`` to the Microkit checker, ``.camkes``
to the CAmkES reader -- and every finding is printed as ``file:line:col: error: message``
(or ``warning:``), the format editors and CI annotators understand.  The exit status is 1
if any file has an error, so the command can gate a build.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated

import typer

from sel4vmm.config.microkit import MicrokitTarget, check_file
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
    path: Path, target: MicrokitTarget, tool_messages: bool
) -> tuple[list[str], bool]:
    result = check_file(path, target)
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
                lines, ok = _check_microkit(path, target, tool_messages)
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


def check(
    files: Annotated[list[Path], typer.Argument(help="Microkit .system or CAmkES .camkes files.")],
    arch: Annotated[
        str, typer.Option("--arch", help="Target architecture: aarch64, riscv64 or x86_64.")
    ] = "aarch64",
    no_hypervisor: Annotated[
        bool, typer.Option("--no-hypervisor", help="seL4 built without hypervisor support.")
    ] = False,
    cores: Annotated[int, typer.Option("--cores", min=1, help="CPU cores seL4 is built for.")] = 1,
    no_iommu: Annotated[
        bool, typer.Option("--no-iommu", help="seL4 built without IOMMU support.")
    ] = False,
    search_path: Annotated[
        list[Path] | None,
        typer.Option("--search-path", help="Directory to find prefill_path files in."),
    ] = None,
    include: Annotated[
        list[Path] | None,
        typer.Option("--include-dir", "--include", "-I", help="CAmkES include directory."),
    ] = None,
    define: Annotated[
        list[str] | None, typer.Option("--define", "-D", help="CAmkES define NAME=VALUE.")
    ] = None,
    tool_messages: Annotated[
        bool,
        typer.Option(
            "--tool-messages", help="Print Microkit findings exactly as the microkit tool does."
        ),
    ] = False,
) -> None:
    """Check configuration files; exit 1 if any has an error."""
    if arch not in ARCHES:
        raise Sel4VmmError(f"unknown architecture '{arch}'", fix=f"use one of {', '.join(ARCHES)}")
    target = MicrokitTarget(
        arch=arch,
        hypervisor=not no_hypervisor,
        num_cores=cores,
        iommu=not no_iommu,
        search_paths=tuple(search_path or ()),
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

"""``sel4vmm check``: validate configuration files before building anything.

Each file is read by its kind -- ``.camkes`` by the CAmkES reader, anything else as a
Microkit system description (the Microkit tool does not care about the extension) -- and
every finding is printed as ``file:line:col: error: message`` (or ``warning:``), the format
editors and CI annotators understand; ``--json`` prints every finding with its location and
fix as one document.  The exit status is 1 if any file has an error, so the command can gate
a build.
"""

from __future__ import annotations

import json
from collections.abc import Container, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from sel4vmm.cli.options import (
    ArchOption,
    BoardOption,
    DefineOption,
    IncludeOption,
    JsonOption,
    MicrokitOption,
    parse_defines,
)
from sel4vmm.errors import Location, Sel4VmmError

if TYPE_CHECKING:
    from sel4vmm.config.microkit import MicrokitTarget
    from sel4vmm.config.spec import Finding

#: ``sel4vmm check --json``: ``{"schema", "version", "ok", "files": [{"path", "kind", "ok",
#: "findings": [FINDING]}]}`` with FINDING as in ``plan --json``.
SCHEMA = "sel4vmm-check"
VERSION = 1


@dataclass
class FileVerdict:
    """What checking one file found."""

    path: Path
    kind: str
    findings: list[Finding] = field(default_factory=list)
    tool_lines: list[str] | None = None

    @property
    def ok(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)


def _finding_json(finding: Finding, default_path: str) -> dict[str, Any]:
    location = finding.location or Location(default_path)
    return {
        "severity": finding.severity,
        "message": finding.message,
        "location": {"path": location.path, "line": location.line, "column": location.column},
        "fix": finding.fix,
    }


def _lines(verdict: FileVerdict) -> list[str]:
    if verdict.tool_lines is not None:
        return verdict.tool_lines
    lines = []
    for finding in verdict.findings:
        location = finding.location or Location(str(verdict.path))
        lines.append(f"{location}: {finding.severity}: {finding.message}")
        if finding.fix:
            lines.append(f"    fix: {finding.fix}")
    return lines


def check_one(
    path: Path,
    target: MicrokitTarget,
    *,
    tool_messages: bool = False,
    include_dirs: Sequence[Path] = (),
    defines: dict[str, str] | None = None,
    board: str | None = None,
) -> FileVerdict:
    """Check one file; an unreadable or unparsable one is an error finding, not an exception."""
    from sel4vmm.config.load import config_kind
    from sel4vmm.config.spec import Finding

    kind = config_kind(path)
    verdict = FileVerdict(path, kind)
    try:
        if kind == "camkes":
            from sel4vmm.config.load import load_system

            spec = load_system(
                path, board=board, defines=defines or {}, include_dirs=tuple(include_dirs)
            )
            verdict.findings = list(spec.findings)
        else:
            from sel4vmm.config.microkit import check_file

            # A .system with preprocessor directives (LionsOS) is preprocessed with -D/-I.
            result = check_file(
                path, target, include_dirs=tuple(include_dirs), defines=defines or {}
            )
            verdict.findings = [d.to_finding() for d in result.diagnostics]
            if tool_messages:
                verdict.tool_lines = [d.tool_text for d in result.diagnostics]
    except Sel4VmmError as error:
        verdict.findings = [
            Finding("error", error.message, error.location or Location(str(path)), error.fix)
        ]
        verdict.tool_lines = None
    return verdict


def microkit_target(
    path: Path,
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
    """The kernel configuration a ``.system`` is checked against (the tool's ``sel4::Config``).

    A ``--board`` the Microkit SDK is built for gives the SDK's configuration for it
    (:mod:`sel4vmm.config.microkit.sdk_boards`: SMP cores unless ``--cores 1``, IOMMU, SMC,
    PA bits, domains); any other board, or none, gives the tool's test defaults for the
    architecture the board or path says.  ``--no-hypervisor``, ``--cores``, ``--no-iommu``
    and ``--no-smc`` override either; ``--microkit`` picks the release's rules.
    """
    from dataclasses import replace

    from sel4vmm.cli.configuration import target_arch
    from sel4vmm.config.microkit.sdk_boards import SDK_BOARDS, target_for_board
    from sel4vmm.config.microkit.target import MicrokitTarget
    from sel4vmm.config.microkit.versions import DEFAULT_VERSION, parse_version

    version = parse_version(microkit) if microkit is not None else DEFAULT_VERSION
    base = MicrokitTarget(search_paths=tuple(search_paths), microkit=version)
    sdk_name = _sdk_board_name(board, SDK_BOARDS) if board is not None else None
    if sdk_name is not None:
        target = target_for_board(sdk_name, cores=cores, base=base)
        if arch is not None and arch != target.arch:
            raise Sel4VmmError(
                f"--arch {arch} contradicts --board {target.board}, an {target.arch} board",
                fix="drop --arch: the board decides the architecture",
            )
    else:
        target = replace(base, arch=target_arch(path, arch, board), num_cores=cores or 1)
    return replace(
        target,
        hypervisor=target.hypervisor and not no_hypervisor,
        iommu=target.iommu and not no_iommu,
        arm_smc=False if no_smc and target.arm_smc is not None else target.arm_smc,
    )


def _sdk_board_name(board: str, sdk_boards: Container[str]) -> str | None:
    """The SDK board ``board`` names -- directly, or through the board table's aliases
    (``qemu-arm-virt``); None for a board the SDK has no build of (tx2, exynos5422...)."""
    from sel4vmm.boards import canonical_board_name
    from sel4vmm.config.microkit.sdk_boards import sdk_board

    direct = board.strip().lower().replace("-", "_")
    if direct in sdk_boards:
        return direct
    canonical = canonical_board_name(board)
    if canonical is not None:
        return canonical if canonical in sdk_boards else None
    return sdk_board(board).name  # not a board anywhere: the SDK's list, with near names


def check_document(verdicts: Sequence[FileVerdict]) -> dict[str, Any]:
    """The ``--json`` document for ``verdicts``."""
    return {
        "schema": SCHEMA,
        "version": VERSION,
        "ok": all(v.ok for v in verdicts),
        "files": [
            {
                "path": str(v.path),
                "kind": v.kind,
                "ok": v.ok,
                "findings": [_finding_json(f, str(v.path)) for f in v.findings],
            }
            for v in verdicts
        ],
    }


def check(
    files: Annotated[
        list[Path],
        typer.Argument(metavar="FILE...", help="Microkit .system or CAmkES .camkes files."),
    ],
    board: BoardOption = None,
    arch: ArchOption = None,
    no_hypervisor: Annotated[
        bool, typer.Option("--no-hypervisor", help="seL4 built without hypervisor support.")
    ] = False,
    cores: Annotated[
        int | None,
        typer.Option(
            "--cores",
            metavar="N",
            min=1,
            help="CPU cores seL4 is built for (default 1, or a Microkit SDK board's).",
        ),
    ] = None,
    no_iommu: Annotated[
        bool, typer.Option("--no-iommu", help="seL4 built without IOMMU support.")
    ] = False,
    no_smc: Annotated[
        bool,
        typer.Option("--no-smc", help="seL4 built without SMC forwarding (KernelAllowSMCCalls)."),
    ] = False,
    microkit: MicrokitOption = None,
    search_path: Annotated[
        list[Path] | None,
        typer.Option(
            "--search-path", metavar="DIR", help="Directory to find prefill_path files in."
        ),
    ] = None,
    include: IncludeOption = None,
    define: DefineOption = None,
    tool_messages: Annotated[
        bool,
        typer.Option(
            "--tool-messages", help="Print Microkit findings exactly as the microkit tool does."
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Check configuration files; exit 1 if any has an error."""
    from sel4vmm.config.load import config_kind
    from sel4vmm.config.microkit.target import MicrokitTarget

    defines = parse_defines(define or ())
    verdicts = []
    for path in files:
        # --board/--microkit and the kernel flags describe a Microkit kernel: resolved (and
        # an error when wrong) only for the files checked as Microkit descriptions.
        if config_kind(path) == "camkes":
            target = MicrokitTarget()
        else:
            target = microkit_target(
                path,
                board=board,
                microkit=microkit,
                arch=arch,
                no_hypervisor=no_hypervisor,
                cores=cores,
                no_iommu=no_iommu,
                no_smc=no_smc,
                search_paths=search_path or (),
            )
        verdict = check_one(
            path,
            target,
            tool_messages=tool_messages and not as_json,
            include_dirs=include or (),
            defines=defines,
            board=board,
        )
        verdicts.append(verdict)
        if not as_json:
            lines = _lines(verdict)
            for line in lines:
                typer.echo(line)
            if verdict.ok and not lines:
                typer.echo(f"{path}: ok")
    if as_json:
        typer.echo(json.dumps(check_document(verdicts), indent=2))
    if not all(v.ok for v in verdicts):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``check`` to the ``sel4vmm`` command line."""
    app.command("check")(check)

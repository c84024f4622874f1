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
from collections.abc import Sequence
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

            result = check_file(path, target)
            verdict.findings = [d.to_finding() for d in result.diagnostics]
            if tool_messages:
                verdict.tool_lines = [d.tool_text for d in result.diagnostics]
    except Sel4VmmError as error:
        verdict.findings = [
            Finding("error", error.message, error.location or Location(str(path)), error.fix)
        ]
        verdict.tool_lines = None
    return verdict


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
        int, typer.Option("--cores", metavar="N", min=1, help="CPU cores seL4 is built for.")
    ] = 1,
    no_iommu: Annotated[
        bool, typer.Option("--no-iommu", help="seL4 built without IOMMU support.")
    ] = False,
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
    from sel4vmm.cli.configuration import target_arch
    from sel4vmm.config.microkit.target import MicrokitTarget

    defines = parse_defines(define or ())
    verdicts = []
    for path in files:
        target = MicrokitTarget(
            arch=target_arch(path, arch, board),
            hypervisor=not no_hypervisor,
            num_cores=cores,
            iommu=not no_iommu,
            search_paths=tuple(search_path or ()),
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

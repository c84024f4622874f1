"""Check a Microkit system description: the one entry point readers and the CLI use.

:func:`check_text` runs the whole pipeline -- XML, per-element rules, system-wide rules --
and never raises for a bad *description*: the verdict comes back as a :class:`CheckResult`
holding at most one error (the tool stops at the first, and later rules assume earlier
ones held) plus any warnings.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from sel4vmm.config.microkit.diagnostics import Diagnostic, MicrokitError, SourceFile
from sel4vmm.config.microkit.model import SystemDescription
from sel4vmm.config.microkit.parse import parse_system
from sel4vmm.config.microkit.system_checks import check_system
from sel4vmm.config.microkit.target import MicrokitTarget
from sel4vmm.config.microkit.xmlsource import parse_xml
from sel4vmm.config.spec import Finding
from sel4vmm.errors import Location, Sel4VmmError


@dataclass
class CheckResult:
    """The verdict on one file: the checked system (when valid) and the diagnostics."""

    path: str
    diagnostics: list[Diagnostic] = field(default_factory=list)
    system: SystemDescription | None = None

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "warning"]

    @property
    def findings(self) -> list[Finding]:
        return [d.to_finding() for d in self.diagnostics]


def check_text(text: str, name: str, target: MicrokitTarget | None = None) -> CheckResult:
    """Check ``text`` as if it were the file ``name``."""
    target = target or MicrokitTarget()
    source = SourceFile(name=name, text=text)
    try:
        root = parse_xml(source)
        parsed = parse_system(root, target)
        system, warnings = check_system(parsed, target, name)
    except MicrokitError as error:
        return CheckResult(name, [error.diagnostic])
    return CheckResult(name, warnings, system)


def default_search_paths(path: Path) -> tuple[Path, ...]:
    """Prefill files are looked up next to the description, then in the working directory."""
    return (path.resolve().parent, Path.cwd())


def check_file(path: str | Path, target: MicrokitTarget | None = None) -> CheckResult:
    """Read and check ``path``; unreadable files are a :class:`Sel4VmmError`."""
    file_path = Path(path)
    target = target or MicrokitTarget()
    if not target.search_paths:
        target = replace(target, search_paths=default_search_paths(file_path))
    try:
        text = file_path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise Sel4VmmError(
            f"'{file_path}' is not UTF-8 text ({error.reason})",
            location=Location(str(file_path)),
            fix="save the system description as UTF-8",
        ) from None
    except OSError as error:
        raise Sel4VmmError(
            f"cannot read '{file_path}': {error.strerror}",
            location=Location(str(file_path)),
            fix="check the path",
        ) from None
    return check_text(text, str(path), target)

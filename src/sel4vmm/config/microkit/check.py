"""Check a Microkit system description: the one entry point readers and the CLI use.

:func:`check_text` runs the whole pipeline -- XML, per-element rules, system-wide rules --
and never raises for a bad *description*: the verdict comes back as a :class:`CheckResult`
holding at most one error (the tool stops at the first, and later rules assume earlier
ones held) plus any warnings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from sel4vmm.collector import cyclic_gc_paused
from sel4vmm.config.microkit.diagnostics import Diagnostic, MicrokitError, SourceFile
from sel4vmm.config.microkit.model import SystemDescription
from sel4vmm.config.microkit.parse import parse_system
from sel4vmm.config.microkit.preprocess import LineMap, has_directives, preprocess_system
from sel4vmm.config.microkit.system_checks import check_system
from sel4vmm.config.microkit.target import MicrokitTarget
from sel4vmm.config.microkit.xmlsource import parse_xml
from sel4vmm.config.spec import Finding
from sel4vmm.errors import Location, Sel4VmmError, read_user_file


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


def check_text(
    text: str,
    name: str,
    target: MicrokitTarget | None = None,
    *,
    line_map: LineMap | None = None,
) -> CheckResult:
    """Check ``text`` as if it were the file ``name`` (``line_map``: for preprocessed text,
    where its lines came from)."""
    target = target or MicrokitTarget()
    source = SourceFile(name=name, text=text, line_map=line_map)
    # The checker builds one large acyclic tree: 10^5 elements took three times as long
    # with the cyclic collector running as without.
    with cyclic_gc_paused():
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


#: The largest ``.system`` file read.  Real descriptions are kilobytes; 10^5 elements are
#: about 10 MiB.  The limit keeps a hostile "file" (``/dev/zero``, a huge generated one)
#: from exhausting memory before the first check runs.
MAX_SYSTEM_FILE_BYTES = 64 * 1024 * 1024


def read_system_file(path: Path, max_bytes: int = MAX_SYSTEM_FILE_BYTES) -> str:
    """The text of a ``.system`` file: a regular file (never a device, FIFO or directory,
    also behind a symlink), at most ``max_bytes``, UTF-8 -- through the project's one
    bounded reader, :func:`sel4vmm.errors.read_user_file`."""
    data = read_user_file(
        path,
        f"'{path}'",
        "give the path of a .system file (a regular file of XML)",
        max_bytes=max_bytes,
    )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise Sel4VmmError(
            f"'{path}' is not UTF-8 text ({error.reason})",
            location=Location(str(path)),
            fix="save the system description as UTF-8",
        ) from None


def check_file(
    path: str | Path,
    target: MicrokitTarget | None = None,
    *,
    include_dirs: Sequence[Path] = (),
    defines: Mapping[str, str] | None = None,
) -> CheckResult:
    """Read and check ``path``; unreadable files are a :class:`Sel4VmmError`.

    A file with C preprocessor directives (LionsOS) is preprocessed first with
    ``include_dirs`` and ``defines`` (``-I``/``-D``), as its Makefile does; findings keep
    the original file's lines.  Preprocessor errors are :class:`Sel4VmmError`.
    """
    file_path = Path(path)
    target = target or MicrokitTarget()
    if not target.search_paths:
        target = replace(target, search_paths=default_search_paths(file_path))
    text = read_system_file(file_path)
    if has_directives(text):
        expanded, line_map = preprocess_system(
            file_path, text, include_dirs=include_dirs, defines=defines or {}
        )
        return check_text(expanded, str(path), target, line_map=line_map)
    return check_text(text, str(path), target)

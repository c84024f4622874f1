"""Run the C preprocessor over a CAmkES file, as the CAmkES build does.

CAmkES VM configurations are written for ``cpp``: ``#define VM_RAM_BASE 0x40000000``,
``#include <configurations/vm.h>``, ``VAR_STRINGIZE(VM_RAM_BASE)`` and macros such as
``VM_COMPOSITION_DEF(0)`` that expand into CAmkES statements.  Reproducing that with
regular expressions would misread real files, so this module uses pcpp, a complete C99
preprocessor in Python, with the headers camkes-vm provides shipped in
``sel4vmm/config/camkes/include``.

pcpp writes ``#line`` directives into its output whenever the source file or line jumps;
:mod:`sel4vmm.config.camkes.lexer` follows them, so locations survive preprocessing.  All
preprocessor complaints (a missing include, ``#error``, a malformed directive) become one
:class:`~sel4vmm.errors.Sel4VmmError` at the directive's place instead of pcpp's default of
printing to stderr and carrying on.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from pcpp import Preprocessor  # type: ignore[import-untyped, unused-ignore]
from pcpp.preprocessor import Action, OutputDirective  # type: ignore[import-untyped, unused-ignore]

from sel4vmm.errors import Location, Sel4VmmError

#: The largest file ``#include`` reads (real headers are kilobytes).
MAX_INCLUDE_BYTES = 16 * 1024 * 1024

#: The headers and CAmkES files sel4vmm provides in place of the camkes-vm tree.
BUNDLED_INCLUDE_DIR = Path(__file__).resolve().parent / "include"


class _StrictPreprocessor(Preprocessor):  # type: ignore[misc]
    """pcpp with every complaint turned into a located :class:`Sel4VmmError`."""

    def __init__(self, include_dirs: Sequence[Path]) -> None:
        super().__init__()
        self.line_directive = "#line"
        self.include_dirs = list(include_dirs)
        # Appended directly: pcpp's add_path() would also rewrite the file names in its
        # #line output relative to the working directory, which locations must not do.
        self.path.extend(str(directory) for directory in include_dirs)

    def on_file_open(self, is_system_include: bool, includepath: str) -> Any:
        """Open an included file -- only a regular file of at most ``MAX_INCLUDE_BYTES``.

        pcpp probes each include directory through this hook and expects ``OSError`` for
        "not here" (a directory counts as not here); a device or FIFO (``/dev/zero``) or a
        huge file is refused at the directive instead of being read without bound.
        """
        status = os.stat(includepath)  # OSError: not here, pcpp tries the next directory
        if stat.S_ISDIR(status.st_mode):
            raise IsADirectoryError(includepath)
        if not stat.S_ISREG(status.st_mode) or status.st_size > MAX_INCLUDE_BYTES:
            what = "not a regular file" if not stat.S_ISREG(status.st_mode) else "too large"
            raise Sel4VmmError(
                f"the included file {includepath!r} is {what}",
                location=self._directive_location(),
                fix=f"include a regular file of at most {MAX_INCLUDE_BYTES >> 20} MiB",
            )
        return super().on_file_open(is_system_include, includepath)

    def _directive_location(self) -> Location:
        directive = self.lastdirective
        if directive is None:
            return Location("<preprocessor>")
        return Location(str(directive.source), int(directive.lineno), 0)

    def on_error(self, file: str, line: int, msg: str) -> NoReturn:
        raise Sel4VmmError(f"preprocessor: {msg}", location=Location(str(file), int(line)))

    def on_include_not_found(
        self, is_malformed: bool, is_system_include: bool, curdir: str, includepath: str
    ) -> NoReturn:
        location = self._directive_location()
        if is_malformed:
            raise Sel4VmmError(
                f"malformed #include {includepath}",
                location=location,
                fix='write #include <file.h> or #include "file.h"',
            )
        searched = ", ".join(str(d) for d in self.include_dirs) or "(none)"
        raise Sel4VmmError(
            f"cannot find the included file {includepath!r} (searched {searched})",
            location=location,
            fix="pass the directory that holds it with --include (-I), or the platform "
            "with --define PLAT=<board> so its plat_include directory is searched",
        )

    def on_directive_unknown(
        self, directive: Any, toks: Any, ifpassthru: bool, precedingtoks: Any
    ) -> bool | None:
        text = "".join(str(tok.value) for tok in toks).strip()
        if directive.value == "error":
            raise Sel4VmmError(
                f"#error {text}",
                location=Location(str(directive.source), int(directive.lineno)),
                fix="define what the configuration requires with --define NAME=VALUE",
            )
        if directive.value == "warning":
            return True
        # #pragma and friends: pass through; the lexer ignores directive lines.
        raise OutputDirective(Action.IgnoreAndPassThrough)


def display_path(path: Path) -> str:
    """How locations name a file: bundled files as ``<sel4vmm>/VM_Arm/VM.camkes``."""
    try:
        inside = path.resolve().relative_to(BUNDLED_INCLUDE_DIR)
    except ValueError:
        return str(path)
    return f"<sel4vmm>/{inside.as_posix()}"


def preprocess(
    path: Path,
    text: str,
    *,
    include_dirs: Sequence[Path],
    defines: Mapping[str, str],
) -> str:
    """Preprocess ``text`` (the contents of ``path``) and return the output with ``#line``s.

    ``include_dirs`` are searched in order for ``#include <...>``; ``"..."`` includes are
    looked up next to the including file first, as cpp does.  ``defines`` are ``-D``
    definitions (``{"FEATURE_VUSB": "1"}``).
    """
    processor = _StrictPreprocessor(include_dirs)
    for name, value in defines.items():
        if not name.isidentifier():
            raise Sel4VmmError(
                f"--define {name!r} is not a macro name",
                fix="use --define NAME=VALUE with NAME a C identifier",
            )
        processor.define(f"{name} {value}")
    # pcpp reports the first line of a file without a #line; the lexer starts at ``path``.
    processor.parse(text, display_path(path))
    output = io.StringIO()
    processor.write(output)
    return output.getvalue()

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

Hostile input is bounded (issue 10): every file is read through :func:`read_source`
(regular files only, at most :data:`MAX_SOURCE_BYTES`), ``#include`` nests at most
:data:`MAX_INCLUDE_DEPTH` deep (a file including itself is a loop, not a
``RecursionError``), macro expansion has a token budget (:data:`MAX_EXPANDED_TOKENS`)
and the output a size limit, so a macro bomb ends with one located error in well under
a second instead of running for minutes, and whatever pcpp itself trips over becomes a
located error too.
"""

from __future__ import annotations

import io
import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from pcpp import Preprocessor  # type: ignore[import-untyped, unused-ignore]
from pcpp.preprocessor import Action, OutputDirective  # type: ignore[import-untyped, unused-ignore]

from sel4vmm.errors import Location, Sel4VmmError, read_user_file

#: The headers and CAmkES files sel4vmm provides in place of the camkes-vm tree.
BUNDLED_INCLUDE_DIR = Path(__file__).resolve().parent / "include"

#: The largest CAmkES or header file read (real ones are a few KiB; camkes-vm's largest
#: header is under 20 KiB).
MAX_SOURCE_BYTES = 4 << 20
#: ``#include`` nesting allowed.  GCC stops at 200; pcpp's generators cost Python stack
#: frames per level, so sel4vmm stops earlier, far above what real configurations use (3).
MAX_INCLUDE_DEPTH = 64
#: Tokens macro expansion may produce for one file (all nested expansions counted): the
#: real configurations in ../shared/realworld stay under 5,000 (measured: 4,549 at most);
#: a macro bomb doubles past the budget in a few levels.
MAX_EXPANDED_TOKENS = 200_000
#: Characters of preprocessed output, and a wall-clock backstop for the whole run.
MAX_OUTPUT_CHARS = 16 << 20
MAX_PREPROCESS_SECONDS = 30.0
#: A directive that needs a macro name but has none (``#define`` alone): pcpp indexes
#: past its argument list on these.
_NAMELESS_DIRECTIVE = re.compile(r"^[ \t]*#[ \t]*(define|undef|ifdef|ifndef)[ \t]*(?://.*|/\*.*)?$")


def read_source(path: Path, location: Location | None = None) -> str:
    """The text of a configuration or header file, refusing what is not a bounded file.

    A device (``/dev/zero``), a FIFO or a directory is never read, and a regular file over
    :data:`MAX_SOURCE_BYTES` is refused before it is read; the text must be UTF-8.
    """
    where = location or Location(str(path))
    data = read_user_file(
        path,
        str(path),
        "give a CAmkES or header file (real configurations are KiB)",
        max_bytes=MAX_SOURCE_BYTES,
        location=where,
    )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise Sel4VmmError(
            f"{path} is not UTF-8 text (byte {error.start})",
            location=where,
            fix="save the file as UTF-8",
        ) from None
    return text[1:] if text.startswith("\ufeff") else text


def _check_directives(path: str, text: str) -> None:
    """Directives pcpp would crash on, as the located errors cpp gives for them."""
    if "#" not in text:
        return
    for number, line in enumerate(text.splitlines(), 1):
        nameless = _NAMELESS_DIRECTIVE.match(line)
        if nameless:
            raise Sel4VmmError(
                f"no macro name given in #{nameless.group(1)} directive",
                location=Location(path, number, 1),
                fix=f"write #{nameless.group(1)} NAME",
            )


class _StrictPreprocessor(Preprocessor):  # type: ignore[misc]
    """pcpp with every complaint turned into a located :class:`Sel4VmmError`."""

    def __init__(self, include_dirs: Sequence[Path]) -> None:
        super().__init__()
        self.include_depth = 0
        self.expanded_tokens = 0
        self.deadline = time.monotonic() + MAX_PREPROCESS_SECONDS
        self.expansion_site = Location("<preprocessor>")
        self.line_directive = "#line"
        self.include_dirs = list(include_dirs)
        # Appended directly: pcpp's add_path() would also rewrite the file names in its
        # #line output relative to the working directory, which locations must not do.
        self.path.extend(str(directory) for directory in include_dirs)

    def _directive_location(self) -> Location:
        directive = self.lastdirective
        if directive is None:
            return Location("<preprocessor>")
        return Location(str(directive.source), int(directive.lineno), 0)

    def on_file_open(self, is_system_include: bool, includepath: str) -> io.StringIO:
        """Every included file goes through :func:`read_source`'s bounds.

        A path that does not exist raises ``OSError`` so that pcpp tries the next
        include directory, as it does by default.
        """
        if "\0" not in includepath and not os.path.lexists(includepath):
            raise FileNotFoundError(includepath)
        text = read_source(Path(includepath), self._directive_location())
        _check_directives(includepath, text)
        return io.StringIO(text)

    def include(self, tokens: Any, original_line: Any) -> Iterator[Any]:
        """pcpp's ``#include``, refusing to nest deeper than :data:`MAX_INCLUDE_DEPTH`."""
        if self.include_depth >= MAX_INCLUDE_DEPTH:
            shown = "".join(str(t.value) for t in tokens).strip()
            raise Sel4VmmError(
                f"#include {shown} nests {MAX_INCLUDE_DEPTH} files deep: the files include "
                "each other in a loop",
                location=self._directive_location(),
                fix="break the loop (an include guard: #ifndef NAME / #define NAME / #endif)",
            )
        self.include_depth += 1
        try:
            yield from super().include(tokens, original_line)
        finally:
            self.include_depth -= 1

    def expand_macros(self, tokens: Any, expanding_from: Any = ()) -> Any:
        """pcpp's macro expansion with a token budget (macro bombs) and a deadline."""
        if not expanding_from:
            # The outermost expansion: its tokens are where the user invoked the macros
            # (nested ones carry the places of the macro definitions).
            self.expansion_site = self._token_location(tokens)
        result = super().expand_macros(tokens, list(expanding_from))
        self.expanded_tokens += len(result)
        if self.expanded_tokens > MAX_EXPANDED_TOKENS:
            raise Sel4VmmError(
                f"macro expansion produced more than {MAX_EXPANDED_TOKENS:,} tokens: the "
                "macros expand exponentially (a macro bomb)",
                location=self.expansion_site,
                fix="check the macros used here; a real configuration expands to far less",
            )
        if time.monotonic() > self.deadline:
            raise Sel4VmmError(
                f"preprocessing took more than {MAX_PREPROCESS_SECONDS:.0f} s",
                location=self.expansion_site,
                fix="check the macros used here",
            )
        return result

    def _token_location(self, tokens: Any) -> Location:
        for token in tokens:
            source = getattr(token, "source", None)
            if source:
                return Location(str(source), int(getattr(token, "lineno", 0) or 0), 0)
        return self._directive_location()

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
    _check_directives(display_path(path), text)
    # pcpp reports the first line of a file without a #line; the lexer starts at ``path``.
    processor.parse(text, display_path(path))
    output = _BoundedOutput(processor)
    try:
        processor.write(output)
    except Sel4VmmError:
        raise
    except RecursionError:
        raise Sel4VmmError(
            "the C preprocessor ran out of room on this file (nesting too deep)",
            location=processor._directive_location(),
            fix="simplify the macros or includes used here",
        ) from None
    except Exception as error:  # pcpp's own failures on malformed input (IndexError...)
        raise Sel4VmmError(
            f"the C preprocessor (pcpp) cannot handle this directive: "
            f"{type(error).__name__}: {error}",
            location=processor._directive_location(),
            fix="check the directive's syntax (cpp would reject it too)",
        ) from None
    return output.getvalue()


class _BoundedOutput(io.StringIO):
    """pcpp's output stream, refusing to grow past :data:`MAX_OUTPUT_CHARS`."""

    def __init__(self, processor: _StrictPreprocessor) -> None:
        super().__init__()
        self.processor = processor
        self.written = 0

    def write(self, text: str) -> int:
        self.written += len(text)
        if self.written > MAX_OUTPUT_CHARS:
            raise Sel4VmmError(
                f"preprocessed output passed {MAX_OUTPUT_CHARS >> 20} MiB",
                location=self.processor._directive_location(),
                fix="check the macros and includes used here",
            )
        return super().write(text)

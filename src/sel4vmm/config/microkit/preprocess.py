"""C-preprocessed ``.system`` files (LionsOS): run the preprocessor, keep the locations.

LionsOS Makefiles pass their system descriptions through ``cpp`` (``#include`` of a board
header, ``#define``\\ d addresses, ``#ifdef`` per board) before ``microkit`` reads them.
``sel4vmm check -D NAME=VALUE -I DIR file.system`` does the same with the project's one
preprocessor (:func:`sel4vmm.config.camkes.preprocess.preprocess`, pcpp), but only when the
file has a directive: a plain description is never touched, so an XML comment holding
``//`` is not mistaken for a C comment.

The preprocessor's output carries ``#line N "file"`` markers; they are removed here and
turned into a line map, so every finding names the line in the original file (or header)
it came from.  Columns are those of the expanded line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sel4vmm.errors import Sel4VmmError

#: A preprocessor directive: ``#`` first on its line (XML never puts one there).
_DIRECTIVE = re.compile(
    r"^[ \t]*#[ \t]*(include|define|undef|if|ifdef|ifndef|elif|else|endif|error|pragma|line)\b",
    re.MULTILINE,
)
_LINE_MARKER = re.compile(r'^#line (\d+) "((?:[^"\\]|\\.)*)"\s*$')


@dataclass(frozen=True)
class LineMap:
    """Where each line of the preprocessed text came from: ``origins[n - 1]`` is
    ``(file, line)`` for output line ``n``."""

    origins: tuple[tuple[str, int], ...]

    def origin(self, line: int) -> tuple[str, int] | None:
        if 1 <= line <= len(self.origins):
            return self.origins[line - 1]
        return None


def has_directives(text: str) -> bool:
    return _DIRECTIVE.search(text) is not None


def preprocess_system(
    path: Path,
    text: str,
    *,
    include_dirs: Sequence[Path],
    defines: Mapping[str, str],
) -> tuple[str, LineMap]:
    """The preprocessed description (markers removed) and where each of its lines began."""
    # Imported here: pcpp is only loaded for files that need it (``check`` of a plain
    # description stays light).
    from sel4vmm.config.camkes.preprocess import preprocess

    try:
        output = preprocess(path, text, include_dirs=include_dirs, defines=defines)
    except Sel4VmmError as error:
        if not error.message.startswith("cannot find the included file"):
            raise
        # The shared preprocessor's fix speaks CAmkES (PLAT=...); say it the Makefile's way.
        raise Sel4VmmError(
            error.message,
            location=error.location,
            fix="pass the directory that holds it with -I DIR, as the system's Makefile "
            "passes it to cpp",
        ) from None
    lines: list[str] = []
    origins: list[tuple[str, int]] = []
    current_file, current_line = str(path), 1
    for raw in output.splitlines():
        marker = _LINE_MARKER.match(raw)
        if marker is not None:
            current_line = int(marker.group(1))
            current_file = marker.group(2).replace('\\"', '"').replace("\\\\", "\\")
            continue
        lines.append(raw)
        origins.append((current_file, current_line))
        current_line += 1
    return "\n".join(lines) + "\n", LineMap(tuple(origins))

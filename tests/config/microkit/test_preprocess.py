"""C-preprocessed ``.system`` files: directives detected, locations mapped back, and
``#include`` bounded (a device, FIFO or huge file is refused at the directive)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sel4vmm.config.microkit import check_file
from sel4vmm.config.microkit.preprocess import has_directives, preprocess_system
from sel4vmm.errors import Sel4VmmError
from tests.images.limits import bounded

PD = '<protection_domain name="p"><program_image path="p.elf"/></protection_domain>'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<system/>", False),
        ("<system>\n  <!-- # not a directive -->\n</system>", False),
        ('<system attr="#include x"/>', False),
        ('#include "a.h"\n<system/>', True),
        ("<system>\n  #ifdef X\n  #endif\n</system>", True),
        ("<system>\n# define X 1\n</system>", True),
    ],
)
def test_only_files_with_directives_are_preprocessed(text: str, expected: bool) -> None:
    assert has_directives(text) is expected


def test_lines_map_back_to_the_file_and_the_header(tmp_path: Path) -> None:
    (tmp_path / "regions.xml").write_text('<memory_region name="m" size="0x1000"/>\n')
    system = tmp_path / "s.system"
    system.write_text(f'<system>\n#include "regions.xml"\n{PD}\n</system>\n')
    text, line_map = preprocess_system(system, system.read_text(), include_dirs=(), defines={})
    lines = text.splitlines()
    region_line = next(i for i, line in enumerate(lines, 1) if "memory_region" in line)
    pd_line = next(i for i, line in enumerate(lines, 1) if "protection_domain" in line)
    assert line_map.origin(region_line) == (str(tmp_path / "regions.xml"), 1)
    assert line_map.origin(pd_line) == (str(system), 3)


@pytest.mark.parametrize("kind", ["device", "fifo"])
def test_an_include_of_a_device_or_fifo_is_refused(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "zero.h"
    if kind == "device":
        target.symlink_to("/dev/zero")
    else:
        os.mkfifo(target)
    system = tmp_path / "s.system"
    system.write_text(f'<system>\n#include "zero.h"\n{PD}\n</system>\n')
    with bounded(seconds=20), pytest.raises(Sel4VmmError) as raised:
        check_file(system)
    # The shared bounded read words it (errors.read_user_file, via preprocess.read_source).
    kind_text = "a character device" if kind == "device" else "a FIFO (named pipe)"
    assert raised.value.message == f"{target} is {kind_text}, not a regular file"
    assert raised.value.location is not None and raised.value.location.line == 2

"""Hostile system descriptions (issue 10 item 7): located errors, bounded time and memory.

Each crasher found from outside is a regression test here: a decimal of thousands of
digits (was Python's int-conversion ``ValueError``), 10^5 regions / PDs / maps / channels
on one line (was quadratic: over 60 s each), and ``.system`` paths that are a symlink to
``/dev/zero`` or a FIFO (was 6 GiB of memory, and a hang).  Every check runs under the
project's resource limits (``tests/images/limits.py``): large systems through the command
line in a child with an address-space limit and a timeout (``run_sel4vmm``), the rest
in-process under ``bounded`` (an alarm and tracemalloc's peak), so a regression fails
instead of stalling the suite.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sel4vmm.config.microkit import MicrokitTarget, check_file, check_text
from sel4vmm.config.microkit.check import read_system_file
from sel4vmm.errors import Sel4VmmError
from tests.images.limits import bounded, run_sel4vmm

#: The Microkit tool caps PDs at 63; scale inputs lift the cap to measure the checker.
SCALE = MicrokitTarget(max_pds=1 << 20)
N = 100_000
PD = '<protection_domain name="p"><program_image path="a.elf"/></protection_domain>'


def checked(text: str, target: MicrokitTarget = SCALE, *, max_bytes: int = 256 << 20) -> list[str]:
    with bounded(seconds=120, max_bytes=max_bytes):
        result = check_text(text, "big.system", target)
    return [d.tool_text for d in result.errors]


def checked_by_the_cli(text: str, tmp_path: Path) -> tuple[int, str]:
    """``sel4vmm check --tool-messages`` in a child: 120 s, 4 GiB of address space."""
    path = tmp_path / "big.system"
    path.write_text(text)
    done = run_sel4vmm(["check", "--tool-messages", path.name], cwd=tmp_path)
    return done.returncode, done.stdout


@pytest.mark.parametrize("digits", [4301, 100_000])
def test_a_number_of_thousands_of_digits_is_an_integer_error(digits: int) -> None:
    text = f'<system><memory_region name="m" size="{"9" * digits}" />{PD}</system>'
    (error,) = checked(text)
    assert error.startswith("Error: failed to parse integer '999")
    assert error.endswith("' on element 'memory_region': number too large to fit in target type")


def test_leading_zeros_do_not_make_a_number_large() -> None:
    text = f'<system><memory_region name="m" size="{"0" * 5000}4096" />{PD}</system>'
    assert checked(text) == []


def test_a_decimal_only_field_of_thousands_of_digits_is_the_tools_panic() -> None:
    pd = PD.replace(
        "</protection_domain>", f'<irq irq="33" id="{"1" * 5000}"/></protection_domain>'
    )
    (error,) = checked(f"<system>{pd}</system>")
    assert error == (
        "thread 'main' panicked: called `Result::unwrap()` on an `Err` value: "
        "ParseIntError { kind: PosOverflow }"
    )


def test_many_regions_on_one_line(tmp_path: Path) -> None:
    regions = "".join(
        f'<memory_region name="r{i}" size="0x1000" phys_addr="{i * 0x1000:#x}"/>' for i in range(N)
    )
    code, output = checked_by_the_cli(f"<system>{regions}{PD}</system>", tmp_path)
    assert code == 0
    lines = output.splitlines()  # accepted; each region unused (our warning, not the tool's)
    assert len(lines) == N and all(
        line.startswith("WARNING: unused memory region 'r") for line in lines
    )


def test_many_protection_domains_on_one_line(tmp_path: Path) -> None:
    pds = "".join(
        f'<protection_domain name="p{i}"><program_image path="a.elf"/></protection_domain>'
        for i in range(N)
    )
    # Every PD is read and flattened before the tool's PD cap is checked.
    code, output = checked_by_the_cli(f"<system>{pds}</system>", tmp_path)
    assert (code, output) == (
        1,
        "Error: too many protection domains (100000) defined. Maximum is 63.\n",
    )


def test_many_maps_on_one_line_with_the_overlap_last(tmp_path: Path) -> None:
    regions = "".join(f'<memory_region name="r{i}" size="0x1000"/>' for i in range(N))
    maps = "".join(f'<map mr="r{i}" vaddr="{i * 0x1000:#x}"/>' for i in range(N))
    maps += '<map mr="r7" vaddr="0x3000"/>'
    pd = f'<protection_domain name="p"><program_image path="a.elf"/>{maps}</protection_domain>'
    code, output = checked_by_the_cli(f"<system>{regions}{pd}</system>", tmp_path)
    assert code == 1
    assert output.startswith(
        "Error: map for 'r7' has virtual address range [0x3000..0x4000) which overlaps with "
        "map for 'r3' [0x3000..0x4000) in protection domain 'p' @ big.system:1:"
    )


def test_many_channels_on_one_line() -> None:
    pairs = N // 60 + 1
    pds = "".join(
        f'<protection_domain name="p{i}"><program_image path="a.elf"/></protection_domain>'
        for i in range(2 * pairs)
    )
    channels = "".join(
        f'<channel><end pd="p{2 * (i // 60)}" id="{i % 60}"/>'
        f'<end pd="p{2 * (i // 60) + 1}" id="{i % 60}"/></channel>'
        for i in range(N)
    )
    # In-process (the tool's 63-PD cap would stop the command line before the channels'
    # ids are checked): ~1 GiB of traced allocations is the bound.
    assert checked(f"<system>{pds}{channels}</system>", max_bytes=1 << 30) == []


def test_many_io_ports_with_the_overlap_last() -> None:
    ports = "".join(f'<ioport id="{i % 60}" addr="{i * 8}" size="8"/>' for i in range(60))
    ports += '<ioport id="61" addr="4" size="8"/>'
    pd = PD.replace("</protection_domain>", ports + "</protection_domain>")
    (error,) = checked(f"<system>{pd}</system>", MicrokitTarget(arch="x86_64"))
    assert error.startswith("Error: I/O port id: 61, half-open range: [0x4, 0xc) in protection")
    assert "overlaps with I/O port id: 0, half-open range: [0x0, 0x8)" in error


def test_a_symlink_to_dev_zero_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "zero.system"
    link.symlink_to("/dev/zero")
    with bounded(seconds=10), pytest.raises(Sel4VmmError) as raised:
        check_file(link)
    # errors.read_user_file's words (the project's one bounded reader).
    assert raised.value.message == f"'{link}' is a character device, not a regular file"
    assert raised.value.location is not None and raised.value.location.path == str(link)


def test_a_fifo_is_refused_without_waiting(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.system"
    os.mkfifo(fifo)
    with bounded(seconds=10), pytest.raises(Sel4VmmError, match="not a regular file"):
        check_file(fifo)


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(Sel4VmmError, match="not a regular file"):
        read_system_file(tmp_path)


def test_an_oversized_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.system"
    path.write_bytes(b"<system>" + b" " * 2000 + b"</system>")
    with pytest.raises(Sel4VmmError, match="2017 bytes, more than the 1024 bytes"):
        read_system_file(path, max_bytes=1024)


@pytest.mark.parametrize(
    ("make", "fix_words"),
    [
        (lambda d: (d / "dir").mkdir(), "is a directory"),
        (lambda d: os.mkfifo(d / "dir"), "is a FIFO"),
        (lambda d: (d / "dir").symlink_to("/dev/zero"), "is a device"),
    ],
)
def test_a_prefill_that_is_not_a_regular_file_is_the_tools_read_failure(
    tmp_path: Path, make: object, fix_words: str
) -> None:
    assert callable(make)
    make(tmp_path)
    text = '<system><memory_region name="m" prefill_path="dir" />' + PD + "</system>"
    with bounded(seconds=10):
        result = check_text(text, "p.system", MicrokitTarget(search_paths=(tmp_path,)))
    (error,) = result.errors
    assert error.tool_text.startswith(
        "Error: failed to read file 'dir' at prefill_path on element 'memory_region': p.system:1:"
    )
    assert error.fix is not None and fix_words in error.fix


def test_an_empty_prefill_path_names_the_search_directory(tmp_path: Path) -> None:
    """get_full_path joins "" to the search path: the directory exists, reading it fails."""
    text = '<system><memory_region name="m" prefill_path="" />' + PD + "</system>"
    result = check_text(text, "p.system", MicrokitTarget(search_paths=(tmp_path,)))
    (error,) = result.errors
    assert error.tool_text.startswith("Error: failed to read file '' at prefill_path")


NUMBERS = st.one_of(
    st.text(alphabet="0123456789_xabcdefABCDEF+-", max_size=6000),
    st.integers(min_value=0, max_value=10**5).map(lambda n: "9" * n),
)


@settings(max_examples=60, deadline=None)
@given(NUMBERS, st.sampled_from(["size", "phys_addr", "page_size"]))
def test_any_number_text_gets_a_verdict_within_limits(number: str, attribute: str) -> None:
    text = f'<system><memory_region name="m" size="0x1000" {attribute}="{number}" />{PD}</system>'
    text = text.replace('size="0x1000" size=', "size=")
    with bounded(seconds=30):
        result = check_text(text, "n.system", MicrokitTarget())
    assert len(result.errors) <= 1


@settings(max_examples=25, deadline=None)
@given(
    st.integers(min_value=1, max_value=5_000),
    st.sampled_from(["memory_region", "protection_domain", "map", "channel"]),
    st.booleans(),
)
def test_generated_large_systems_stay_within_limits(count: int, kind: str, one_line: bool) -> None:
    sep = "" if one_line else "\n"
    if kind == "memory_region":
        body = sep.join(f'<memory_region name="r{i}" size="0x1000"/>' for i in range(count)) + PD
    elif kind == "protection_domain":
        body = sep.join(PD.replace('"p"', f'"p{i}"') for i in range(count))
    elif kind == "map":
        maps = sep.join(f'<map mr="r" vaddr="{i * 0x1000:#x}"/>' for i in range(count))
        body = '<memory_region name="r" size="0x1000"/>' + PD.replace(
            "</protection_domain>", maps + "</protection_domain>"
        )
    else:
        body = (
            PD
            + PD.replace('"p"', '"q"')
            + sep.join(
                f'<channel><end pd="p" id="{i % 62}"/><end pd="q" id="{i % 62}"/></channel>'
                for i in range(count)
            )
        )
    with bounded(seconds=60):
        result = check_text(f"<system>{sep}{body}{sep}</system>", "g.system", SCALE)
    assert len(result.errors) <= 1

"""newc cpio: reader, builder, and the system cpio agreeing with both."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from sel4vmm.errors import Sel4VmmError
from sel4vmm.images.compression import gunzip
from sel4vmm.images.cpio import (
    CONSOLE_MAJOR,
    CONSOLE_MINOR,
    InitramfsBuilder,
    read_newc,
    write_newc,
)
from sel4vmm.images.elf import interpreter

BUSYBOX = Path("/bin/busybox")


def _names(data: bytes) -> list[str]:
    return [e.name for e in read_newc(data)]


def test_builder_creates_console_parents_and_sorted_entries() -> None:
    builder = InitramfsBuilder()
    builder.add_file("/etc/init.d/rcS", b"#!/bin/sh\n", 0o755)
    builder.add_symlink("/bin/sh", "busybox")
    entries = {e.name: e for e in read_newc(builder.build())}
    console = entries["dev/console"]
    assert console.is_char_device
    assert (console.rdev_major, console.rdev_minor) == (CONSOLE_MAJOR, CONSOLE_MINOR)
    assert entries["etc"].is_dir and entries["etc/init.d"].is_dir
    assert entries["etc/init.d/rcS"].data == b"#!/bin/sh\n"
    assert stat.S_IMODE(entries["etc/init.d/rcS"].mode) == 0o755
    assert entries["bin/sh"].is_symlink and entries["bin/sh"].data == b"busybox"
    assert list(entries) == sorted(entries)


def test_build_is_reproducible() -> None:
    def build() -> bytes:
        builder = InitramfsBuilder()
        builder.add_file("/init", b"#!/bin/sh\necho hi\n", 0o755)
        return builder.build_gzip()

    assert build() == build()


def test_add_tree(tmp_path: Path) -> None:
    (tmp_path / "sbin").mkdir()
    (tmp_path / "sbin" / "init").write_text("#!/bin/sh\n")
    (tmp_path / "sbin" / "init").chmod(0o750)
    (tmp_path / "link").symlink_to("sbin/init")
    builder = InitramfsBuilder()
    builder.add_tree(tmp_path)
    entries = {e.name: e for e in read_newc(builder.build())}
    assert stat.S_IMODE(entries["sbin/init"].mode) == 0o750
    assert entries["link"].data == b"sbin/init"


def test_paths_may_not_escape_the_root() -> None:
    with pytest.raises(Sel4VmmError, match="invalid initramfs path"):
        InitramfsBuilder().add_file("/../etc/passwd", b"")


def test_file_used_as_directory_is_refused() -> None:
    builder = InitramfsBuilder()
    builder.add_file("/init", b"x")
    with pytest.raises(Sel4VmmError, match="not a directory"):
        builder.add_file("/init/child", b"y")


def test_concatenated_archives_like_packrootfs() -> None:
    first = write_newc(InitramfsBuilder().entries())
    second = InitramfsBuilder(with_console=False)
    second.add_file("/root/hello", b"hello")
    combined = first + bytes(512) + second.build()
    assert _names(combined) == ["dev", "dev/console", "root", "root/hello"]


def test_truncated_archive() -> None:
    builder = InitramfsBuilder()
    builder.add_file("/init", bytes(1000))
    data = builder.build()
    with pytest.raises(Sel4VmmError, match="truncated cpio"):
        read_newc(data[:600], "rootfs.cpio")
    with pytest.raises(Sel4VmmError, match="no TRAILER"):
        read_newc(data[: data.index(b"TRAILER!!!") - 110])


def test_old_cpio_formats_get_a_newc_hint() -> None:
    with pytest.raises(Sel4VmmError) as info:
        read_newc(b"070707" + bytes(200))
    assert info.value.fix is not None and "-H newc" in info.value.fix


def test_bad_hex_field() -> None:
    with pytest.raises(Sel4VmmError, match=r"c_ino is 'zzzzzzzz', not 8 hexadecimal digits"):
        read_newc(b"070701" + b"zz" * 52 + bytes(8))


@pytest.mark.skipif(shutil.which("cpio") is None, reason="the system cpio is not installed")
def test_system_cpio_lists_what_the_builder_wrote() -> None:
    builder = InitramfsBuilder()
    builder.add_file("/init", b"#!/bin/sh\n", 0o755)
    builder.add_symlink("/bin/sh", "busybox")
    listing = subprocess.run(
        ["cpio", "-t", "--quiet"], input=builder.build(), capture_output=True, check=True
    ).stdout.decode()
    assert listing.split() == ["bin", "bin/sh", "dev", "dev/console", "init"]


@pytest.mark.skipif(shutil.which("cpio") is None, reason="the system cpio is not installed")
def test_reader_agrees_with_system_cpio(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "file").write_bytes(b"contents\n")
    archive = subprocess.run(
        "find . | sort | cpio -o -H newc --quiet",
        shell=True,
        cwd=tmp_path,
        capture_output=True,
        check=True,
    ).stdout
    entries = {e.name: e for e in read_newc(archive)}
    assert entries["a/file"].data == b"contents\n"
    assert entries["a"].is_dir


@pytest.mark.skipif(not BUSYBOX.is_file(), reason="no busybox at /bin/busybox")
def test_busybox_initramfs() -> None:
    builder = InitramfsBuilder()
    builder.add_busybox(BUSYBOX)
    entries = {e.name: e for e in read_newc(gunzip(builder.build_gzip()))}
    assert entries["bin/busybox"].data == BUSYBOX.read_bytes()
    assert entries["bin/sh"].data == b"busybox"
    assert entries["init"].data.startswith(b"#!/bin/sh\n")
    assert stat.S_IMODE(entries["init"].mode) == 0o755
    assert entries["proc"].is_dir and entries["dev/console"].is_char_device


def test_busybox_must_be_an_elf(tmp_path: Path) -> None:
    fake = tmp_path / "busybox"
    fake.write_text("#!/bin/sh\n")
    with pytest.raises(Sel4VmmError, match="not an ELF"):
        InitramfsBuilder().add_busybox(fake)


def test_reader_stops_at_an_appended_compressed_archive() -> None:
    early = InitramfsBuilder(with_console=False)
    early.add_file("/kernel/x86/microcode/GenuineIntel.bin", b"ucode")
    main = InitramfsBuilder()
    main.add_file("/init", b"#!/bin/sh\n")
    names = _names(early.build() + main.build_gzip())
    assert names[-1] == "kernel/x86/microcode/GenuineIntel.bin"


def test_dynamic_busybox_is_refused(tmp_path: Path) -> None:
    dynamic = shutil.which("ls")
    if dynamic is None or interpreter(Path(dynamic).read_bytes()) is None:
        pytest.skip("no dynamically linked executable to try")
    with pytest.raises(Sel4VmmError, match="dynamically linked"):
        InitramfsBuilder().add_busybox(dynamic)


@pytest.mark.skipif(not BUSYBOX.is_file(), reason="no busybox at /bin/busybox")
def test_static_busybox_has_no_interpreter() -> None:
    assert interpreter(BUSYBOX.read_bytes()) is None

"""Hostile images through the image layer and ``sel4vmm images`` (issue 10 items 3, 4, 8 and
"every user file is read with a size limit ... never follows into a device or FIFO").

Each case is the reported input (or the same input at a size a test can afford, where the
rule does not depend on the size), run under the limits of :mod:`tests.images.limits`: a hang
or a blow-up fails the test instead of taking the machine.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

from sel4vmm.errors import Sel4VmmError, read_user_file
from sel4vmm.images import cpio
from sel4vmm.images.blob import ImageBlob
from sel4vmm.images.compression import GZIP_MAGIC, gunzip, gzip_bytes
from sel4vmm.images.detect import read_initrd, read_kernel
from sel4vmm.images.dtb import compile_dts
from sel4vmm.subprocesses import find_tool, run_tool
from tests.images.limits import SRC, bounded, run_sel4vmm
from tests.images.synthetic import arm64_image

MIB = 1 << 20
QEMU_VIRT = (
    Path(__file__).resolve().parents[2]
    / ".."
    / "shared"
    / "realworld"
    / "libvmm"
    / "simple"
    / "board"
    / "qemu_virt_aarch64"
)
needs_dtc = pytest.mark.skipif(shutil.which("dtc") is None, reason="dtc is not installed")
needs_realworld = pytest.mark.skipif(
    not QEMU_VIRT.exists(), reason="../shared/realworld is not beside the repository"
)


def said(result: subprocess.CompletedProcess[str]) -> str:
    return " ".join((result.stdout + result.stderr).split())


# -- cpio (item 3) -----------------------------------------------------------------------


def _cpio_with(field: str, value: bytes) -> bytes:
    archive = bytearray(cpio.write_newc([cpio.CpioEntry("init", 0o100755, b"#!/bin/sh\n")]))
    index = cpio.FIELD_NAMES.index(field)
    archive[6 + 8 * index : 14 + 8 * index] = value
    return bytes(archive)


@pytest.mark.parametrize(
    ("field", "value"),
    [("c_filesize", b"-0000070"), ("c_namesize", b"-000006E"), ("c_filesize", b"-0000001")],
)
def test_negative_cpio_sizes_are_refused(field: str, value: bytes) -> None:
    """Issue 10 item 3: -0000070 and -000006E hung `images` with memory growing;
    -0000001 was accepted."""
    with bounded(), pytest.raises(Sel4VmmError, match=f"{field} is '{value.decode()}'"):
        cpio.read_newc(_cpio_with(field, value), "rootfs.cpio")


@pytest.mark.parametrize("value", [b"+0000070", b" 0000070", b"0x000070", b"0000007g"])
def test_every_cpio_field_is_exactly_eight_hex_digits(value: bytes) -> None:
    for field in cpio.FIELD_NAMES:
        with pytest.raises(Sel4VmmError, match=f"{field} is"):
            cpio.read_newc(_cpio_with(field, value), "rootfs.cpio")


def test_cpio_name_size_is_bounded() -> None:
    with pytest.raises(Sel4VmmError, match="c_namesize is 65536, longer than a path"):
        cpio.read_newc(_cpio_with("c_namesize", b"00010000"), "rootfs.cpio")


@pytest.fixture
def kernel(tmp_path: Path) -> Path:
    path = tmp_path / "Image"
    path.write_bytes(arm64_image(2 * MIB, image_size=3 * MIB))
    return path


@needs_realworld
def test_negative_cpio_size_through_images_is_one_error(tmp_path: Path, kernel: Path) -> None:
    initrd = tmp_path / "rootfs.cpio.gz"
    initrd.write_bytes(gzip_bytes(_cpio_with("c_filesize", b"-0000070")))
    result = run_sel4vmm(
        [
            "images",
            str(QEMU_VIRT / "simple.system"),
            "--kernel",
            str(kernel),
            *["--initrd", str(initrd)],
        ],
        timeout=60,
    )
    assert result.returncode == 1
    assert f"{initrd}: error: corrupt cpio header at offset 0x0: c_filesize" in said(result)
    assert "Traceback" not in said(result)


# -- gzip bombs (item 4) -----------------------------------------------------------------


def gzip_bomb(mib: int) -> bytes:
    """``mib`` MiB of zeros as one gzip member of independent deflate blocks (built without
    compressing them all); the trailer is never reached by a reader that stops in time."""
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    block = deflater.compress(bytes(MIB)) + deflater.flush(zlib.Z_FULL_FLUSH)
    return GZIP_MAGIC + bytes([8, 0, 0, 0, 0, 0, 2, 3]) + block * mib + b"\x03\x00" + bytes(8)


def test_a_kernel_bomb_stops_at_the_guest_ram(tmp_path: Path) -> None:
    """Issue 10 item 4: a 3.1 MB gzip inflated to 2.5 GiB as a kernel; now it stops at the
    guest's RAM and says so."""
    path = tmp_path / "vmlinuz"
    path.write_bytes(gzip_bomb(2560))
    assert path.stat().st_size < 3_200_000
    with (
        bounded(max_bytes=320 * MIB),
        pytest.raises(Sel4VmmError, match="more than the guest's 268435456 bytes of RAM") as err,
    ):
        read_kernel(path, arch="aarch64", guest_ram=256 * MIB)
    assert "inflates to more than 268435456 bytes" in err.value.message


def test_an_initrd_bomb_stops_at_the_guest_ram(tmp_path: Path) -> None:
    path = tmp_path / "rootfs.cpio.gz"
    path.write_bytes(gzip_bomb(6144))
    with (
        bounded(max_bytes=320 * MIB),
        pytest.raises(Sel4VmmError, match="can hold as its initramfs"),
    ):
        read_initrd(path, guest_ram=256 * MIB)


@needs_realworld
def test_a_bomb_through_images_names_the_ram(tmp_path: Path, kernel: Path) -> None:
    initrd = tmp_path / "rootfs.cpio.gz"
    initrd.write_bytes(gzip_bomb(6144))
    result = run_sel4vmm(
        [
            "images",
            str(QEMU_VIRT / "simple.system"),
            "--kernel",
            str(kernel),
            *["--initrd", str(initrd)],
        ],
        timeout=120,
        address_space=6 << 30,
    )
    assert result.returncode == 1, said(result)
    assert "bytes of RAM can hold as its initramfs" in said(result)


def test_many_empty_members_are_linear() -> None:
    """A valid gzip followed by 200,000 empty members was quadratic (each member copied
    the rest of the input); it now inflates in one pass."""
    data = gzip_bytes(b"hello" * 100) + gzip_bytes(b"") * 200_000
    with bounded(seconds=30, max_bytes=64 * MIB):
        assert gunzip(data, "many.gz") == b"hello" * 100


def test_streamed_members_and_padding_still_inflate() -> None:
    payload = os.urandom(3 * MIB)
    data = gzip_bytes(payload[:MIB]) + gzip_bytes(payload[MIB:]) + bytes(512)
    assert gunzip(data) == payload
    with pytest.raises(Sel4VmmError, match="truncated gzip file"):
        gunzip(data[: len(data) // 2])
    with pytest.raises(Sel4VmmError, match="garbage after the compressed stream"):
        gunzip(data + b"junk")


# -- bounded reads of user files (item 5 of the assignment; issue 10 "what must hold") -----


@pytest.mark.parametrize("target", ["/dev/zero", "fifo"])
def test_devices_and_fifos_are_refused_even_through_symlinks(tmp_path: Path, target: str) -> None:
    if target == "fifo":
        real = tmp_path / "pipe"
        os.mkfifo(real)
        kind = "a FIFO \\(named pipe\\)"
    else:
        real = Path(target)
        kind = "a character device"
    link = tmp_path / "Image"
    link.symlink_to(real)
    with bounded(seconds=10):
        for path in (real, link):
            with pytest.raises(Sel4VmmError, match=f"the kernel file is {kind}, not a regular"):
                ImageBlob.open(path, role="kernel")
            with pytest.raises(Sel4VmmError, match=f"the script is {kind}"):
                read_user_file(path, "the script", "pass a file")


def test_sizes_are_bounded_by_the_kind_of_file(tmp_path: Path) -> None:
    big = tmp_path / "linux.dtb"
    with big.open("wb") as handle:
        handle.truncate(3 * MIB)  # sparse: costs nothing
    with pytest.raises(Sel4VmmError, match="more than the 2097152 bytes sel4vmm reads"):
        from sel4vmm.images.detect import read_dtb

        read_dtb(big)
    with pytest.raises(Sel4VmmError, match="is 3145728 bytes, more than the 1048576"):
        read_user_file(big, "the script", "pass a file", max_bytes=MIB)
    with pytest.raises(Sel4VmmError, match="guest has 1048576 bytes of RAM"):
        read_kernel(big, guest_ram=MIB)


@needs_realworld
def test_a_fifo_as_kernel_through_images_is_one_error(tmp_path: Path) -> None:
    fifo = tmp_path / "Image"
    os.mkfifo(fifo)
    result = run_sel4vmm(
        ["images", str(QEMU_VIRT / "simple.system"), "--kernel", str(fifo)], timeout=60
    )
    assert result.returncode == 1
    assert "the kernel file is a FIFO (named pipe), not a regular file" in said(result)


# -- child processes (item 8) ------------------------------------------------------------


def test_a_missing_tool_names_its_package() -> None:
    with pytest.raises(Sel4VmmError, match="apt-get install device-tree-compiler") as error:
        find_tool("dtc-that-does-not-exist", package="device-tree-compiler", purpose="here")
    assert "'dtc-that-does-not-exist' is not installed" in error.value.message


def test_run_tool_stops_a_hang_and_a_flood() -> None:
    with bounded(seconds=30), pytest.raises(Sel4VmmError, match="did not finish within 1 s"):
        run_tool(["sleep", "30"], timeout=1)
    with pytest.raises(Sel4VmmError, match="wrote more than 1048576 bytes"):
        run_tool(["cat", "/dev/zero"], timeout=30, max_output=MIB)
    result = run_tool(["sh", "-c", "cat; echo err >&2; exit 3"], input=b"in")
    assert (result.returncode, result.stdout, result.stderr) == (3, b"in", b"err\n")


@needs_dtc
def test_incbin_of_dev_zero_is_stopped(tmp_path: Path) -> None:
    """Issue 10 item 8: /incbin/("/dev/zero") hung inside dtc."""
    source = tmp_path / "linux.dts"
    source.write_text('/dts-v1/;\n/ {\n    blob = /incbin/("/dev/zero");\n};\n')
    with bounded(seconds=120), pytest.raises(Sel4VmmError) as error:
        compile_dts(source)
    assert error.value.location is not None and error.value.location.path == str(source)
    assert error.value.fix is not None and "dtc ran out of the 2 GiB it may use" in error.value.fix


def _children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _wait_for_child(pid: int, name: str, seconds: float = 60) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for child in _children_of(pid):
            try:
                if (Path(f"/proc/{child}") / "comm").read_text().strip() == name:
                    return child
            except OSError:
                continue
        time.sleep(0.05)
    raise AssertionError(f"no {name} child of {pid} appeared")


def _gone_or_zombie(pid: int, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            state = (Path(f"/proc/{pid}") / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


@needs_dtc
@needs_realworld
def test_dtc_hanging_on_a_fifo_dies_when_sel4vmm_is_killed(tmp_path: Path, kernel: Path) -> None:
    """Issue 10 item 8: dtc hung on /incbin/ and was left running when sel4vmm was killed.
    An /incbin/ of a FIFO blocks dtc forever; SIGKILL of sel4vmm must take dtc with it."""
    fifo = tmp_path / "never"
    os.mkfifo(fifo)
    source = tmp_path / "linux.dts"
    source.write_text(f'/dts-v1/;\n/ {{\n    blob = /incbin/("{fifo}");\n}};\n')
    env = dict(os.environ, PYTHONPATH=str(SRC))
    command = [sys.executable, "-m", "sel4vmm", "images", str(QEMU_VIRT / "simple.system")]
    command += ["--kernel", str(kernel), "--dts", str(source)]
    sel4vmm = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        dtc = _wait_for_child(sel4vmm.pid, "dtc")
        sel4vmm.send_signal(signal.SIGKILL)
        sel4vmm.wait(timeout=30)
        assert _gone_or_zombie(dtc), "dtc outlived sel4vmm"
    finally:
        if sel4vmm.poll() is None:
            sel4vmm.kill()
            sel4vmm.wait()


def test_a_child_dies_with_sel4vmm(tmp_path: Path) -> None:
    """A child started through run_tool is killed by the kernel when its parent is killed
    with SIGKILL, where no Python cleanup runs (PR_SET_PDEATHSIG)."""
    script = "from sel4vmm.subprocesses import run_tool\nrun_tool(['sleep', '300'], timeout=300)\n"
    env = dict(os.environ, PYTHONPATH=str(SRC))
    parent = subprocess.Popen([sys.executable, "-c", script], env=env)
    try:
        deadline = time.monotonic() + 30
        children: list[int] = []
        while not children and time.monotonic() < deadline:
            time.sleep(0.05)
            children = _children_of(parent.pid)
        assert children, "the child never started"
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
        assert _gone_or_zombie(children[0]), "the child outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()

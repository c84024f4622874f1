"""Fixtures for the QEMU backend: the Debian arm64 kernel and busybox that ``install.sh``
unpacks into ``.cache/debian-arm64/root``, libvmm's qemu_virt_aarch64 board files, and tiny
synthetic guests that need neither."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sel4vmm.images.cpio import InitramfsBuilder
from tests.backends.qemu.guests import DEBIAN_ROOT, MARKER_INIT


@pytest.fixture(scope="session")
def debian_kernel() -> Path:
    kernels = sorted(DEBIAN_ROOT.glob("boot/vmlinuz-*"))
    if not kernels:
        pytest.skip(f"no Debian arm64 kernel at {DEBIAN_ROOT}/boot/vmlinuz-* (run ./install.sh)")
    return kernels[-1]


@pytest.fixture(scope="session")
def marker_initrd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    busybox = DEBIAN_ROOT / "bin" / "busybox"
    if not busybox.is_file():
        pytest.skip(f"no arm64 busybox at {busybox} (run ./install.sh)")
    builder = InitramfsBuilder()
    builder.add_busybox(busybox, init_script=MARKER_INIT)
    path = tmp_path_factory.mktemp("initrd") / "initrd.cpio.gz"
    path.write_bytes(builder.build_gzip())
    return path


@pytest.fixture
def libvmm_board(realworld: Path) -> Path:
    board = realworld / "libvmm" / "simple" / "board" / "qemu_virt_aarch64"
    if not (board / "simple.system").is_file():
        pytest.skip(f"libvmm's qemu_virt_aarch64 board files are not in {board}")
    return board


@pytest.fixture
def qemu() -> str:
    found = shutil.which("qemu-system-aarch64")
    if found is None:
        pytest.skip("qemu-system-aarch64 is not installed (apt-get install qemu-system-arm)")
    return found


@pytest.fixture(scope="session")
def dtc() -> str:
    found = shutil.which("dtc")
    if found is None:
        pytest.skip("dtc is not installed (apt-get install device-tree-compiler)")
    return found

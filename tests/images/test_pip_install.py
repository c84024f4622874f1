"""``pip install .`` works with Python alone (issue 12): no compiler, no swig, no dtc.

A fresh venv is made and the repository (its tracked files, copied so the build leaves
nothing in the worktree) is installed with a PATH holding only ``python3``; then the
installed ``sel4vmm`` checks a real configuration and reads, edits and writes a real device
tree through ``images``.  Dependencies come from pip's usual sources and cache.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.images.synthetic import arm64_image

REPO = Path(__file__).resolve().parents[2]
BOARD = REPO / ".." / "shared" / "realworld" / "libvmm" / "simple" / "board" / "qemu_virt_aarch64"

pytestmark = pytest.mark.slow


def _python_only_path(tmp: Path) -> str:
    """A PATH with python3 and nothing else: no cc, gcc, swig, dtc, make."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(os.path.realpath(sys.executable))
    for tool in ("cc", "gcc", "swig", "dtc", "make"):
        assert shutil.which(tool, path=str(bin_dir)) is None
    return str(bin_dir)


def _copy_tracked_files(destination: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True, timeout=60
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = REPO / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def test_pip_install_with_python_alone(tmp_path: Path) -> None:
    if not BOARD.exists():
        pytest.skip("../shared/realworld is not beside the repository")
    if shutil.which("dtc") is None:
        pytest.skip("dtc is needed to make the test's DTB (not by the installed package)")
    source = tmp_path / "sel4vmm"
    _copy_tracked_files(source)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = _python_only_path(tmp_path)
    venv = tmp_path / "venv"
    subprocess.run(
        ["python3", "-m", "venv", str(venv)], env=env, check=True, timeout=300, cwd=tmp_path
    )
    python = str(venv / "bin" / "python")
    installed = subprocess.run(
        [python, "-m", "pip", "install", "-q", str(source)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    no_libfdt = subprocess.run(
        [python, "-c", "import libfdt"], env=env, capture_output=True, timeout=60
    )
    assert no_libfdt.returncode != 0, "the venv must not see a system pylibfdt"

    sel4vmm = str(venv / "bin" / "sel4vmm")
    system = str(BOARD / "simple.system")
    checked = subprocess.run(
        [sel4vmm, "check", system], env=env, capture_output=True, text=True, timeout=300
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr

    dtb = tmp_path / "linux.dtb"
    dtb.write_bytes(
        subprocess.run(
            ["dtc", "-q", "-I", "dts", "-O", "dtb", str(BOARD / "linux.dts")],
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
    )
    kernel = tmp_path / "Image"
    kernel.write_bytes(arm64_image(2 << 20, image_size=3 << 20))
    out = tmp_path / "out"
    command = [sel4vmm, "images", system, "--kernel", str(kernel), "--dtb", str(dtb)]
    images = subprocess.run(
        [*command, "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert images.returncode == 0, images.stdout + images.stderr
    written = sorted(p.name for p in out.iterdir())
    assert any(name.endswith(".dtb") for name in written), written

    # dtc is an optional tool: without it, --dts says which package provides it.
    compiled = subprocess.run(
        [sel4vmm, "images", system, "--kernel", str(kernel), "--dts", str(BOARD / "linux.dts")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert compiled.returncode == 1
    assert "apt-get install device-tree-compiler" in " ".join(compiled.stderr.split())

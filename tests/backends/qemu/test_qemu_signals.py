"""SIGINT and SIGTERM to ``sel4vmm run --backend qemu`` (issue 12): a clean stop, exit status
130 / 143, nothing left in ``/dev/shm`` and no QEMU left running; ``--until`` ends a run
with status 0 on its text; QEMU dies with sel4vmm even when sel4vmm is killed outright, and
the RAM file's name is gone as soon as QEMU has mapped it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sel4vmm.backends.qemu.session import run_qemu
from sel4vmm.backends.qemu.shared_ram import shared_memory_dir
from tests.backends.qemu.guests import DTB_CHECK_GUEST, SPIN_FOREVER, synthetic_kernel
from tests.helpers import REPO

#: The DTB-check guest with its PSCI SYSTEM_OFF (``smc #0``) made a NOP: it prints "D" and
#: then spins in its ``b .`` forever, so only ``--until`` (or a limit) ends its run.
PRINT_THEN_SPIN = DTB_CHECK_GUEST.replace(bytes.fromhex("030000d4"), bytes.fromhex("1f2003d5"))
STARTED = "[qemu: guest running"


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def ram_files(pid: int) -> list[str]:
    return sorted(p.name for p in shared_memory_dir().glob(f"sel4vmm-{pid}-*"))


def start_run(tmp_path: Path, kernel: bytes, board: Path, *extra: str) -> subprocess.Popen[bytes]:
    image = tmp_path / "guest.Image"
    image.write_bytes(synthetic_kernel(kernel))
    command = [sys.executable, "-m", "sel4vmm", "run", "--backend", "qemu", "--kernel", str(image)]
    command += ["--dts", str(board / "linux.dts"), *extra]
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    stderr = (tmp_path / "stderr").open("wb")
    return subprocess.Popen(
        command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr
    )


def wait_until_running(process: subprocess.Popen[bytes], tmp_path: Path) -> int:
    """The QEMU child's pid, once the guest runs (sel4vmm said so on stderr)."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"sel4vmm ended early: {(tmp_path / 'stderr').read_text()}")
        qemus = children(process.pid)
        if qemus and STARTED in (tmp_path / "stderr").read_text():
            return qemus[0]
        time.sleep(0.1)
    process.kill()
    pytest.fail("the guest did not start within 90 s")


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_the_run_cleanly(
    tmp_path: Path, libvmm_board: Path, qemu: str, dtc: str, signum: int, status: int
) -> None:
    process = start_run(tmp_path, SPIN_FOREVER, libvmm_board)
    try:
        qemu_pid = wait_until_running(process, tmp_path)
        process.send_signal(signum)
        assert process.wait(timeout=60) == status
    finally:
        if process.poll() is None:
            process.kill()
    stderr = (tmp_path / "stderr").read_text()
    assert f"interrupted ({signal.Signals(signum).name}): stopped cleanly" in stderr
    assert "Traceback" not in stderr
    assert ram_files(process.pid) == []
    assert not alive(qemu_pid)


def test_qemu_dies_with_sel4vmm_even_when_it_is_killed(
    tmp_path: Path, libvmm_board: Path, qemu: str, dtc: str
) -> None:
    process = start_run(tmp_path, SPIN_FOREVER, libvmm_board)
    try:
        qemu_pid = wait_until_running(process, tmp_path)
        # Once QEMU has mapped the RAM file its name is gone: SIGKILL cannot leave it behind.
        assert ram_files(process.pid) == []
        process.kill()
        process.wait(timeout=30)
        deadline = time.monotonic() + 30
        while alive(qemu_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(qemu_pid)
        assert ram_files(process.pid) == []
    finally:
        for name in ram_files(process.pid):  # only if the test failed
            (shared_memory_dir() / name).unlink(missing_ok=True)


def test_until_ends_the_run_with_status_0_on_its_text(
    tmp_path: Path, libvmm_board: Path, qemu: str, dtc: str
) -> None:
    image = tmp_path / "guest.Image"
    image.write_bytes(synthetic_kernel(PRINT_THEN_SPIN))
    lines: list[str] = []
    result = run_qemu(
        None,
        image,
        dts=libvmm_board / "linux.dts",
        console=lambda _text: None,
        until="D\n",
        timeout=120,
        status=lines.append,
    )
    assert result.ok and result.until_seconds is not None and not result.timed_out
    assert result.console.startswith("D\n")
    assert result.notes[-1] == "the console printed 'D\\n' (--until); QEMU was stopped"
    assert lines[0] == (
        "[qemu: guest running; at most 120 s (--timeout), or until the console prints "
        "'D\\n' (--until)]"
    )


def test_a_run_without_a_limit_gets_the_default_and_says_so(
    tmp_path: Path, libvmm_board: Path, qemu: str, dtc: str
) -> None:
    image = tmp_path / "guest.Image"
    image.write_bytes(synthetic_kernel(DTB_CHECK_GUEST))
    lines: list[str] = []
    result = run_qemu(
        None, image, dts=libvmm_board / "linux.dts", console=None, status=lines.append
    )
    assert result.ok
    assert lines == ["[qemu: guest running; at most 600 s (--timeout)]"]

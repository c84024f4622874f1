"""``sel4vmm run``: console on stdout, exit status from how the guest ended."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from sel4vmm.cli import run as run_command
from tests.debian_guests import DEBIAN, needs_debian
from tests.helpers import REPO


def make_app() -> typer.Typer:
    app = typer.Typer()
    run_command.register(app)

    @app.callback()
    def _root() -> None:
        """Keep ``run`` a subcommand."""

    return app


def test_run_prints_the_hello_guest_console_and_succeeds() -> None:
    result = CliRunner().invoke(make_app(), ["run", "--kernel", "hello"])
    assert result.exit_code == 0, result.output
    assert "hello from the sel4vmm aarch64 guest" in result.output
    assert "memory: base 0x40000000 size 0x10000000" in result.output


def test_run_feeds_input_and_can_log_to_a_file(tmp_path: Path) -> None:
    log = tmp_path / "console.log"
    result = CliRunner().invoke(
        make_app(), ["run", "--kernel", "gictimer", "--input", "z", "--log", str(log)]
    )
    assert result.exit_code == 0, result.output
    assert "uart rx 'z'" in log.read_text()


def test_a_guest_the_vmm_stops_exits_1_with_the_diagnostic() -> None:
    result = CliRunner().invoke(make_app(), ["run", "--kernel", "badaccess", "--pools"])
    assert result.exit_code == 1
    assert "no reservation claims this address" in result.output
    assert "0x20000000" in result.output


def test_bad_ram_size_is_a_user_error() -> None:
    result = CliRunner().invoke(make_app(), ["run", "--kernel", "hello", "--ram-size", "lots"])
    # The shared size option (cli/options.py): click's usage error, status 2, as for plan.
    assert result.exit_code == 2
    assert "write 256M, 2G, 4096K, 0x10000000 or a number of bytes" in result.output


def test_vcpus_runs_the_smp_guest_on_that_many_vcpus() -> None:
    result = CliRunner().invoke(make_app(), ["run", "--kernel", "smp", "--vcpus", "3"])
    assert result.exit_code == 0, result.output
    assert "smp: 3 cpus (gic: 3)" in result.output
    assert "cpu 2 up: context 2" in result.output
    assert "sgi 3 from cpu 0 taken by cpu 1" in result.output


def test_too_many_vcpus_is_a_user_error() -> None:
    result = CliRunner().invoke(make_app(), ["run", "--kernel", "hello", "--vcpus", "9"])
    assert result.exit_code == 1
    assert "1 to 8" in str(result.exception)


# -- Linux on the emulator from the command line ---------------------------------------------


def _sel4vmm(*args: str) -> list[str]:
    return [sys.executable, "-m", "sel4vmm", *args]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.mark.slow
@needs_debian
def test_the_default_run_boots_debian_linux_to_the_marker_with_json(tmp_path: Path) -> None:
    log = tmp_path / "console.log"
    done = subprocess.run(
        _sel4vmm("run", "--json", "--log", str(log)),
        capture_output=True,
        text=True,
        env=_env(),
        stdin=subprocess.DEVNULL,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    document = json.loads(done.stdout)
    assert document["schema"] == "sel4vmm-run" and document["exit_reason"] == "system_off"
    assert document["linux"] is True and document["console_log"] == str(log)
    assert document["timings"]["host_seconds"] > 0
    # Which emulated-MMIO path served the run (sel4vmm.native.describe's words).
    assert document["mmio_path"].startswith(("C extension", "pure Python"))
    assert "sel4vmm: Linux userspace is up on sel4vmm's own VMM" in log.read_text()


@pytest.mark.slow
@needs_debian
def test_sigterm_stops_a_running_linux_guest_with_status_143(tmp_path: Path) -> None:
    init = tmp_path / "init"
    init.write_text("#!/bin/sh\nwhile true; do echo looping; /bin/busybox sleep 1; done\n")
    initrd = tmp_path / "init.cpio.gz"
    built = subprocess.run(
        _sel4vmm("initramfs", str(initrd), "--busybox", str(DEBIAN / "bin/busybox"),
                 "--init", str(init)),
        env=_env(), capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    kernel = sorted((DEBIAN / "boot").glob("vmlinuz-*-arm64"))[-1]
    with subprocess.Popen(
        _sel4vmm("run", "--kernel", str(kernel), "--initrd", str(initrd)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=_env(),
    ) as process:
        assert process.stdout is not None
        try:
            for line in process.stdout:
                if b"looping" in line:
                    break
            process.send_signal(signal.SIGTERM)
            _out, err = process.communicate(timeout=120)
        finally:
            process.kill()
    assert process.returncode == 143, err
    assert b"the run was interrupted" in err


@pytest.mark.slow
@needs_debian
def test_an_interactive_shell_on_a_terminal_takes_keys_and_ctrl_a_x_stops_it(
    tmp_path: Path,
) -> None:
    initrd = tmp_path / "init.cpio.gz"
    built = subprocess.run(
        _sel4vmm("initramfs", str(initrd), "--busybox", str(DEBIAN / "bin/busybox")),
        env=_env(), capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    kernel = sorted((DEBIAN / "boot").glob("vmlinuz-*-arm64"))[-1]
    pid, fd = pty.fork()
    if pid == 0:  # the child: sel4vmm with the pty as its terminal
        os.environ.update(_env())
        os.execv(sys.executable, _sel4vmm("run", "--kernel", str(kernel), "--initrd", str(initrd)))
    seen = bytearray()

    def read_until(text: bytes, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while text not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 1.0)
            if ready:
                try:
                    seen.extend(os.read(fd, 4096))
                except OSError:
                    return False
        return text in seen

    try:
        assert read_until(b"Run /init as init process", 300), seen[-2000:]
        assert read_until(b"# ", 60), seen[-2000:]
        os.write(fd, b"echo pty-$((1+2))\r")
        assert read_until(b"pty-3", 60), seen[-2000:]
        os.write(fd, b"\x01x")  # Ctrl-A X
        assert read_until(b"stopped from the console", 60), seen[-2000:]
        _, status = os.waitpid(pid, 0)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0


def test_emulator_only_options_are_refused_with_the_qemu_backend() -> None:
    result = CliRunner().invoke(
        make_app(), ["run", "--backend", "qemu", "--kernel", "x", "--vcpus", "2", "--pools"]
    )
    assert result.exit_code == 1
    assert "--pools, --vcpus: only the emulator backend has these options" in str(result.exception)


def test_virtio_options_are_emulator_only_and_read_only_needs_a_disk(tmp_path: Path) -> None:
    disk = tmp_path / "disk.img"
    disk.write_bytes(bytes(512))
    result = CliRunner().invoke(
        make_app(),
        ["run", "--backend", "qemu", "--kernel", "x", "--disk", str(disk), "--console", "virtio"],
    )
    assert result.exit_code == 1
    assert "--disk, --console: only the emulator backend has these options" in str(result.exception)
    result = CliRunner().invoke(make_app(), ["run", "--kernel", "hello", "--read-only"])
    assert "no --disk was given" in str(result.exception)


def test_a_disk_for_a_bare_metal_guest_is_refused(tmp_path: Path) -> None:
    disk = tmp_path / "disk.img"
    disk.write_bytes(bytes(512))
    result = CliRunner().invoke(make_app(), ["run", "--kernel", "hello", "--disk", str(disk)])
    assert result.exit_code == 1
    assert "--disk and --console virtio are for a Linux Image" in str(result.exception)

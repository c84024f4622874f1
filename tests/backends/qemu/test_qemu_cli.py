"""``sel4vmm run --backend qemu`` on a bare-metal guest: console, exit status, log file."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from sel4vmm.cli.run import register
from sel4vmm.errors import Sel4VmmError
from tests.backends.qemu.guests import DTB_CHECK_GUEST, SPIN_FOREVER, synthetic_kernel


@pytest.fixture
def app() -> typer.Typer:
    application = typer.Typer()
    register(application)

    @application.command("other")
    def other() -> None:
        """Keep typer in multi-command mode so 'run' is a subcommand."""

    return application


def _kernel(tmp_path: Path, code: bytes) -> Path:
    path = tmp_path / "guest.Image"
    path.write_bytes(synthetic_kernel(code))
    return path


def test_guest_that_powers_off_exits_0_and_logs_its_console(
    app: typer.Typer, tmp_path: Path, libvmm_board: Path, qemu: str, dtc: str
) -> None:
    log = tmp_path / "console.log"
    result = CliRunner().invoke(
        app,
        [
            "run",
            "--backend",
            "qemu",
            str(libvmm_board / "simple.system"),
            "--kernel",
            str(_kernel(tmp_path, DTB_CHECK_GUEST)),
            "--dts",
            str(libvmm_board / "linux.dts"),
            "--overlay",
            str(libvmm_board / "overlay.dts"),
            "--timeout",
            "60",
            "--log",
            str(log),
        ],
    )
    assert result.exit_code == 0, result.output
    assert log.read_text() == "D\n"
    assert "linux: powered off" in result.output


def test_guest_stopped_by_the_timeout_exits_1(
    app: typer.Typer, tmp_path: Path, libvmm_board: Path, qemu: str, dtc: str
) -> None:
    result = CliRunner().invoke(
        app,
        [
            "run",
            "--backend",
            "qemu",
            "--kernel",
            str(_kernel(tmp_path, SPIN_FOREVER)),
            "--dts",
            str(libvmm_board / "linux.dts"),
            "--timeout",
            "0.5",
        ],
    )
    assert result.exit_code == 1
    assert "stopped" in result.output


def test_missing_kernel_is_a_user_error(app: typer.Typer) -> None:
    result = CliRunner().invoke(app, ["run", "--backend", "qemu"])
    assert isinstance(result.exception, Sel4VmmError)
    assert result.exception.fix is not None and "--kernel" in result.exception.fix

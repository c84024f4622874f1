"""``sel4vmm run``: console on stdout, exit status from how the guest ended."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.testing import CliRunner

from sel4vmm.cli import run as run_command


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
    assert result.exit_code == 1
    assert "--ram-size 'lots' is not a size" in str(result.exception)


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

"""``sel4vmm untyped-mmios`` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from sel4vmm.cli import app
from tests.plan.test_untyped_mmios import QEMU, loader_log

runner = CliRunner()


def test_from_a_boot_log(tmp_path: Path) -> None:
    log = tmp_path / "boot.log"
    log.write_text(loader_log(QEMU))
    result = runner.invoke(app, ["untyped-mmios", str(log), "--ram", "0x40000000:512M"])
    assert result.exit_code == 0, result.output
    assert 'vm0.untyped_mmios = [\n    "0x40000000:29", // device untyped' in result.output
    assert "pool size left: 3 untyped of 2^24" in result.output


def test_from_the_board_model_as_json() -> None:
    result = runner.invoke(
        app,
        ["untyped-mmios", "--board", "qemu-arm-virt", "--ram", "0x40000000:0x20000000", "--json"],
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["untyped_mmios"] == [{"paddr": 0x40000000, "size_bits": 29, "device": True}]
    assert document["pool"] == {"size_bits": 24, "count": 96}


def test_errors_are_one_line_with_a_fix(tmp_path: Path) -> None:
    missing = runner.invoke(app, ["untyped-mmios", "--ram", "0x40000000:512M"])
    assert missing.exit_code != 0
    bad = runner.invoke(app, ["untyped-mmios", "--board", "qemu-arm-virt", "--ram", "512M"])
    assert bad.exit_code != 0
    device = runner.invoke(app, ["untyped-mmios", "/dev/zero", "--ram", "0x40000000:512M"])
    assert device.exit_code != 0

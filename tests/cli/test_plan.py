"""``sel4vmm plan`` and ``sel4vmm demo`` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from sel4vmm.cli import app

runner = CliRunner()


def test_plan_prints_map_and_resources(realworld: Path) -> None:
    path = realworld / "libvmm/simple/board/qemu_virt_aarch64/simple.system"
    result = runner.invoke(app, ["plan", str(path)])
    assert result.exit_code == 0, result.output
    assert "guest-physical map" in result.output
    assert "2 MiB frames from board RAM" in result.output


def test_plan_json_is_the_documented_document(realworld: Path) -> None:
    path = realworld / "camkes-vm-examples/vm_minimal/vm_minimal.camkes"
    result = runner.invoke(app, ["plan", str(path), "--board", "qemu-arm-virt", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["schema"] == "sel4vmm-plan"
    assert [vm["name"] for vm in document["vms"]] == ["vm0"]


def test_plan_exit_status_and_errors(tmp_path: Path) -> None:
    bad = tmp_path / "x.txt"
    bad.write_text("nothing")
    result = runner.invoke(app, ["plan", str(bad)])
    assert result.exit_code != 0
    assert isinstance(result.exception, Exception)
    missing = runner.invoke(app, ["plan", str(tmp_path / "missing.system")])
    assert missing.exit_code != 0
    unknown_board = runner.invoke(app, ["plan", str(bad), "--board", "nonsense"])
    assert unknown_board.exit_code != 0


def test_plan_unknown_vm_name(realworld: Path) -> None:
    path = realworld / "libvmm/simple/board/qemu_virt_aarch64/simple.system"
    result = runner.invoke(app, ["plan", str(path), "--vm", "nope"])
    assert result.exit_code != 0


def test_demo_runs() -> None:
    result = runner.invoke(app, ["demo"])
    assert result.exit_code == 0, result.output
    assert "wrote and read back 512 MiB of guest RAM: ok" in result.output
    assert "needs 1 more untyped of 2^24" in result.output

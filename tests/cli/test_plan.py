"""``sel4vmm plan`` and ``sel4vmm demo`` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from sel4vmm.cli import app
from sel4vmm.errors import Sel4VmmError

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
    assert result.exit_code == 1
    assert f"{bad}:1:1: error: " in result.output
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


LIBVMM = Path(__file__).resolve().parents[2].parent / "shared/realworld/libvmm/simple/board"
VM_MINIMAL = LIBVMM.parents[2] / "camkes-vm-examples/vm_minimal/vm_minimal.camkes"


def test_plan_checks_the_x86_system_as_x86_64() -> None:
    # Issue 12: the board came from the path, the check ran as aarch64 and failed with
    # "I/O Ports are only available on x86".
    path = LIBVMM / "x86_64_generic_vtx/simple.system"
    result = runner.invoke(app, ["plan", str(path), "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["board"]["name"] == "x86_64_generic"
    assert document["board"]["arch"] == "x86_64"


def test_plan_takes_the_defines_its_fix_text_names() -> None:
    result = runner.invoke(app, ["plan", str(VM_MINIMAL)])
    assert isinstance(result.exception, Sel4VmmError)
    assert result.exception.fix is not None and "--define PLAT=" in result.exception.fix
    fixed = runner.invoke(app, ["plan", str(VM_MINIMAL), "--define", "PLAT=qemu-arm-virt"])
    assert fixed.exit_code == 0, fixed.output
    short = runner.invoke(app, ["plan", str(VM_MINIMAL), "-D", "PLAT=qemu-arm-virt", "--json"])
    assert json.loads(short.output)["vms"][0]["name"] == "vm0"


def test_plan_ram_size_takes_every_size_spelling() -> None:
    path = LIBVMM / "qemu_virt_aarch64/simple.system"
    for spelling in ("1G", "1024M", "0x40000000", "1073741824"):
        result = runner.invoke(app, ["plan", str(path), "--ram-size", spelling, "--json"])
        assert result.exit_code == 0, (spelling, result.output)
        assert json.loads(result.output)["board"]["ram"] == [{"base": 0x40000000, "size": 1 << 30}]
    bad = runner.invoke(app, ["plan", str(path), "--ram-size", "lots"])
    assert bad.exit_code == 2
    assert "write 256M, 2G, 4096K, 0x10000000 or a number of bytes" in bad.output


def test_tables_keep_every_number_whole_at_80_columns() -> None:
    result = runner.invoke(
        app, ["plan", str(VM_MINIMAL), "--board", "qemu-arm-virt"], terminal_width=80
    )
    assert result.exit_code == 0, result.output
    assert "…" not in result.output
    assert "0x8011000-0x40000000" in result.output
    assert "~895.9 MiB" in result.output and "917436 KiB" not in result.output
    assert "131368" in result.output  # the CSpace peak, whole

"""``sel4vmm images``: placement table, findings, JSON and output files."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from sel4vmm.cli import images as images_cli
from sel4vmm.config.load import pick_vm
from sel4vmm.config.spec import ImageSpec, SystemSpec, VmSpec
from sel4vmm.errors import Location, Sel4VmmError
from sel4vmm.images.compression import gunzip
from sel4vmm.images.cpio import InitramfsBuilder, read_newc
from sel4vmm.images.dtb import DeviceTree
from tests.images.synthetic import arm64_image

MIB = 1 << 20
needs_dtc = pytest.mark.skipif(shutil.which("dtc") is None, reason="dtc is not installed")


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "Image").write_bytes(arm64_image(2 * MIB, image_size=3 * MIB))
    builder = InitramfsBuilder()
    builder.add_file("/init", b"#!/bin/sh\n", 0o755)
    (tmp_path / "rootfs.cpio.gz").write_bytes(builder.build_gzip())
    return tmp_path


def system(path: Path, **image_fields: object) -> SystemSpec:
    vm = VmSpec(
        name="linux",
        ram_base=0x40000000,
        ram_size=256 * MIB,
        images=ImageSpec(**image_fields),  # type: ignore[arg-type]
        ram_location=Location(str(path), 12, 5),
    )
    return SystemSpec(path=str(path), format="microkit", vms=[vm])


def run(spec: SystemSpec, tmp_path: Path, **options: object) -> tuple[bool, str]:
    console = Console(record=True, width=200, file=io.StringIO())
    arguments: dict[str, object] = {
        "vm_name": None,
        "kernel": None,
        "initrd": None,
        "dtb": None,
        "dts": None,
        "overlays": [],
        "bootargs": None,
        "out": None,
        "as_json": False,
    }
    arguments.update(options)
    ok = images_cli.run_images(spec, console=console, **arguments)  # type: ignore[arg-type]
    return ok, console.export_text()


def test_table_and_ok(files: Path, tmp_path: Path) -> None:
    ok, text = run(
        system(files / "simple.system"),
        tmp_path,
        kernel=files / "Image",
        initrd=files / "rootfs.cpio.gz",
    )
    assert ok
    assert "[0x40000000, 0x40300000)" in text  # kernel with its 3 MiB image_size
    assert "arm64 Image, text_offset 0x0, image_size 0x300000" in text
    assert "pc=0x40000000" in text and "pstate=0x3c5" in text
    assert text.rstrip().endswith("ok")


def test_findings_are_printed_with_locations_and_fixes(files: Path, tmp_path: Path) -> None:
    spec = system(files / "vm.camkes", dtb_addr=0x40100000, generate_dtb=True)
    ok, text = run(spec, tmp_path, kernel=files / "Image")
    assert not ok
    assert "error: the kernel [0x40000000, 0x40300000)" in text
    assert "fix: use dtb_addr = " in text


def test_json_output(files: Path, tmp_path: Path) -> None:
    ok, text = run(
        system(files / "simple.system"),
        tmp_path,
        kernel=files / "Image",
        initrd=files / "rootfs.cpio.gz",
        as_json=True,
    )
    report = json.loads(text)
    assert ok and report["ok"]
    roles = [p["role"] for p in report["placement"]]
    assert roles == ["kernel", "initrd", "dtb"]
    assert report["registers"]["x0"] == report["placement"][2]["addr"]


def test_out_writes_dtb_and_ram_image(files: Path, tmp_path: Path) -> None:
    out = tmp_path / "build"
    ok, text = run(
        system(files / "simple.system"),
        tmp_path,
        kernel=files / "Image",
        initrd=files / "rootfs.cpio.gz",
        bootargs="console=ttyAMA0",
        out=out,
    )
    assert ok
    tree = DeviceTree((out / "linux.dtb").read_bytes())
    assert tree.bootargs == "console=ttyAMA0"
    ram = (out / "linux-ram.bin").read_bytes()
    assert ram[: 2 * MIB] == (files / "Image").read_bytes()
    assert "wrote" in text


@needs_dtc
def test_libvmm_dts_and_overlay(files: Path, tmp_path: Path, realworld: Path) -> None:
    board = realworld / "libvmm" / "simple" / "board" / "qemu_virt_aarch64"
    ok, text = run(
        system(board / "simple.system"),
        tmp_path,
        kernel=files / "Image",
        initrd=files / "rootfs.cpio.gz",
        dts=board / "linux.dts",
        overlays=[board / "overlay.dts"],
    )
    assert ok, text
    assert "dtb (linux.dts)" in text


def test_dtb_and_dts_together(files: Path, tmp_path: Path) -> None:
    with pytest.raises(Sel4VmmError, match="alternatives"):
        run(
            system(files / "s.system"),
            tmp_path,
            kernel=files / "Image",
            dtb=files / "a.dtb",
            dts=files / "a.dts",
        )


def test_vm_selection(files: Path) -> None:
    spec = system(files / "s.system")
    spec.vms.append(VmSpec(name="second"))
    with pytest.raises(Sel4VmmError, match="choose one with --vm"):
        pick_vm(spec, None)
    assert pick_vm(spec, "second").name == "second"
    with pytest.raises(Sel4VmmError, match="no VM named 'third'"):
        pick_vm(spec, "third")


def test_command_line(files: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = system(files / "simple.system")
    seen: dict[str, object] = {}

    def fake_load(path: Path, *, arch: str | None, board: str | None, **_: object) -> SystemSpec:
        seen.update(path=path, arch=arch, board=board)
        return spec

    monkeypatch.setattr(images_cli, "load_system", fake_load)
    app = typer.Typer()
    images_cli.register(app)
    app.command("noop")(lambda: None)  # a second command keeps "images" a subcommand
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "images",
            str(files / "simple.system"),
            "--kernel",
            str(files / "Image"),
            "--board",
            "qemu_virt_aarch64",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["ok"]
    assert seen["board"] == "qemu_virt_aarch64"
    bad = runner.invoke(
        app,
        ["images", str(files / "simple.system"), "--kernel", str(files / "rootfs.cpio.gz")],
    )
    assert bad.exit_code != 0
    assert isinstance(bad.exception, Sel4VmmError)
    assert "not a kernel" in bad.exception.message


def test_initramfs_command(tmp_path: Path) -> None:
    tree = tmp_path / "overlay"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc" / "motd").write_text("hello\n")
    init = tmp_path / "init.sh"
    init.write_text("#!/bin/sh\necho custom\n")
    out = tmp_path / "rootfs.cpio"
    images_cli.build_initramfs(out, busybox=None, tree=tree, init=init, compress=False)
    entries = {e.name: e for e in read_newc(out.read_bytes())}
    assert entries["init"].data == b"#!/bin/sh\necho custom\n"
    assert entries["etc/motd"].data == b"hello\n"
    assert entries["dev/console"].is_char_device
    with pytest.raises(Sel4VmmError, match="nothing to put"):
        images_cli.build_initramfs(out, busybox=None, tree=None, init=None)


@pytest.mark.skipif(not Path("/bin/busybox").is_file(), reason="no /bin/busybox")
def test_initramfs_command_line_with_busybox(tmp_path: Path) -> None:
    app = typer.Typer()
    images_cli.register(app)
    out = tmp_path / "rootfs.cpio.gz"
    result = CliRunner().invoke(app, ["initramfs", str(out), "--busybox", "/bin/busybox"])
    assert result.exit_code == 0, result.output
    names = [e.name for e in read_newc(gunzip(out.read_bytes()))]
    assert "bin/busybox" in names and "init" in names


QEMU_SIMPLE = Path(__file__).resolve().parents[2].parent / (
    "shared/realworld/libvmm/simple/board/qemu_virt_aarch64/simple.system"
)


@pytest.mark.parametrize(
    ("original", "broken"),
    [
        ('<map mr="serial"', '<map mr="seriall"'),  # a typo in an mr name
        ('perms="rwx"', 'perms="rwz"'),  # a bad perms
        ('<map mr="serial" vaddr="0x9000000"', '<map mr="serial" vaddr="0x40000000"'),  # overlap
    ],
)
def test_images_refuses_an_invalid_system_with_the_checkers_located_error(
    tmp_path: Path, original: str, broken: str
) -> None:
    # Issue 12: images said "the configuration describes no virtual machine" for these.
    from sel4vmm.cli import app as sel4vmm_app

    text = QEMU_SIMPLE.read_text()
    assert original in text
    path = tmp_path / "board" / "qemu_virt_aarch64" / "simple.system"
    path.parent.mkdir(parents=True)
    path.write_text(text.replace(original, broken, 1))
    checked = CliRunner().invoke(sel4vmm_app, ["check", str(path)])
    assert checked.exit_code == 1
    first_line = checked.output.splitlines()[0]
    result = CliRunner().invoke(sel4vmm_app, ["images", str(path)])
    assert isinstance(result.exception, Sel4VmmError)
    error = result.exception
    assert f"{error.location}: error: {error.message}".startswith(first_line)
    assert "describes no virtual machine" not in error.message


def test_a_system_description_of_any_name_is_read_by_every_command(
    tmp_path: Path, files: Path
) -> None:
    # "check ok.xml" said ok while plan/images refused the name: the Microkit tool does not
    # care about the extension, so none of them does.
    from sel4vmm.cli import app as sel4vmm_app

    path = tmp_path / "ok.xml"
    path.write_text(QEMU_SIMPLE.read_text())
    runner = CliRunner()
    assert runner.invoke(sel4vmm_app, ["check", str(path)]).output == f"{path}: ok\n"
    assert runner.invoke(sel4vmm_app, ["plan", str(path)]).exit_code == 0
    images = runner.invoke(
        sel4vmm_app, ["images", str(path), "--kernel", str(files / "Image"), "--json"]
    )
    assert images.exit_code == 0, images.output
    assert json.loads(images.output)["vm"] == "linux"


def test_placement_table_keeps_names_and_numbers_whole_at_80_columns(files: Path) -> None:
    kernel = files / "vmlinuz-6.1.0-57-arm64-with-a-long-name"
    kernel.write_bytes((files / "Image").read_bytes())
    console = Console(record=True, width=80, file=io.StringIO())
    ok = images_cli.run_images(
        system(files / "simple.system"),
        vm_name=None,
        kernel=kernel,
        initrd=files / "rootfs.cpio.gz",
        dtb=None,
        dts=None,
        overlays=[],
        bootargs=None,
        out=None,
        as_json=False,
        console=console,
    )
    text = console.export_text()
    assert ok and "…" not in text
    assert "0x300000" in text

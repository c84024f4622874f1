"""Kernel modules for an initramfs: lookup, dependencies in load order, checks, the archive."""

from __future__ import annotations

import lzma
import re
import struct
from pathlib import Path

import pytest

from sel4vmm.cli import images as images_cli
from sel4vmm.errors import Sel4VmmError
from sel4vmm.images.compression import gunzip
from sel4vmm.images.cpio import read_newc
from sel4vmm.images.modules import find_modules_dir, modinfo, module_name, resolve_modules

REPO = Path(__file__).resolve().parents[2]
DEBIAN_MODULES = REPO / ".cache/debian-arm64/root/lib/modules"
BUSYBOX = REPO / ".cache/debian-arm64/root/bin/busybox"
VERSION = "6.1.0-test-arm64"
VIRTIO = ["virtio_mmio", "virtio_blk", "virtio_console", "virtio_net"]


def fake_module(name: str, depends: str = "", version: str = VERSION) -> bytes:
    """An ELF64 relocatable with a .modinfo section, as modpost writes it."""
    info = f"license=GPL\0depends={depends}\0name={name}\0vermagic={version} SMP aarch64\0"
    modinfo_bytes = info.encode()
    shstrtab = b"\0.modinfo\0.shstrtab\0"
    modinfo_offset = 64
    shstrtab_offset = modinfo_offset + len(modinfo_bytes)
    shoff = (shstrtab_offset + len(shstrtab) + 7) // 8 * 8
    ident = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
    header = ident + struct.pack("<HHIQQQIHHHHHH", 1, 183, 1, 0, 0, shoff, 0, 64, 0, 0, 64, 3, 2)
    body = header + modinfo_bytes + shstrtab
    body += bytes(shoff - len(body))

    def section(name_offset: int, kind: int, offset: int, size: int) -> bytes:
        return struct.pack("<IIQQQQIIQQ", name_offset, kind, 0, 0, offset, size, 0, 0, 1, 0)

    return (
        body
        + bytes(64)
        + section(1, 1, modinfo_offset, len(modinfo_bytes))
        + section(10, 3, shstrtab_offset, len(shstrtab))
    )


def kernel_tree(tmp_path: Path, modules: dict[str, tuple[str, str]]) -> Path:
    """lib/modules/VERSION with ``modules`` {relative path: (name, depends)}."""
    directory = tmp_path / "lib" / "modules" / VERSION
    for relative, (name, depends) in modules.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        data = fake_module(name, depends)
        path.write_bytes(lzma.compress(data) if relative.endswith(".xz") else data)
    return directory


def test_module_names_are_canonical() -> None:
    assert module_name("kernel/drivers/char/hw_random/virtio-rng.ko.xz") == "virtio_rng"
    assert module_name("virtio_mmio") == "virtio_mmio"


def test_dependencies_come_first_from_modinfo(tmp_path: Path) -> None:
    directory = kernel_tree(
        tmp_path,
        {
            "kernel/net/core/failover.ko": ("failover", ""),
            "kernel/drivers/net/net_failover.ko.xz": ("net_failover", "failover"),
            "kernel/drivers/net/virtio_net.ko": ("virtio_net", "net_failover"),
            "kernel/drivers/virtio/virtio_mmio.ko": ("virtio_mmio", ""),
        },
    )
    version, modules = resolve_modules(["virtio_net", "virtio_mmio", "failover"], directory)
    assert version == VERSION
    assert [m.name for m in modules] == ["failover", "net_failover", "virtio_net", "virtio_mmio"]
    # The .xz module is decompressed: busybox insmod gets a plain ELF.
    assert modules[1].archive_path == "kernel/drivers/net/net_failover.ko"
    assert modules[1].data.startswith(b"\x7fELF")


def test_modules_dep_wins_when_depmod_has_run(tmp_path: Path) -> None:
    directory = kernel_tree(
        tmp_path,
        {"kernel/a.ko": ("a", ""), "kernel/b.ko": ("b", ""), "kernel/c.ko": ("c", "")},
    )
    (directory / "modules.dep").write_text(
        "kernel/a.ko: kernel/c.ko kernel/b.ko\nkernel/b.ko:\nkernel/c.ko: kernel/b.ko\n"
    )
    _version, modules = resolve_modules(["a"], directory)
    assert [m.name for m in modules] == ["b", "c", "a"]


def test_builtin_modules_are_skipped(tmp_path: Path) -> None:
    directory = kernel_tree(tmp_path, {"kernel/virtio_blk.ko": ("virtio_blk", "virtio")})
    (directory / "modules.builtin").write_text("kernel/drivers/virtio/virtio.ko\n")
    _version, modules = resolve_modules(["virtio", "virtio_blk"], directory)
    assert [m.name for m in modules] == ["virtio_blk"]


def test_unknown_module_suggests_close_names(tmp_path: Path) -> None:
    directory = kernel_tree(tmp_path, {"kernel/virtio_mmio.ko": ("virtio_mmio", "")})
    with pytest.raises(Sel4VmmError, match="no kernel module 'virtio_mmoi'") as error:
        resolve_modules(["virtio_mmoi"], directory)
    assert error.value.fix == "did you mean virtio_mmio?"


def test_missing_dependency_names_who_needs_it(tmp_path: Path) -> None:
    directory = kernel_tree(tmp_path, {"kernel/virtio_net.ko": ("virtio_net", "net_failover")})
    with pytest.raises(Sel4VmmError, match="'net_failover' \\(needed by virtio_net\\)"):
        resolve_modules(["virtio_net"], directory)


def test_cycle_is_an_error(tmp_path: Path) -> None:
    directory = kernel_tree(tmp_path, {"kernel/a.ko": ("a", "b"), "kernel/b.ko": ("b", "a")})
    with pytest.raises(Sel4VmmError, match="cycle: a -> b -> a"):
        resolve_modules(["a"], directory)


def test_module_for_another_kernel_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / VERSION
    (directory / "kernel").mkdir(parents=True)
    (directory / "kernel" / "x.ko").write_bytes(fake_module("x", version="5.10.0-9-arm64"))
    with pytest.raises(Sel4VmmError, match=re.escape("built for kernel '5.10.0-9-arm64', not ")):
        resolve_modules(["x"], directory)


def test_a_file_that_is_not_a_module(tmp_path: Path) -> None:
    directory = tmp_path / VERSION
    (directory / "kernel").mkdir(parents=True)
    (directory / "kernel" / "x.ko").write_bytes(b"not an elf at all")
    with pytest.raises(Sel4VmmError, match="not a kernel module"):
        resolve_modules(["x"], directory)


def test_modules_root_with_several_versions_is_ambiguous(tmp_path: Path) -> None:
    for version in ("6.1.0-1-arm64", "6.1.0-2-arm64"):
        (tmp_path / version / "kernel").mkdir(parents=True)
    with pytest.raises(Sel4VmmError, match=re.escape("found 6.1.0-1-arm64, 6.1.0-2-arm64")):
        find_modules_dir(tmp_path)
    assert find_modules_dir(tmp_path / "6.1.0-2-arm64") == tmp_path / "6.1.0-2-arm64"


def test_modinfo_of_a_fake_module() -> None:
    info = modinfo(fake_module("x", "y,z"), Path("x.ko"))
    assert (info["name"], info["depends"]) == ("x", "y,z")


@pytest.mark.skipif(
    not DEBIAN_MODULES.is_dir() or not BUSYBOX.is_file(),
    reason="Debian's arm64 kernel and busybox are not unpacked in .cache/ (install.sh does it)",
)
def test_debian_virtio_modules_in_the_archive(tmp_path: Path) -> None:
    out = tmp_path / "rootfs.cpio.gz"
    images_cli.build_initramfs(
        out, busybox=BUSYBOX, tree=None, init=None, modules=VIRTIO, modules_dir=DEBIAN_MODULES
    )
    entries = {e.name: e for e in read_newc(gunzip(out.read_bytes()))}
    (version,) = [p.name for p in DEBIAN_MODULES.iterdir() if (p / "kernel").is_dir()]
    script = entries["sbin/load-modules"].data.decode()
    loaded = [line.split()[2] for line in script.splitlines() if "insmod" in line]
    # Debian 6.1 builds virtio and virtio_ring in; virtio_net needs net_failover, which
    # needs failover (their .modinfo depends= fields).
    expected = [
        "kernel/drivers/virtio/virtio_mmio.ko",
        "kernel/drivers/block/virtio_blk.ko",
        "kernel/drivers/char/virtio_console.ko",
        "kernel/net/core/failover.ko",
        "kernel/drivers/net/net_failover.ko",
        "kernel/drivers/net/virtio_net.ko",
    ]
    assert loaded == [f"/lib/modules/{version}/{path}" for path in expected]
    for path in expected:
        entry = entries[f"lib/modules/{version}/{path}"]
        assert entry.data == (DEBIAN_MODULES / version / path).read_bytes()
    init = entries["init"].data.decode().splitlines()
    assert init[:2] == ["#!/bin/sh", "/sbin/load-modules"]


def test_modules_without_busybox_is_refused(tmp_path: Path) -> None:
    with pytest.raises(Sel4VmmError, match="--modules needs --busybox"):
        images_cli.build_initramfs(
            tmp_path / "x.cpio", busybox=None, tree=tmp_path, init=None, modules=["virtio_mmio"]
        )


def test_custom_init_gets_the_loader_after_its_shebang() -> None:
    assert images_cli.with_module_loading("#!/bin/sh\necho hi\n") == (
        "#!/bin/sh\n/sbin/load-modules\necho hi\n"
    )


MODULES_MARKER = "SEL4VMM-MODULES-LISTED"


@pytest.mark.slow
def test_debian_kernel_loads_the_virtio_modules_under_qemu(tmp_path: Path, realworld: Path) -> None:
    """Boot Debian's arm64 kernel on QEMU with the archive; /proc/modules lists them all."""
    import shutil

    from sel4vmm.backends.qemu.session import run_qemu

    kernels = sorted((REPO / ".cache/debian-arm64/root/boot").glob("vmlinuz-*-arm64"))
    board = realworld / "libvmm" / "simple" / "board" / "qemu_virt_aarch64"
    missing = [
        what
        for what, present in (
            ("Debian's arm64 kernel in .cache/ (install.sh)", bool(kernels)),
            ("busybox in .cache/ (install.sh)", BUSYBOX.is_file()),
            (
                "qemu-system-aarch64 (apt-get install qemu-system-arm)",
                bool(shutil.which("qemu-system-aarch64")),
            ),
            ("dtc (apt-get install device-tree-compiler)", bool(shutil.which("dtc"))),
            (f"libvmm's board files in {board}", (board / "simple.system").is_file()),
        )
        if not present
    ]
    if missing:
        pytest.skip("missing: " + "; ".join(missing))
    init = tmp_path / "init.sh"
    init.write_text(
        "#!/bin/sh\n/bin/busybox mount -t proc proc /proc\n/bin/busybox cat /proc/modules\n"
        f"echo {MODULES_MARKER}\n/bin/busybox poweroff -f\n"
    )
    initrd = tmp_path / "modules.cpio.gz"
    images_cli.build_initramfs(
        initrd, busybox=BUSYBOX, tree=None, init=init, modules=VIRTIO, modules_dir=DEBIAN_MODULES
    )
    result = run_qemu(
        board / "simple.system",
        kernels[-1],
        initrd,
        dts=board / "linux.dts",
        overlays=[board / "overlay.dts"],
        bootargs="console=ttyAMA0 panic=-1",
        console=lambda _text: None,
        timeout=180,
        marker=MODULES_MARKER,
    )
    assert result.ok, result.console[-2000:] + result.stderr
    listed = result.console.split(MODULES_MARKER)[0]
    live = {line.split()[0] for line in listed.splitlines() if " Live " in line}
    assert live >= {
        "virtio_mmio",
        "virtio_blk",
        "virtio_console",
        "virtio_net",
        "net_failover",
        "failover",
    }
    assert "insmod" not in listed  # no "sel4vmm initramfs: insmod X failed" line


@pytest.mark.skipif(not BUSYBOX.is_file(), reason="busybox is not unpacked in .cache/ (install.sh)")
def test_initramfs_command_line_takes_modules(tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    directory = kernel_tree(
        tmp_path,
        {"kernel/a.ko": ("a", "b"), "kernel/b.ko.xz": ("b", "")},
    )
    app = typer.Typer()
    images_cli.register(app)
    out = tmp_path / "rootfs.cpio"
    arguments = ["initramfs", str(out), "--busybox", str(BUSYBOX), "--no-gzip"]
    where = ["--modules-dir", str(directory)]
    result = CliRunner().invoke(app, [*arguments, "--modules", "a", *where])
    assert result.exit_code == 0, result.output
    names = [e.name for e in read_newc(out.read_bytes())]
    assert f"lib/modules/{VERSION}/kernel/a.ko" in names
    assert f"lib/modules/{VERSION}/kernel/b.ko" in names
    script = {e.name: e for e in read_newc(out.read_bytes())}["sbin/load-modules"].data.decode()
    assert script.index("kernel/b.ko") < script.index("kernel/a.ko")
    bad = CliRunner().invoke(app, [*arguments, "--modules", "zz", *where])
    assert bad.exit_code != 0
    assert "no kernel module 'zz'" in str(bad.exception) + bad.output

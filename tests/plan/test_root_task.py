"""Seed 002's root-task sizing as plan findings, computed from the kernel's rules.

Rules (seL4/seL4 1326364bc9135d9445d936ebc01e38a402c1f4c6): the root CNode's first
``seL4_NumInitialCaps`` = 16 slots are fixed (``libsel4/include/sel4/bootinfo_types.h``);
``provide_cap`` then adds one cap per frame of the image, per paging structure, per boot
untyped (at most ``KernelMaxNumBootinfoUntypedCaps`` = 230) and stops with the message
below when ``2^KernelRootCNodeSizeBits`` (default 12) slots are used (``src/kernel/boot.c``).
"""

from __future__ import annotations

from pathlib import Path

from sel4vmm.boards import load_board
from sel4vmm.config.load import load_system
from sel4vmm.plan import plan_system
from sel4vmm.plan.root_task import RootTaskImage, cnode_bits_for, root_cnode_slots

MIB = 1 << 20
#: seL4's src/kernel/boot.c provide_cap, with BIT(CONFIG_ROOT_CNODE_SIZE_BITS) = 4096.
KERNEL_MESSAGE = "can't add another cap, all 4096 (=2^CONFIG_ROOT_CNODE_SIZE_BITS) slots used"


def test_slots_for_an_image_of_50_mib() -> None:
    # 12800 image frames + bootinfo and IPC buffer, 26 page tables + 1 + 1 over the range
    # starting at 0x400000, 29 boot untyped, 16 initial caps.
    slots = root_cnode_slots(0x400000, 50 * MIB, boot_untypeds=29)
    assert slots == 16 + 12800 + 2 + 26 + 1 + 1 + 29
    assert cnode_bits_for(slots) == 14


def test_untyped_caps_are_capped_at_the_bootinfo_limit() -> None:
    assert root_cnode_slots(0, 4096, 1000) == root_cnode_slots(0, 4096, 230)


def test_a_small_image_fits_the_default_cnode() -> None:
    assert cnode_bits_for(root_cnode_slots(0x400000, 8 * MIB, boot_untypeds=40)) <= 12


def _plan(realworld: Path, board_dir: str, size: int) -> list[str]:
    path = realworld / f"sel4-gpi/{board_dir}/simple.system"
    plan = plan_system(load_system(path, arch=None), root_task=RootTaskImage("driver.elf", size))
    return [f"{f.severity}: {f.message} | {f.fix}" for f in plan.findings]


def test_an_image_of_50_mib_on_odroid_c4(realworld: Path) -> None:
    findings = _plan(realworld, "odroidc4", 50 * MIB)
    cnode = next(f for f in findings if "root CNode slots" in f)
    assert cnode.startswith("error:") and KERNEL_MESSAGE in cnode
    assert "-DKernelRootCNodeSizeBits=14" in cnode
    pool = next(f for f in findings if "virtual pool" in f)
    assert "at least 0x3200000" in pool
    untyped = next(f for f in findings if "TEST_UNTYPED_SIZE" in f)
    assert untyped.startswith("note:")
    # seed 002: loaded around 0x3000000, the secure monitor starts at 0x5000000.
    secmon = next(f for f in findings if "secmon" in f)
    assert secmon.startswith("error:")
    assert "at 0x3000000 on odroidc4" in secmon and "[0x5000000, 0x5300000)" in secmon
    assert "under 0x2000000 bytes" in secmon and "at or above 0x5300000" in secmon


def test_an_image_that_fits_below_the_secure_monitor(realworld: Path) -> None:
    findings = _plan(realworld, "odroidc4", 8 * MIB)
    assert not any("secmon" in f for f in findings)
    assert any("(the default is enough)" in f for f in findings)


def test_qemu_has_no_secure_monitor_to_run_into(realworld: Path) -> None:
    assert load_board("qemu_virt_aarch64").elfloader_image_base is None
    findings = _plan(realworld, "qemu_arm_virt", 50 * MIB)
    assert not any("ELF loader puts" in f for f in findings)


def test_plan_loader_image_from_the_command_line(realworld: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from sel4vmm.cli import app

    image = tmp_path / "driver.bin"
    with image.open("wb") as out:
        out.truncate(50 * MIB)
    system = realworld / "sel4-gpi/odroidc4/simple.system"
    result = CliRunner().invoke(app, ["plan", str(system), "--loader-image", str(image)])
    assert result.exit_code == 1, result.output  # the image runs into secmon
    assert "-DKernelRootCNodeSizeBits=14" in result.output
    assert "secmon" in result.output
    missing = CliRunner().invoke(
        app, ["plan", str(system), "--loader-image", str(tmp_path / "none")]
    )
    assert missing.exit_code != 0


def test_an_elf_image_is_measured_by_its_segments(tmp_path: Path) -> None:
    from sel4vmm.cli.plan import _root_task_image
    from tests.images.synthetic import elf64

    # Two segments at 0x400000 and 0x2400000 (32 MiB of BSS between): the kernel maps the
    # whole virtual range with frames, so that is what counts, not the small file.
    image = tmp_path / "driver.elf"
    image.write_bytes(
        elf64([(0x400000, b"\x00" * 64, 0x1000), (0x2400000, b"\x00" * 64, 0x1000)], entry=0x400000)
    )
    measured = _root_task_image(image)
    assert (measured.vaddr, measured.size) == (0x400000, 0x2001000)

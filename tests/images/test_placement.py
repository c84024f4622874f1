"""Placement: the checks libvmm and CAmkES make, the ones they miss, and the fixes offered.

Every error must name an address that works; several tests apply the suggested fix and
plan again to prove it.
"""

from __future__ import annotations

import re
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from sel4vmm.errors import Location, Sel4VmmError
from sel4vmm.images.arm64_image import parse_arm64_image
from sel4vmm.images.bzimage import parse_bzimage
from sel4vmm.images.elf import parse_elf
from sel4vmm.images.kernel import KernelRequirements
from sel4vmm.images.placement import (
    CAMKES_GENERATED_DTB_RESERVE,
    DTB_MAX_SIZE,
    ImagePlan,
    PlacementRequest,
    RamWindow,
    plan_images,
)
from tests.images.synthetic import arm64_image, bzimage, elf64, payload

MIB = 1 << 20
RAM = (RamWindow(0x40000000, 256 * MIB),)
LOCATIONS = {
    "ram": Location("simple.system", 12, 5),
    "dtb_addr": Location("vm.camkes", 30, 9),
    "initrd_addr": Location("vm.camkes", 31, 9),
    "kernel_entry_addr": Location("vm.camkes", 29, 9),
}


def linux(image_size: int = 0x1800000, text_offset: int = 0) -> KernelRequirements:
    return parse_arm64_image(
        arm64_image(0x1000, text_offset=text_offset, image_size=image_size)
    ).requirements()


def request(**overrides: object) -> PlacementRequest:
    base = PlacementRequest(
        arch="aarch64",
        ram=RAM,
        kernel=linux(),
        initrd_size=16 * MIB,
        boot_data_size=0x2000,
        locations=LOCATIONS,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


def errors(plan: ImagePlan) -> list[str]:
    return [f.message for f in plan.findings if f.severity == "error"]


def suggested(plan: ImagePlan, name: str) -> int:
    fixes = " ".join(f.fix or "" for f in plan.findings)
    match = re.search(rf"{name} = (0x[0-9a-f]+)", fixes)
    assert match, fixes
    return int(match.group(1), 16)


def test_libvmm_layout_is_chosen_without_findings() -> None:
    plan = plan_images(request())
    assert plan.ok and plan.findings == []
    assert plan.kernel is not None and plan.initrd is not None and plan.boot_data is not None
    assert plan.kernel.addr == 0x40000000 == plan.entry
    assert plan.kernel.size == 0x1800000
    # The initrd sits high, the DTB page-aligned right after it, inside RAM.
    assert plan.initrd.addr % 0x1000 == 0
    assert plan.boot_data.addr == (plan.initrd.end + 0xFFF) & ~0xFFF
    assert plan.boot_data.end <= RAM[0].end


def test_text_offset_is_added_to_the_ram_base() -> None:
    plan = plan_images(request(kernel=linux(text_offset=0x80000)))
    assert plan.kernel is not None and plan.kernel.addr == 0x40080000


def test_unaligned_ram_base_is_refused_like_libvmm() -> None:
    plan = plan_images(request(ram=(RamWindow(0x40100000, 256 * MIB),)))
    [error] = [f for f in plan.findings if f.severity == "error"]
    assert "not 2 MiB aligned" in error.message
    assert error.location == LOCATIONS["ram"]
    assert error.fix is not None and "0x40200000" in error.fix


def test_bss_overlapping_the_dtb_is_caught() -> None:
    # The file (0x1000 bytes) ends far below the DTB; its BSS (image_size) does not.
    plan = plan_images(request(boot_data_addr=0x41000000, kernel=linux(image_size=0x2000000)))
    [message] = errors(plan)
    assert "overlaps" in message and "BSS" in message
    fixed = plan_images(
        request(boot_data_addr=suggested(plan, "dtb_addr"), kernel=linux(image_size=0x2000000))
    )
    assert fixed.ok


def test_overlap_fix_suggests_a_free_address() -> None:
    plan = plan_images(request(initrd_addr=0x4E000000, boot_data_addr=0x4E800000))
    [finding] = [f for f in plan.findings if f.severity == "error"]
    assert finding.location == LOCATIONS["dtb_addr"]
    assert finding.fix is not None
    again = plan_images(request(initrd_addr=0x4E000000, boot_data_addr=suggested(plan, "dtb_addr")))
    assert again.ok, errors(again)


def test_dtb_alignment() -> None:
    plan = plan_images(request(boot_data_addr=0x4F000004))
    assert any("8-byte aligned" in m for m in errors(plan))
    assert suggested(plan, "dtb_addr") == 0x4F000008
    assert plan_images(request(boot_data_addr=0x4F000008)).ok


def test_dtb_over_two_megabytes() -> None:
    plan = plan_images(request(boot_data_size=DTB_MAX_SIZE + 8))
    assert any("refuses device trees over 2 MiB" in m for m in errors(plan))


def test_initrd_outside_ram_gets_a_working_address() -> None:
    plan = plan_images(request(initrd_addr=0x4FF00000))
    [finding] = [f for f in plan.findings if f.severity == "error"]
    assert "not inside guest RAM" in finding.message
    assert finding.location == LOCATIONS["initrd_addr"]
    assert plan_images(request(initrd_addr=suggested(plan, "initrd_addr"))).ok


def test_kernel_larger_than_ram() -> None:
    plan = plan_images(request(kernel=linux(image_size=300 * MIB), initrd_size=None))
    assert any("not inside guest RAM" in m for m in errors(plan))


def test_no_room_for_the_initrd() -> None:
    plan = plan_images(request(kernel=linux(image_size=250 * MIB), initrd_size=10 * MIB))
    assert any("no room for the initrd" in m for m in errors(plan))


def test_camkes_generated_dtb_reserve_counts() -> None:
    # The DTB itself is tiny, but VM_Arm marks 0x50000 bytes allocated at dtb_addr.
    tiny = request(boot_data_addr=0x4F000000, initrd_addr=0x4F040000, initrd_size=MIB)
    assert plan_images(tiny).ok
    reserved = replace(tiny, boot_data_reserve=CAMKES_GENERATED_DTB_RESERVE)
    assert any("overlaps" in m for m in errors(plan_images(reserved)))


def test_zero_length_initrd() -> None:
    plan = plan_images(request(initrd_size=0))
    assert "the initrd is empty (0 bytes)" in errors(plan)


def test_misaligned_kernel_entry_addr() -> None:
    plan = plan_images(request(kernel=linux(text_offset=0x80000), kernel_addr=0x40100000))
    assert plan.findings[0].location == LOCATIONS["kernel_entry_addr"]
    address = suggested(plan, "kernel_entry_addr")
    assert address == 0x40280000
    assert plan_images(request(kernel=linux(text_offset=0x80000), kernel_addr=address)).ok


def test_elf_linked_elsewhere_than_configured() -> None:
    elf = parse_elf(elf64([(0x40000000, payload(0x100), 0x1000)], entry=0x40000000))
    plan = plan_images(request(kernel=elf.requirements(), kernel_addr=0x48000000))
    assert any("must be loaded at 0x40000000" in m for m in errors(plan))


def test_raw_binary_needs_an_address() -> None:
    raw = KernelRequirements(
        format="raw binary",
        arch="aarch64",
        payload_offset=0,
        load_size=0x1000,
        footprint=0x1000,
        needs_configured_address=True,
    )
    plan = plan_images(request(kernel=raw))
    [finding] = [f for f in plan.findings if f.severity == "error"]
    assert finding.fix == "set kernel_entry_addr (e.g. 0x40000000)"
    assert plan_images(request(kernel=raw, kernel_addr=0x40000000)).ok


def test_arm64_initrd_must_share_a_32gib_window_with_the_kernel() -> None:
    ram = (RamWindow(0x40000000, 256 * MIB), RamWindow(0x1000000000, 256 * MIB))
    plan = plan_images(request(ram=ram, initrd_addr=0x1000000000))
    assert any("32 GiB" in m for m in errors(plan))


def test_no_ram() -> None:
    plan = plan_images(request(ram=()))
    assert errors(plan) == ["the VM has no guest RAM to load images into"]


def test_x86_initrd_stays_below_initrd_addr_max() -> None:
    bz = parse_bzimage(bzimage(initrd_addr_max=0x37FFFFFF)).requirements()
    ram = (RamWindow(0, 0x80000000),)
    plan = plan_images(
        PlacementRequest(
            arch="x86_64", ram=ram, kernel=bz, initrd_size=8 * MIB, boot_data_size=0x1100
        )
    )
    assert plan.ok, errors(plan)
    assert plan.kernel is not None and plan.kernel.addr == 0x100000
    assert plan.entry == 0x100200
    assert plan.initrd is not None and plan.initrd.end <= 0x38000000
    assert plan.boot_data is not None and plan.boot_data.role == "zero page"
    high = plan_images(
        PlacementRequest(
            arch="x86_64",
            ram=ram,
            kernel=bz,
            initrd_size=8 * MIB,
            initrd_addr=0x40000000,
            locations=LOCATIONS,
        )
    )
    assert any("initrd_addr_max" in m for m in errors(high))


def test_raise_if_errors_reports_every_problem() -> None:
    plan = plan_images(request(initrd_size=0, boot_data_addr=0x4F000004))
    try:
        plan.raise_if_errors()
    except Sel4VmmError as error:
        assert "and 1 more problem" in error.message
    else:
        raise AssertionError("expected an error")


@settings(max_examples=150, deadline=None)
@given(
    ram_mib=st.integers(min_value=1, max_value=2048),
    image_mib=st.integers(min_value=1, max_value=128),
    text_offset=st.sampled_from([0, 0x80000]),
    initrd_kib=st.one_of(st.none(), st.integers(min_value=1, max_value=200_000)),
    dtb_size=st.one_of(st.none(), st.integers(min_value=64, max_value=0x40000)),
)
def test_chosen_layouts_obey_every_rule(
    ram_mib: int, image_mib: int, text_offset: int, initrd_kib: int | None, dtb_size: int | None
) -> None:
    ram = RamWindow(0x40000000, ram_mib * MIB)
    plan = plan_images(
        PlacementRequest(
            arch="aarch64",
            ram=(ram,),
            kernel=linux(image_size=image_mib * MIB, text_offset=text_offset),
            initrd_size=initrd_kib * 1024 if initrd_kib else None,
            boot_data_size=dtb_size,
        )
    )
    if not plan.ok:
        # Only ever because RAM is too small for what was asked.
        assert (
            image_mib * MIB + (initrd_kib or 0) * 1024 + (dtb_size or 0)
            > ram.size - (text_offset) - 3 * 0x1000
        )
        return
    placed = plan.placed
    for item in placed:
        assert ram.contains(item.addr, item.size)
    for i, a in enumerate(placed):
        for b in placed[i + 1 :]:
            assert not a.overlaps(b)
    assert plan.kernel is not None and (plan.kernel.addr - text_offset) % (2 * MIB) == 0
    if plan.boot_data is not None:
        assert plan.boot_data.addr % 8 == 0

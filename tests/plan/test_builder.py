"""Plans of real and crafted configurations: the map, the resources, every finding."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sel4vmm.config.camkes import read_camkes
from sel4vmm.config.load import load_system
from sel4vmm.plan import plan_system
from sel4vmm.plan.document import plan_json

SEED = """
#include <configurations/vm.h>
#define VM_RAM_BASE {base}
#define VM_RAM_SIZE {size}
assembly {{ composition {{}} configuration {{
vm0.vm_address_config = {{
    "ram_base" : VAR_STRINGIZE(VM_RAM_BASE),
    "ram_paddr_base" : VAR_STRINGIZE({paddr}),
    "ram_size" : VAR_STRINGIZE(VM_RAM_SIZE),
    "dtb_addr" : "{dtb}",
    "initrd_addr" : "{initrd}",
    "kernel_entry_addr" : "{entry}",
}};
vm0.vm_image_config = {{
    "map_one_to_one" : {one},
}};
vm0.untyped_mmios = [{mmios}];
vm0.simple_untyped{bits}_pool = {count};
}} }}
"""


def seed(tmp_path: Path, **changes: object) -> Path:
    values: dict[str, object] = {
        "base": "0x40000000",
        "size": "0x20000000",
        "paddr": "0x40000000",
        "dtb": "0x4f000000",
        "initrd": "0x4d700000",
        "entry": "0x40000000",
        "one": "false",
        "mmios": "",
        "bits": 24,
        "count": 33,
    }
    values.update(changes)
    path = tmp_path / "devices.camkes"
    path.write_text(SEED.format(**values))
    return path


def plan_for(path: Path, board: str = "qemu_virt_aarch64", ram: int | None = None):  # type: ignore[no-untyped-def]
    return plan_system(read_camkes(path), board=board, ram_size=ram)


def messages(plan) -> list[str]:  # type: ignore[no-untyped-def]
    return [f"{f.severity}: {f.message} | {f.fix}" for f in plan.all_findings()]


def test_seed_000_plan_is_clean_and_matches_a_run(tmp_path: Path) -> None:
    plan = plan_for(seed(tmp_path))
    assert not plan.has_errors, messages(plan)
    (vm,) = plan.vms
    assert vm.resources is not None
    # 512 MiB of 4 KiB frames, plus the vGIC vCPU-interface frame VM_Arm maps.
    assert vm.resources.objects[("frame", 12)] == 131072 + 1
    # 256 level-3 + 1 level-2 tables for RAM, one of each for the GIC window.
    assert vm.resources.objects[("page table", 12)] == 257 + 2
    assert vm.resources.untyped_used[(24, False)] == 33
    kinds = [(e.kind, e.name) for e in vm.entries if e.kind != "hole"]
    assert ("ram", "ram") in kinds
    assert ("emulated", "vgic distributor (emulated)") in kinds


def test_pool_too_small_says_how_many_more_at_the_pool(tmp_path: Path) -> None:
    plan = plan_for(seed(tmp_path, count=32))
    (finding,) = [f for f in plan.all_findings() if f.severity == "error"]
    assert "needs 1 more untyped of 2^24" in finding.message
    assert finding.fix is not None and "simple_untyped24_pool = 33" in finding.fix
    assert finding.location is not None and finding.location.line == 18


def test_one_to_one_without_device_untyped(tmp_path: Path) -> None:
    # A VM build of seL4 on qemu-arm-virt reserves 0x40000000..0x60000000 from the kernel
    # (overlay-reserve-vm-memory.dts): that RAM is device untyped nobody gave vm0.
    plan = plan_for(seed(tmp_path, one="true", count=1))
    text = "\n".join(messages(plan))
    assert "no untyped object covers physical address 0x40000000" in text
    assert 'untyped_mmios = ["0x40000000:29"]' in text


def test_one_to_one_seed_plan(tmp_path: Path) -> None:
    plan = plan_for(seed(tmp_path, one="true", count=1, mmios='"0x40000000:29"'))
    assert not plan.has_errors, messages(plan)
    ram = next(e for e in plan.vms[0].entries if e.kind == "ram")
    assert ram.backing == "1:1 frames"
    assert ram.physical == [(0x40000000, 0x20000000)]


def test_paddr_base_differs_with_one_to_one(tmp_path: Path) -> None:
    plan = plan_for(
        seed(tmp_path, one="true", count=1, mmios='"0x40000000:29"', paddr="0x60000000")
    )
    assert any(
        "ram_paddr_base 0x60000000 differs from ram_base 0x40000000" in m for m in messages(plan)
    )


def test_arm64_ram_base_not_2mib_aligned(tmp_path: Path) -> None:
    plan = plan_for(seed(tmp_path, base="0x40100000", dtb="0x4f100000", initrd="0x4d800000"))
    assert any("not 2 MiB aligned" in m and "0x40200000" in m for m in messages(plan))


def test_ram_over_the_gic(tmp_path: Path) -> None:
    plan = plan_for(
        seed(tmp_path, base="0x8000000", size="0x1000000", dtb="0x8800000", initrd="0x8400000")
    )
    text = "\n".join(messages(plan))
    assert "overlaps the board's gic-distributor" in text


def test_dtb_and_initrd_outside_ram_and_overlapping(tmp_path: Path) -> None:
    outside = plan_for(seed(tmp_path, dtb="0x70000000"))
    assert any("dtb_addr 0x70000000 is outside guest RAM" in m for m in messages(outside))
    clash = plan_for(seed(tmp_path, dtb="0x4d700000", initrd="0x4d800000"))
    assert any("overlap" in m and "DTB" in m for m in messages(clash))


def test_qemu_ram_too_small_names_the_m_option(tmp_path: Path) -> None:
    plan = plan_for(seed(tmp_path, count=100), ram=1 << 30)
    text = "\n".join(messages(plan))
    assert "QEMU RAM size 1 GiB is smaller than this configuration needs" in text
    # 100 pools of 16 MiB; at -m 2048M the VM build keeps 512 MiB from the kernel
    # (overlay-reserve-vm-memory.dts), leaving 1.5 GiB: 4096M is the first that holds them.
    assert "-m 4096M" in text
    assert "-m 2048M" not in text


def test_illegal_untyped_size(tmp_path: Path) -> None:
    plan = plan_for(seed(tmp_path, bits=50, count=1))
    assert any("2^50" in m and "cannot have" in m for m in messages(plan))


def test_deprecated_kernel_entry_default(tmp_path: Path) -> None:
    path = seed(tmp_path)
    path.write_text(path.read_text().replace('"kernel_entry_addr" : "0x40000000",', ""))
    plan = plan_for(path)
    assert any("deprecated default ram_base + 0x80000 = 0x40080000" in m for m in messages(plan))


@pytest.mark.parametrize(
    "relative",
    [
        "libvmm/simple/board/qemu_virt_aarch64/simple.system",
        "libvmm/simple/board/odroidc4/simple.system",
        "libvmm/simple/board/maaxboard/simple.system",
        "libvmm/simple/board/zcu102/simple.system",
        "sel4-gpi/qemu_arm_virt/simple.system",
    ],
)
def test_real_microkit_vm_systems_plan_cleanly(realworld: Path, relative: str) -> None:
    spec = load_system(realworld / relative)
    plan = plan_system(spec)
    assert not plan.has_errors, messages(plan)
    for vm in plan.vms:
        ram = [e for e in vm.entries if e.kind == "ram"]
        assert ram and all(e.physical for e in ram)


def test_real_camkes_vm_minimal_on_qemu(realworld: Path) -> None:
    spec = load_system(
        realworld / "camkes-vm-examples/vm_minimal/vm_minimal.camkes", board="qemu-arm-virt"
    )
    plan = plan_system(spec)
    assert not plan.has_errors, messages(plan)
    document = json.loads(json.dumps(plan_json(plan)))
    assert document["schema"] == "sel4vmm-plan" and document["version"] == 1
    (vm,) = document["vms"]
    ram = next(e for e in vm["map"] if e["kind"] == "ram")
    assert (ram["start"], ram["size"]) == (0x40000000, 0x20000000)
    assert vm["resources"]["cnode_size_bits"] == 18


def _camkes_cases() -> list[tuple[str, str]]:
    from sel4vmm.boards import canonical_board_name
    from tests.helpers import REALWORLD

    cases = []
    for path in sorted(REALWORLD.glob("camkes-vm-examples/*/*.camkes")):
        for platform in sorted(d.name for d in path.parent.iterdir() if d.is_dir()):
            if canonical_board_name(platform) is not None:
                cases.append((str(path.relative_to(REALWORLD)), platform))
    return cases


@pytest.mark.parametrize(("relative", "platform"), _camkes_cases())
def test_every_real_camkes_configuration_plans_without_errors(
    realworld: Path, relative: str, platform: str
) -> None:
    plan = plan_system(load_system(realworld / relative, board=platform))
    assert not plan.has_errors, messages(plan)
    assert plan.vms and all(vm.resources is not None for vm in plan.vms)


def test_shared_device_frames_are_cap_copies_not_new_frames(realworld: Path) -> None:
    """vm_multi gives all three VMs the same GIC vCPU-interface frame (mmios)."""
    path = realworld / "camkes-vm-examples/vm_multi/vm_multi.camkes"
    plan = plan_system(load_system(path, board="qemu-arm-virt"))
    assert not plan.has_errors, messages(plan)
    windows = [
        next(e for e in vm.entries if e.name == "vgic vcpu interface").physical for vm in plan.vms
    ]
    assert windows == [[(0x8040000, 0x1000)]] * 3

"""Allocation as the Microkit tool and the kernel do it: fixed-address objects first,
board memory as a VM build of seL4 sees it, and fixes in the file's own language.

Rules, from their sources:

* ``tool/microkit/src/capdl/allocation.rs`` (seL4/microkit
  cfd521630a52f718b8140d504c695edbaf27a915): for each untyped in address order, ordinary
  objects are made "up to" the lowest fixed-address object it covers, then that object;
  ordinary objects never take a fixed object's address.
* ``src/plat/qemu-arm-virt/config.cmake`` (seL4/seL4): with ``KernelArmHypervisorSupport``
  the build appends ``overlay-reserve-vm-memory.dts``, a ``reserved-memory`` node
  ``vm-memory@40000000`` of ``reg = <0x0 0x40000000 0x0 0x20000000>``: not kernel RAM.
"""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from sel4vmm.boards import load_board
from sel4vmm.config.load import load_system
from sel4vmm.plan import SystemPlan, plan_system
from sel4vmm.plan import builder as plan_builder

VMM = """
    <protection_domain name="vmm{n}" priority="254">
        <program_image path="vmm.elf" />
        <map mr="ram{n}" vaddr="0x40000000" perms="rw" />
        <virtual_machine name="linux{n}">
            <vcpu id="0" />
            <map mr="ram{n}" vaddr="0x40000000" perms="rwx" />
        </virtual_machine>
    </protection_domain>"""


def system(tmp_path: Path, *regions: str, vms: int = 1) -> Path:
    """A Microkit system of ``vms`` VMs, VM n mapping memory region ``ram{n}``."""
    body = "".join(regions) + "".join(VMM.format(n=n) for n in range(vms))
    path = tmp_path / "guest.system"
    path.write_text(f'<?xml version="1.0" encoding="UTF-8"?>\n<system>{body}\n</system>\n')
    return path


def plan_of(path: Path, **kwargs: object) -> SystemPlan:
    return plan_system(load_system(path), **kwargs)  # type: ignore[arg-type]


def errors(plan: SystemPlan) -> list[str]:
    return [f"{f.message} | {f.fix}" for f in plan.all_findings() if f.severity == "error"]


def ram_entry(plan: SystemPlan, vm: int = 0) -> tuple[str, list[tuple[int, int]]]:
    entry = next(e for e in plan.vms[vm].entries if e.kind == "ram")
    return entry.backing, entry.physical


def test_qemu_board_reserves_vm_memory_as_the_overlay_does() -> None:
    board = load_board("qemu_virt_aarch64")
    assert [(r.base, r.size) for r in board.reserved_memory] == [(0x40000000, 0x20000000)]
    # A -m smaller than the overlay keeps only the part that exists.
    small = load_board("qemu_virt_aarch64", 0x10000000)
    assert [(r.base, r.size) for r in small.reserved_memory] == [(0x40000000, 0x10000000)]


def test_guest_ram_pinned_at_the_bottom_of_qemu_ram_plans(tmp_path: Path) -> None:
    # The case: libvmm's and LionsOS's driver VMs and the Microkit tutorial.
    path = system(tmp_path, '<memory_region name="ram0" size="0x10000000" phys_addr="0x40000000"/>')
    plan = plan_of(path, board="qemu_virt_aarch64")
    assert errors(plan) == []
    assert ram_entry(plan) == ("1:1 frames", [(0x40000000, 0x10000000)])


def test_regions_without_phys_addr_go_to_kernel_ram_not_the_vm_window(tmp_path: Path) -> None:
    plan = plan_of(system(tmp_path, '<memory_region name="ram0" size="0x10000000"/>'))
    _backing, physical = ram_entry(plan)
    (paddr, size), *_ = physical
    assert paddr >= 0x60000000 and size == 0x10000000


def test_fixed_address_ram_in_kernel_ram_is_not_taken_by_an_earlier_vm(tmp_path: Path) -> None:
    # VM 0 is planned first and its kernel objects (VSpace, TCB, VCPU) and RAM go anywhere;
    # VM 1's RAM is pinned at the start of kernel RAM.  The tool makes VM 1's frames first
    # and VM 0's objects around them, so this plans.
    path = system(
        tmp_path,
        '<memory_region name="ram0" size="0x10000000"/>',
        '<memory_region name="ram1" size="0x8000000" phys_addr="0x60000000"/>',
        vms=2,
    )
    plan = plan_of(path, board="qemu_virt_aarch64")
    assert errors(plan) == []
    assert ram_entry(plan, 1)[1] == [(0x60000000, 0x8000000)]
    _backing, physical = ram_entry(plan, 0)
    for paddr, size in physical:
        assert paddr + size <= 0x60000000 or paddr >= 0x68000000


def test_virtio_snd_plans_on_qemu(realworld: Path) -> None:
    path = realworld / "libvmm/virtio-snd/board/qemu_virt_aarch64/virtio-snd.system"
    plan = plan_of(path)
    assert errors(plan) == []
    driver = next(vm for vm in plan.vms if vm.name == "snd_linux")
    entry = next(e for e in driver.entries if e.kind == "ram")
    assert entry.physical == [(0x40000000, 0x8000000)]


def test_ram_at_a_physical_address_the_board_does_not_have(tmp_path: Path) -> None:
    # Issue 12: guest RAM at physical 0x60000000 on a 512 MiB QEMU board.
    path = system(tmp_path, '<memory_region name="ram0" size="0x10000000" phys_addr="0x60000000"/>')
    plan = plan_of(path, board="qemu_virt_aarch64", ram_size=512 << 20)
    found = [f for f in plan.all_findings() if "not memory on qemu_virt_aarch64" in f.message]
    assert len(found) == 1
    assert found[0].location is not None and found[0].location.line == 8  # the VM's <map>
    assert found[0].fix is not None and "-m 768M" in found[0].fix
    # With enough -m it is RAM, and the finding goes away.
    roomy = plan_of(path, board="qemu_virt_aarch64", ram_size=1 << 30)
    assert not [f for f in roomy.all_findings() if "not memory on" in f.message]


def test_fixed_board_ram_outside_the_board_is_refused(tmp_path: Path) -> None:
    # odroidc4's RAM starts at 0; nothing at 0x100000000 on a 4 GiB board's first bank.
    path = system(
        tmp_path, '<memory_region name="ram0" size="0x10000000" phys_addr="0x200000000"/>'
    )
    plan = plan_of(path, board="odroidc4")
    found = [f for f in plan.all_findings() if "not memory on odroidc4" in f.message]
    assert found and found[0].fix is not None and "inside the board's RAM" in found[0].fix


def test_microkit_fixes_never_speak_camkes(tmp_path: Path) -> None:
    overlapping = system(
        tmp_path,
        '<memory_region name="ram0" size="0x10000000" phys_addr="0x70000000"/>'
        '<memory_region name="ram1" size="0x10000000" phys_addr="0x70000000"/>',
        vms=2,
    )
    too_big = system(tmp_path, '<memory_region name="ram0" size="0x80000000"/>')
    for path, kwargs in ((overlapping, {}), (too_big, {"ram_size": 1 << 30})):
        plan = plan_of(path, board="qemu_virt_aarch64", **kwargs)
        text = "\n".join(errors(plan))
        assert text, "expected an error"
        assert "untyped_mmios" not in text
        assert "simple_untyped" not in text
        assert "a larger -m" not in text


def test_board_ram_shortfall_names_the_m_that_works(tmp_path: Path) -> None:
    path = system(tmp_path, '<memory_region name="ram0" size="0x80000000"/>')
    plan = plan_of(path, board="qemu_virt_aarch64", ram_size=1 << 30)
    short = [f for f in plan.all_findings() if f.message.startswith("board RAM:")]
    assert short
    # 2 GiB of guest RAM beside 512 MiB the VM build reserves: -m 4096M is the first
    # power of two that holds it.
    assert all(f.fix == "run QEMU with -m 4096M (and build seL4 for that much RAM)" for f in short)


def test_cyclic_gc_is_paused_while_planning_and_restored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[bool] = []
    original = plan_builder._plan_on

    def spy(*args: object) -> SystemPlan:
        seen.append(gc.isenabled())
        return original(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(plan_builder, "_plan_on", spy)
    assert gc.isenabled()
    plan_of(system(tmp_path, '<memory_region name="ram0" size="0x1000000"/>'))
    assert seen == [False]
    assert gc.isenabled()
    gc.disable()
    try:
        plan_of(system(tmp_path, '<memory_region name="ram0" size="0x1000000"/>'))
        assert not gc.isenabled()  # a caller's choice is kept
    finally:
        gc.enable()


def test_the_json_board_lists_its_reserved_memory(tmp_path: Path) -> None:
    from sel4vmm.plan.document import plan_json

    plan = plan_of(system(tmp_path, '<memory_region name="ram0" size="0x1000000"/>'))
    board = plan_json(plan, None)["board"]
    assert board["reserved_memory"] == [
        {"base": 0x40000000, "size": 0x20000000, "name": "vm-memory"}
    ]

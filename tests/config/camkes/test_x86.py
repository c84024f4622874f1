"""x86 CAmkES VM configurations (camkes-vm's Init component) read and planned.

The configuration below is written the way camkes-vm-examples' apps/x86/minimal does
(dd7da629a9d9af574b5920c77395e413e3297b64): ``import <VM/vm.camkes>``, an ``Init0``
component with ``VM_INIT_DEF()``, ``VM_PER_VM_COMP_DEF(0)``, ``guest_ram_mb`` and a pool.
The addresses expected are camkes-vm's (ad66b659, ``components/Init/src/main.c``):
``free_anonymous_regions`` starts at 0x10003000; RAM is registered in 512 MiB chunks.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sel4vmm.config.camkes import read_camkes
from sel4vmm.config.spec import RegionKind
from sel4vmm.errors import Sel4VmmError
from sel4vmm.plan import plan_system
from tests.config.camkes.conftest import WriteFile

APP = """
import <VM/vm.camkes>;
#include <configurations/vm.h>
#define VM_GUEST_CMDLINE "console=ttyS0,115200 \\
root=/dev/mem"
component Init0 {{
    VM_INIT_DEF()
}}
assembly {{
    composition {{
        VM_COMPOSITION_DEF()
        VM_PER_VM_COMP_DEF(0)
    }}
    configuration {{
        VM_CONFIGURATION_DEF()
        VM_PER_VM_CONFIG_DEF(0)
        vm0.simple_untyped23_pool = {pool};
        vm0.heap_size = 0x2000000;
        vm0.guest_ram_mb = {ram};
        vm0.kernel_cmdline = VM_GUEST_CMDLINE;
        vm0.kernel_image = "bzimage";
        vm0.initrd_image = "rootfs.cpio";
        vm0.iospace_domain = 0x0f;
    }}
}}
"""


def x86_app(write: WriteFile, ram: int = 128, pool: int = 20) -> Path:
    return write("minimal.camkes", APP.format(ram=ram, pool=pool))


def test_the_vm_is_read_as_x86(write: WriteFile) -> None:
    spec = read_camkes(x86_app(write))
    assert [f for f in spec.findings if f.severity == "error"] == []
    (vm,) = spec.vms
    assert (vm.name, vm.arch) == ("vm0", "x86_64")
    assert [(p.size_bits, p.count) for p in vm.pools] == [(23, 20)]
    assert (vm.ram_base, vm.ram_size) == (0x10003000, 128 << 20)
    assert vm.images.kernel == "bzimage" and vm.images.initrd == "rootfs.cpio"
    assert vm.images.bootargs == "console=ttyS0,115200 root=/dev/mem"
    ram = [(r.guest_addr, r.size) for r in vm.regions if r.kind is RegionKind.RAM]
    assert ram == [(0x0, 0x80000), (0x80000, 0x20000), (0x10003000, 128 << 20)]


def test_large_ram_comes_in_512_mib_chunks(write: WriteFile) -> None:
    (vm,) = read_camkes(x86_app(write, ram=1280)).vms
    chunks = [(r.guest_addr, r.size) for r in vm.regions if r.name.startswith("ram chunk")]
    assert chunks == [(0x10003000, 512 << 20), (0x30003000, 512 << 20), (0x50003000, 256 << 20)]


def test_ram_beyond_the_anonymous_region_is_refused(write: WriteFile) -> None:
    with pytest.raises(Sel4VmmError, match=r"guest_ram_mb = 4096") as caught:
        read_camkes(x86_app(write, ram=4096))
    assert caught.value.location is not None and caught.value.location.line == 19


def test_the_x86_vm_plans_on_the_x86_board(write: WriteFile) -> None:
    plan = plan_system(read_camkes(x86_app(write)))
    assert plan.board.name == "x86_64_generic"
    assert not plan.has_errors, [str(f) for f in plan.all_findings()]
    (vm,) = plan.vms
    assert vm.resources is not None
    assert vm.resources.untyped_given[(23, False)] == 20


def test_a_pool_too_small_for_guest_ram_names_the_pool(write: WriteFile) -> None:
    plan = plan_system(read_camkes(x86_app(write, pool=4)), board="x86_64_generic")
    fixes = [f.fix or "" for f in plan.all_findings() if f.severity == "error"]
    assert any("simple_untyped23_pool = " in fix for fix in fixes)


def test_an_arm_board_is_refused_for_an_x86_vm(write: WriteFile) -> None:
    with pytest.raises(Sel4VmmError, match="is x86_64 but board qemu_virt_aarch64"):
        plan_system(read_camkes(x86_app(write)), board="qemu_virt_aarch64")

"""CAmkES cross-VM dataports and events (camkes-vm-examples' vm_cross_connector)."""

from __future__ import annotations

from pathlib import Path

from sel4vmm.config.load import load_system
from sel4vmm.config.spec import RegionKind
from tests.config.camkes.conftest import WriteFile
from tests.helpers import REALWORLD

CROSS = REALWORLD / "camkes-vm-examples/vm_cross_connector/vm_cross_connector.camkes"


def _cross(platform: str = "qemu-arm-virt"):  # type: ignore[no-untyped-def]
    return load_system(CROSS, defines={"PLAT": platform})


def test_each_cross_vm_dataport_is_an_event_page_then_the_dataport() -> None:
    # cross_vm_connection.c's initialise_connections: event bar at the cursor, dataport one
    # dataport-size on, cursor += 2 * size; base 0xDF000000 on qemu-arm-virt.
    spec = _cross()
    vm = spec.vms[0]
    windows = [
        (r.name, r.kind, r.guest_addr, r.size) for r in vm.regions if r.guest_addr >= 0xDF00_0000
    ]
    assert windows == [
        ("cross_vm_conn_0 events", RegionKind.EMULATED, 0xDF00_0000, 0x1000),
        ("cross_vm_conn_0", RegionKind.SHARED, 0xDF00_1000, 0x1000),
        ("cross_vm_conn_1 events", RegionKind.EMULATED, 0xDF00_2000, 0x1000),
        ("cross_vm_conn_1", RegionKind.SHARED, 0xDF00_3000, 0x1000),
    ]
    shared = spec.shared_region("cross_vm_conn_0")
    assert shared is not None
    assert [(m.owner, m.owner_kind, m.addr) for m in shared.mappings] == [
        ("crossvm_init", "component", None),
        ("vm0", "vm", 0xDF00_1000),
    ]


def test_events_go_through_connection_zero_with_the_platforms_free_interrupt() -> None:
    spec = _cross()
    assert [(n.sender, n.sender_kind, n.receiver, n.receiver_kind) for n in spec.notifications] == [
        ("vm0", "vm", "crossvm_init", "component"),
        ("crossvm_init", "component", "vm0", "vm"),
    ]
    # camkes-vm ad66b65 plat_include/qemu-arm-virt/plat/vmlinux.h: { 50 + IRQ_SPI_OFFSET }.
    assert [(d.layout, d.base, d.irq, d.index) for d in spec.doorbells] == [
        ("camkes-crossvm", 0xDF00_0000, 82, 0),
        ("camkes-crossvm", 0xDF00_2000, 82, 1),
    ]


def test_other_platforms_use_the_examples_other_base() -> None:
    spec = _cross("exynos5422")
    assert [d.base for d in spec.doorbells] == [0x3F00_0000, 0x3F00_2000]
    assert {d.irq for d in spec.doorbells} == {92 + 32}


APP = """
import <std_connector.camkes>;
component Peer {{
    dataport Buf(8192) dest;
}}
component VM {{
    dataport Buf(8192) crossvm_dp_0;
}}
assembly {{
    composition {{
        component VM vm0;
        component Peer peer;
        connection seL4SharedDataWithCaps conn0(from peer.dest, to vm0.crossvm_dp_0);
    }}
    configuration {{
        vm0.vm_address_config = {{"ram_base": "0x40000000", "ram_paddr_base": "0x40000000",
            "ram_size": "0x1000000", "dtb_addr": "0x40f00000", "initrd_addr": "0x40e00000",
            "kernel_entry_addr": "0x40080000"}};
        vm0.simple_untyped24_pool = 4;
        {settings}
    }}
}}
"""


def _app(write: WriteFile, settings: str) -> Path:
    return write("app/app.camkes", APP.format(settings=settings))


def test_the_size_attribute_of_the_vm_end_sizes_the_dataport(write: WriteFile) -> None:
    spec = load_system(_app(write, "vm0.crossvm_dp_0_size = 0x2000;"))
    shared = spec.shared_region("conn0")
    assert shared is not None and shared.size == 0x2000
    # Not qemu-arm-virt: the example's other CONNECTION_BASE_ADDRESS.
    assert [d.base for d in spec.doorbells] == [0x3F00_0000]
    window = next(r for r in spec.vms[0].regions if r.name == "conn0")
    assert window.guest_addr == 0x3F00_2000


def test_setting_both_sizes_is_the_templates_error(write: WriteFile) -> None:
    spec = load_system(_app(write, "vm0.crossvm_dp_0_size = 0x2000; conn0.size = 0x2000;"))
    # global-components e4fbff8 templates/seL4SharedDataWithCaps.template.c.
    assert [f.message for f in spec.findings if f.severity == "error"] == [
        "Duplicate setting for conn0 dataport size: Cannot set both conn0.size and "
        "vm0.crossvm_dp_0_size"
    ]


def test_a_size_no_page_divides_is_the_templates_error(write: WriteFile) -> None:
    spec = load_system(_app(write, "vm0.crossvm_dp_0_size = 100;"))
    errors = [f for f in spec.findings if f.severity == "error"]
    # global-components e4fbff8 templates/seL4SharedDataWithCaps.template.c.
    assert [f.message for f in errors] == [
        "Setting vm0.crossvm_dp_0_size does not meet minimum size requirements. 100 must be "
        "at least 4096 and 4096 aligned"
    ]
    assert errors[0].location is not None and errors[0].location.line > 0


def test_a_connection_with_paddr_is_the_guests_own_ram_not_a_cross_vm_dataport() -> None:
    # vm_introspect: vm_memdev.paddr = VM_RAM_BASE shows guest RAM to md; the example's
    # cross_vm_connection.c lists only introspect_data_handle.
    path = REALWORLD / "camkes-vm-examples/vm_introspect/vm_introspect.camkes"
    spec = load_system(path, defines={"PLAT": "qemu-arm-virt"})
    assert [r.name for r in spec.shared_regions] == ["conn_introspect_data"]
    assert [d.base for d in spec.doorbells] == [0xDF00_0000]

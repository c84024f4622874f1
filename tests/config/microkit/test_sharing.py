"""Shared memory regions and channels between two VMMs' guests, as the spec states them."""

from __future__ import annotations

from pathlib import Path

from sel4vmm.config.microkit import read_microkit
from sel4vmm.config.microkit.sharing import MICROKIT_DOORBELL_BASE, MICROKIT_DOORBELL_INTID
from sel4vmm.config.spec import RegionKind
from tests.helpers import REALWORLD

DATA = Path(__file__).parent / "data"
TWO_VMS = DATA / "shared_two_vms.system"


def test_a_region_mapped_into_two_vms_is_one_shared_region_with_two_mappings() -> None:
    spec = read_microkit(TWO_VMS)
    assert [f for f in spec.findings if f.severity == "error"] == []
    shared = spec.shared_region("shared_buf")
    assert shared is not None
    assert shared.size == 0x2000
    assert [(m.owner, m.owner_kind, m.addr) for m in shared.mappings] == [
        ("alpha", "vm", 0x2000_0000),
        ("beta", "vm", 0x2800_0000),
    ]
    for vm in spec.vms:
        window = next(r for r in vm.regions if r.name == "shared_buf")
        assert window.kind is RegionKind.SHARED
        assert window.shared == "shared_buf"


def test_a_region_shared_by_a_vm_and_its_vmm_names_the_vmm() -> None:
    shared = read_microkit(TWO_VMS).shared_region("mailbox")
    assert shared is not None
    assert [(m.owner, m.owner_kind, m.addr) for m in shared.mappings] == [
        ("VMM_ALPHA", "component", 0x3000_0000),
        ("alpha", "vm", 0x2100_0000),
    ]


def test_guest_ram_seen_only_by_its_own_vmm_is_not_listed_as_shared() -> None:
    spec = read_microkit(TWO_VMS)
    assert spec.shared_region("ram_alpha") is None
    assert spec.shared_region("ram_beta") is None


def test_a_channel_between_two_vmms_is_a_notification_each_way() -> None:
    spec = read_microkit(TWO_VMS)
    assert [(n.sender, n.sender_id, n.receiver, n.receiver_id) for n in spec.notifications] == [
        ("alpha", 1, "beta", 2),
        ("beta", 2, "alpha", 1),
    ]
    assert [(d.vm, d.layout, d.base, d.irq) for d in spec.doorbells] == [
        ("alpha", "microkit", MICROKIT_DOORBELL_BASE, MICROKIT_DOORBELL_INTID),
        ("beta", "microkit", MICROKIT_DOORBELL_BASE, MICROKIT_DOORBELL_INTID),
    ]
    for vm in spec.vms:
        doorbell = next(r for r in vm.regions if r.name == "doorbell")
        assert (doorbell.kind, doorbell.guest_addr) == (RegionKind.EMULATED, 0x0B10_0000)


def test_an_end_that_may_not_notify_gives_one_direction_only(tmp_path: Path) -> None:
    text = TWO_VMS.read_text().replace(
        '<end pd="VMM_BETA" id="2" />', '<end pd="VMM_BETA" id="2" notify="false" />'
    )
    path = tmp_path / "one_way.system"
    path.write_text(text)
    spec = read_microkit(path)
    assert [(n.sender, n.receiver) for n in spec.notifications] == [("alpha", "beta")]


def test_libvmm_simple_system_shares_nothing() -> None:
    spec = read_microkit(REALWORLD / "libvmm/simple/board/qemu_virt_aarch64/simple.system")
    assert spec.shared_regions == []
    assert spec.notifications == []
    assert spec.doorbells == []


def test_two_maps_at_overlapping_guest_addresses_keep_the_tools_message(tmp_path: Path) -> None:
    # The message of seL4/microkit cfd5216, tool/microkit/tests/test.rs
    # virtual_machine::test_overlapping_maps, for the same region mapped twice.
    text = TWO_VMS.read_text().replace(
        '<map mr="mailbox" vaddr="0x21000000" perms="rw" />',
        '<map mr="shared_buf" vaddr="0x20001000" perms="rw" />',
    )
    path = tmp_path / "twice.system"
    path.write_text(text)
    spec = read_microkit(path)
    # (the tool prints it after "Error: " and before " @ file:line:col").
    messages = [f.message for f in spec.findings if f.severity == "error"]
    assert messages == [
        "map for 'shared_buf' has virtual address range [0x20001000..0x20003000) which "
        "overlaps with map for 'shared_buf' [0x20000000..0x20002000) in virtual machine 'alpha'"
    ]

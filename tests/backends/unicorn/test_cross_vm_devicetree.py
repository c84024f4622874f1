"""What the DTB the VMM generates tells each VM of a several-VM system (issue 14 item 4).

The nodes follow the bindings Linux reads: a shared window and a doorbell page are
``generic-uio`` devices (as libvmm's examples describe memory shared with a UIO driver,
``../shared/realworld/libvmm/virtio-snd/board/qemu_virt_aarch64/snd_driver_vm/dts/overlays/io.dts``),
named by ``linux,uio-name``; the doorbell's interrupt is in the GIC's three cells
(Linux ``Documentation/devicetree/bindings/interrupt-controller/arm,gic.yaml``: "The 1st
cell is the interrupt type; 0 for SPI interrupts, 1 for PPI interrupts", "The 2nd cell
contains the interrupt number for the interrupt type. SPI interrupts are in the range
[0-987]", "4 = active high level-sensitive").
"""

from __future__ import annotations

from pathlib import Path

from sel4vmm.backends.unicorn.board import Console, GuestLayout
from sel4vmm.backends.unicorn.cross_vm import device_tree_nodes, wire_boards
from sel4vmm.backends.unicorn.devicetree import (
    CrossVmNodes,
    DoorbellNode,
    SharedWindowNode,
)
from sel4vmm.backends.unicorn.system import EmulatedSystem
from sel4vmm.config.load import load_system
from sel4vmm.images.fdt_tree import Fdt, read_fdt
from tests.helpers import REALWORLD

TWO_VMS = Path(__file__).parents[2] / "config/microkit/data/shared_two_vms.system"
CROSS = REALWORLD / "camkes-vm-examples/vm_cross_connector/vm_cross_connector.camkes"


def _cells(*values: int) -> bytes:
    return b"".join(v.to_bytes(4, "big") for v in values)


def _trees(names: tuple[str, ...] = ("alpha", "beta")) -> dict[str, Fdt]:
    spec = load_system(TWO_VMS)
    layouts = [GuestLayout(name=name, ram_size=16 << 20, one_to_one=False) for name in names]
    system = EmulatedSystem(layouts, fix_language="microkit")
    for layout in layouts:
        system.add_board(layout, Console())
    try:
        wire_boards(spec, system.boards)
        return {b.layout.name: read_fdt(b.device_tree()) for b in system.boards}
    finally:
        system.close()


def test_each_vm_is_told_its_windows_its_doorbell_and_its_peers() -> None:
    trees = _trees()
    alpha, beta = trees["alpha"], trees["beta"]
    chosen = alpha.find("/chosen")
    assert chosen is not None and chosen.properties["sel4vmm,vm"] == b"alpha\0"
    window = alpha.find("/shared_buf@20000000")
    assert window is not None
    assert window.properties == {
        "compatible": b"sel4vmm,shared-memory\0generic-uio\0",
        "reg": _cells(0, 0x2000_0000, 0, 0x2000),
        "linux,uio-name": b"shared_buf\0",
        "sel4vmm,shared-with": b"beta\0",
    }
    mailbox = alpha.find("/mailbox@21000000")
    assert mailbox is not None and mailbox.properties["sel4vmm,shared-with"] == b"VMM_ALPHA\0"
    bell = alpha.find("/doorbell@b100000")
    assert bell is not None
    assert bell.properties == {
        "compatible": b"sel4vmm,microkit-doorbell\0generic-uio\0",
        "reg": _cells(0, 0x0B10_0000, 0, 0x1000),
        # GIC_SPI 50 = INTID 82, level high.
        "interrupts": _cells(0, 50, 4),
        "linux,uio-name": b"doorbell\0",
        "sel4vmm,channels": _cells(1),
        "sel4vmm,channel-peers": b"beta\0",
    }
    # beta maps the same region at its own address and knows the channel as 2.
    assert beta.find("/shared_buf@28000000") is not None
    assert beta.find("/mailbox@21000000") is None
    beta_bell = beta.find("/doorbell@b100000")
    assert beta_bell is not None
    assert beta_bell.properties["sel4vmm,channels"] == _cells(2)
    assert beta_bell.properties["sel4vmm,channel-peers"] == b"alpha\0"


def test_a_vm_run_alone_is_given_no_channel_to_the_vm_left_out() -> None:
    alpha = _trees(("alpha",))["alpha"]
    bell = alpha.find("/doorbell@b100000")
    assert bell is not None
    assert "sel4vmm,channels" not in bell.properties
    # The window is still mapped (the VM left out simply never writes it).
    assert alpha.find("/shared_buf@20000000") is not None


def test_a_read_only_mapping_is_marked_read_only(tmp_path: Path) -> None:
    text = TWO_VMS.read_text().replace(
        '<map mr="shared_buf" vaddr="0x28000000" perms="rw" />',
        '<map mr="shared_buf" vaddr="0x28000000" perms="r" />',
    )
    path = tmp_path / "read_only.system"
    path.write_text(text)
    spec = load_system(path)
    beta = next(vm for vm in spec.vms if vm.name == "beta")
    nodes = device_tree_nodes(spec, beta)
    assert nodes.shared == (SharedWindowNode("shared_buf", 0x2800_0000, 0x2000, False, ("alpha",)),)


def test_camkes_event_pages_and_dataports_are_described() -> None:
    spec = load_system(CROSS, defines={"PLAT": "qemu-arm-virt"})
    nodes = device_tree_nodes(spec, spec.vms[0])
    assert isinstance(nodes, CrossVmNodes)
    assert [bell.name for bell in nodes.doorbells] == ["cross_vm_conn_0", "cross_vm_conn_1"]
    assert nodes.doorbells[0] == DoorbellNode(
        "cross_vm_conn_0", 0xDF00_0000, 0x1000, 82, "camkes-crossvm"
    )
    assert [(w.name, w.base) for w in nodes.shared] == [
        ("cross_vm_conn_0", 0xDF00_1000),
        ("cross_vm_conn_1", 0xDF00_3000),
    ]

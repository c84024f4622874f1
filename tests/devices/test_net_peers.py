"""A virtio-net card's MAC and peer (``run --net``): loopback, a switch port, refusals."""

from __future__ import annotations

import pytest

from sel4vmm.devices.net_peers import connect_card, mac_for_vm, mac_from_property
from sel4vmm.devices.net_switch import VirtualSwitch, is_group_address
from sel4vmm.errors import Sel4VmmError

ARP_REQUEST = b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x06" + bytes(28)


def test_a_vm_name_gives_a_stable_locally_administered_unicast_mac() -> None:
    mac = mac_for_vm("linux_a")
    assert mac == mac_for_vm("linux_a") and len(mac) == 6
    assert mac[0] & 0x02 and not is_group_address(mac)
    assert mac != mac_for_vm("linux_b")


def test_local_mac_address_must_be_six_unicast_bytes() -> None:
    assert mac_from_property(b"\x02\x00\x00\x00\x00\x07", "/net", "g.dts") == bytes(
        [2, 0, 0, 0, 0, 7]
    )
    with pytest.raises(Sel4VmmError, match="is 4 bytes, not the 6") as caught:
        mac_from_property(b"\x02\x00\x00\x00", "/virtio-net@160000", "g.dts")
    assert caught.value.location is not None and caught.value.fix
    with pytest.raises(Sel4VmmError, match="01:00:5e:00:00:01 is a multicast address"):
        mac_from_property(b"\x01\x00\x5e\x00\x00\x01", "/virtio-net@160000", "g.dts")


def test_a_loopback_card_hears_its_own_frames() -> None:
    card = connect_card(
        mac_for_vm("a"), "loopback", node="/net", port_name="a", switch=None, source="g"
    )
    assert card.loopback is not None and card.port is None
    card.device.peer.send(ARP_REQUEST)  # type: ignore[union-attr]
    assert card.loopback.frames == 1
    assert card.report()["backend"] == "loopback"


def test_switch_cards_are_source_locked_ports_named_after_their_vm() -> None:
    switch = VirtualSwitch()
    a = connect_card(
        mac_for_vm("a"), "switch", node="/net", port_name="a", switch=switch, source="g"
    )
    b = connect_card(
        mac_for_vm("b"), "switch", node="/net", port_name="b", switch=switch, source="g"
    )
    assert set(switch.ports) == {"a", "b"}
    assert a.port is not None and a.port.locked_source == a.device.mac
    # b's broadcast reaches a (and is counted on both ports); a spoofed source is dropped.
    frame = b"\xff" * 6 + b.device.mac + b"\x08\x06" + bytes(46)
    assert b.port is not None
    b.port.send(frame)
    b.port.send(b"\xff" * 6 + a.device.mac + b"\x08\x06" + bytes(46))
    report = b.report()
    assert report["switch_port"] == {
        "name": "b",
        "rx_frames": 1,
        "rx_bytes": 60,
        "tx_frames": 0,
        "tx_bytes": 0,
        "flooded_frames": 1,
        "dropped_runt": 0,
        "dropped_oversize": 0,
        "dropped_queue_full": 0,
        "dropped_spoofed": 1,
        "dropped": 1,
    }
    assert a.port.stats.tx_frames == 1
    a.disconnect()
    assert a.port.device is None and switch.lookup(a.device.mac) is None


def test_a_second_card_with_the_same_mac_or_port_is_refused() -> None:
    switch = VirtualSwitch()
    mac = bytes([2, 0, 0, 0, 0, 1])
    connect_card(mac, "switch", node="/net", port_name="a", switch=switch, source="a.dts")
    with pytest.raises(
        Sel4VmmError, match="02:00:00:00:00:01 is already the address of switch port 'a'"
    ):
        connect_card(mac, "switch", node="/net", port_name="b", switch=switch, source="b.dts")
    with pytest.raises(Sel4VmmError, match="already has a port 'a'"):
        connect_card(
            bytes([2, 0, 0, 0, 0, 2]),
            "switch",
            node="/net",
            port_name="a",
            switch=switch,
            source="b",
        )
    assert set(switch.ports) == {"a"}

"""Switching rules over random traffic: no hairpin, floods reach every other port once,
learned unicast reaches exactly the port its destination was last seen on, and the MAC
table and the per-port queues never grow past their bounds."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sel4vmm.devices import net_switch
from sel4vmm.devices.net_switch import VirtualSwitch
from sel4vmm.devices.virtio.net import VirtioNet

PORTS = 4
UNICAST = [bytes.fromhex(f"5254000000{i:02x}") for i in range(8)]
GROUP = [net_switch.BROADCAST, bytes.fromhex("01005e000001"), bytes.fromhex("333300000001")]


class RecordingNet(VirtioNet):
    """A card with no driver: frames wait in its bounded queue; the test reads them there."""

    def __init__(self, mac: bytes) -> None:
        super().__init__(mac)
        self.arrived: list[bytes] = []

    def receive(self, frame: bytes) -> bool:
        accepted = super().receive(frame)
        if accepted:
            self.arrived.append(frame)
        return accepted


traffic = st.lists(
    st.tuples(
        st.integers(0, PORTS - 1),
        st.sampled_from(UNICAST + GROUP),
        st.sampled_from(UNICAST + GROUP),
        st.integers(0, 1600),
    ),
    max_size=60,
)


@given(traffic, st.sampled_from([2, 4, 16]), st.sampled_from([1, 3, 64]))
@settings(max_examples=150, deadline=None)
def test_switching_rules_hold_for_any_traffic(
    frames: list[tuple[int, bytes, bytes, int]], table_size: int, depth: int
) -> None:
    switch = VirtualSwitch(mac_table_size=table_size, queue_depth=depth)
    cards = []
    for i in range(PORTS):
        card = RecordingNet(UNICAST[i])
        switch.port(f"p{i}").attach(card)
        cards.append(card)
    #: Where each unicast source was last seen (exact while the table holds every address).
    last_seen: dict[bytes, int] = {}
    for serial, (sender, destination, source, payload) in enumerate(frames):
        frame = destination + source + serial.to_bytes(2, "big") + bytes(payload)
        before = [len(card.arrived) for card in cards]
        dropped_before = [switch.ports[f"p{i}"].stats.dropped_queue_full for i in range(PORTS)]
        switch.ports[f"p{sender}"].send(frame)
        got = {
            i
            for i, card in enumerate(cards)
            if len(card.arrived) > before[i]
            or switch.ports[f"p{i}"].stats.dropped_queue_full > dropped_before[i]
        }
        assert sender not in got  # never back out of its own port
        if not net_switch.ETH_HLEN <= len(frame) <= net_switch.ETH_FRAME_LEN:
            assert got == set()
            continue
        for i in got:
            if len(cards[i].arrived) > before[i]:
                delivered = cards[i].arrived[-1]
                assert delivered[: len(frame)] == frame
                assert len(delivered) == max(len(frame), net_switch.ETH_ZLEN)
        if not net_switch.is_group_address(source):
            last_seen[source] = sender  # learned before the frame is switched
        others = set(range(PORTS)) - {sender}
        if net_switch.is_group_address(destination):
            assert got == others
        elif table_size >= len(UNICAST):  # nothing was ever forgotten: the port is exact
            known = last_seen.get(destination)
            if known is None:
                assert got == others
            else:
                assert got == ({known} if known != sender else set())
        else:  # maybe forgotten: flooded, or to one learned port, or filtered
            assert got == others or len(got) <= 1
        assert len(switch.learned()) <= table_size
    for card in cards:
        assert len(card.arrived) <= depth  # nothing drained them: the bound held

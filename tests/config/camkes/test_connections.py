"""Component bodies and connections as the CAmkES reader reads them (config/camkes/connections)."""

from __future__ import annotations

import pytest

from sel4vmm.config.camkes.connections import DEFAULT_BUF_SIZE
from sel4vmm.config.camkes.parse import parse_text
from sel4vmm.errors import Sel4VmmError

TEXT = """
component Peer {
    control;
    dataport Buf(8192) dest;
    dataport Buf src;
    dataport MyStruct_t typed;
    emits Done done;
    consumes Ready ready;
    provides Iface rpc;
    attribute int x = 3;
}
assembly {
    composition {
        component Peer peer;
        connection seL4SharedDataWithCaps c0(from peer.dest, to vm0.crossvm_dp_0);
        connection seL4Notification ev(from vm0.ready, from vm1.ready, to peer.ready);
        connection seL4RPCCall odd(from peer, to);
    }
}
"""


def test_interfaces_of_a_component_body() -> None:
    parsed = parse_text(TEXT, "app.camkes")
    (peer,) = parsed.components
    assert [(i.kind, i.type_name, i.name, i.size) for i in peer.interfaces] == [
        ("dataport", "Buf", "dest", 8192),
        ("dataport", "Buf", "src", DEFAULT_BUF_SIZE),
        ("dataport", "MyStruct_t", "typed", None),
        ("emits", "Done", "done", None),
        ("consumes", "Ready", "ready", None),
    ]


def test_connection_ends() -> None:
    parsed = parse_text(TEXT, "app.camkes")
    by_name = {c.name: c for c in parsed.connections}
    c0 = by_name["c0"]
    assert c0.type_name == "seL4SharedDataWithCaps"
    assert [(e.instance, e.interface) for e in c0.from_ends] == [("peer", "dest")]
    assert [(e.instance, e.interface) for e in c0.to_ends] == [("vm0", "crossvm_dp_0")]
    ev = by_name["ev"]
    assert [e.instance for e in ev.from_ends] == ["vm0", "vm1"]
    # Ends this reader cannot read are left out, never an error.
    assert by_name["odd"].from_ends == () and by_name["odd"].to_ends == ()
    # The instance declaration is still read as before.
    assert [(i.type_name, i.name) for i in parsed.instances] == [("Peer", "peer")]


def test_an_unclosed_component_body_is_the_readers_bracket_error() -> None:
    with pytest.raises(Sel4VmmError, match="'\\{' is never closed"):
        parse_text("component Peer {\n dataport Buf(4096) dest;\n", "bad.camkes")

"""``<channel>``: a pair of ``<end>``s joining two PDs for notifications and PPCs.

Each end names a PD and the id (badge bit) the channel has *in that PD*; ``pp`` marks the
end that may make protected procedure calls into the other.  Channels are read after all
PDs because ends refer to PDs by name.
"""

from __future__ import annotations

from collections.abc import Container

from sel4vmm.config.microkit.attributes import (
    check_attributes,
    optional_bool,
    required,
    required_decimal,
)
from sel4vmm.config.microkit.diagnostics import MicrokitError
from sel4vmm.config.microkit.limits import PD_MAX_ID
from sel4vmm.config.microkit.model import Channel, ChannelEnd
from sel4vmm.config.microkit.numbers import I64
from sel4vmm.config.microkit.versions import END_PP_FIX_1_4, MicrokitVersion, attributes
from sel4vmm.config.microkit.xmlsource import XmlElement


def _end(element: XmlElement, pd_names: Container[str], version: MicrokitVersion) -> ChannelEnd:
    if element.tag != "end":
        raise MicrokitError.colon(
            f"invalid XML element '{element.tag}'",
            element.location,
            fix="a <channel> holds exactly two <end> elements",
        )
    check_attributes(
        element,
        attributes(version, "end", ("pd", "id", "pp", "notify", "setvar_id")),
        fixes={"pp": END_PP_FIX_1_4} if version is MicrokitVersion.V1_4 else None,
    )
    pd = required(element, "pd")
    end_id = required_decimal(element, "id", I64)
    if end_id > PD_MAX_ID:
        raise MicrokitError.on_element(element, f"id must be < {PD_MAX_ID + 1}")
    if end_id < 0:
        raise MicrokitError.on_element(element, "id must be >= 0")
    notify = optional_bool(element, "notify")
    pp = optional_bool(element, "pp")
    if pd not in pd_names:
        raise MicrokitError.on_element(
            element, f"invalid PD name '{pd}'", fix="name a protection domain of this system"
        )
    return ChannelEnd(
        pd=pd,
        id=end_id,
        notify=True if notify is None else notify,
        pp=bool(pp),
        setvar_id=element.get("setvar_id"),
    )


def parse_channel(
    element: XmlElement,
    pd_names: Container[str],
    version: MicrokitVersion = MicrokitVersion.V2,
) -> Channel:
    check_attributes(element, ())
    ends = [_end(child, pd_names, version) for child in element.children]
    if len(ends) != 2:
        raise MicrokitError.on_element(element, "exactly two end elements must be specified")
    end_a, end_b = ends
    if end_a.pp and end_b.pp:
        raise MicrokitError.on_element(
            element,
            "cannot ppc bidirectionally",
            fix='set pp="true" on one end only (the caller)',
        )
    return Channel(end_a, end_b, element.location)

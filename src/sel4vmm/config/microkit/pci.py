"""PCI addresses (``bus:device.function``, hexadecimal) for x86 MSIs and IOMMU devices.

The tool names each failure precisely ("failed to parse PCI device", "PCI bus must be
within [0..255]"); :func:`parse_pci_address` raises :class:`PciAddressError` with the same
text so callers can embed it in their own message.
"""

from __future__ import annotations

from sel4vmm.config.microkit.model import PciAddress
from sel4vmm.config.microkit.numbers import I64, NumberFormatError, parse_hex_field

PCI_BUS_MAX = 255
PCI_DEVICE_MAX = 31
PCI_FUNCTION_MAX = 7


class PciAddressError(ValueError):
    """Not a valid PCI address; ``str()`` is the tool's reason."""


def _field(text: str, what: str, maximum: int) -> int:
    try:
        value = parse_hex_field(text, I64)
    except NumberFormatError:
        raise PciAddressError(f"failed to parse PCI {what}") from None
    if not 0 <= value <= maximum:
        raise PciAddressError(f"PCI {what} must be within [0..{maximum}]")
    return value


def parse_pci_address(text: str) -> PciAddress:
    """``"0:3.0"`` -> ``PciAddress(0, 3, 0)``; bus, then device, then function are checked."""
    bus_text, colon, rest = text.partition(":")
    device_text, dot, function_text = rest.partition(".")
    if not colon or not dot:
        raise PciAddressError("expected PCI address in bus:device.function form")
    return PciAddress(
        bus=_field(bus_text, "bus", PCI_BUS_MAX),
        device=_field(device_text, "device", PCI_DEVICE_MAX),
        function=_field(function_text, "function", PCI_FUNCTION_MAX),
    )

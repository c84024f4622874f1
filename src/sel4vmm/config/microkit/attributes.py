"""Reading attributes off an element with the Microkit tool's checks and wording.

Every element kind has a fixed attribute list (anything else is "invalid attribute"),
some attributes are required ("missing required attribute"), numbers follow
:mod:`~sel4vmm.config.microkit.numbers` and booleans are exactly ``true``/``false``.
"""

from __future__ import annotations

from collections.abc import Iterable

from sel4vmm.config.microkit.diagnostics import MicrokitError
from sel4vmm.config.microkit.numbers import U64, IntegerType, NumberFormatError, parse_integer
from sel4vmm.config.microkit.xmlsource import XmlElement


def check_attributes(element: XmlElement, allowed: Iterable[str]) -> None:
    """Reject the first attribute (in document order) that ``element`` may not carry."""
    permitted = set(allowed)
    for name in element.attributes:
        if name not in permitted:
            listed = ", ".join(sorted(permitted)) or "none"
            raise MicrokitError.on_element(
                element,
                f"invalid attribute '{name}'",
                fix=f"remove it; <{element.tag}> accepts: {listed}",
            )


def required(element: XmlElement, name: str) -> str:
    value = element.get(name)
    if value is None:
        raise MicrokitError.missing_attribute(element, name)
    return value


def optional_number(element: XmlElement, name: str, kind: IntegerType = U64) -> int | None:
    value = element.get(name)
    if value is None:
        return None
    return _number(element, name, value, kind)


def required_number(element: XmlElement, name: str, kind: IntegerType = U64) -> int:
    return _number(element, name, required(element, name), kind)


def number_text(element: XmlElement, name: str, text: str, kind: IntegerType = U64) -> int:
    """Parse ``text`` taken from attribute ``name`` (or part of it, e.g. a duration)."""
    return _number(element, name, text, kind)


def _number(element: XmlElement, name: str, value: str, kind: IntegerType) -> int:
    try:
        return parse_integer(value, kind)
    except NumberFormatError as reason:
        raise MicrokitError.colon(
            f'failed to parse attribute `{name}="{value}"` as integer on element '
            f"<{element.tag}>: {reason}",
            element.location,
            fix="write a decimal or 0x-prefixed hexadecimal number (underscores allowed)",
        ) from None


def optional_bool(element: XmlElement, name: str) -> bool | None:
    value = element.get(name)
    if value is None:
        return None
    if value == "true":
        return True
    if value == "false":
        return False
    raise MicrokitError.colon(
        f'failed to parse attribute `{name}="{value}"` as boolean on element '
        f"<{element.tag}>: must be 'true' or 'false'",
        element.location,
        fix=f'write {name}="true" or {name}="false"',
    )

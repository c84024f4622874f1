"""Reading attributes off an element with the Microkit tool's checks and wording.

Every element kind has a fixed attribute list (anything else is "invalid attribute"),
some attributes are required ("Missing required attribute"), numbers follow
:mod:`~sel4vmm.config.microkit.numbers` and booleans are exactly ``true``/``false``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sel4vmm.config.microkit.diagnostics import MicrokitError
from sel4vmm.config.microkit.numbers import (
    U64,
    IntegerType,
    NumberFormatError,
    parse_decimal,
    parse_integer,
)
from sel4vmm.config.microkit.xmlsource import XmlElement

#: How much of a hostile attribute value our own message repeats (the tool text keeps it
#: whole, as the tool would print it).
_SHOWN_VALUE_CHARS = 60


def shown(value: str) -> str:
    """``value`` for our messages: at most a line's worth of it."""
    if len(value) <= _SHOWN_VALUE_CHARS:
        return value
    return f"{value[:_SHOWN_VALUE_CHARS]}... ({len(value)} characters)"


def check_attributes(
    element: XmlElement, allowed: Iterable[str], *, fixes: Mapping[str, str] | None = None
) -> None:
    """Reject the first attribute (in document order) that ``element`` may not carry;
    ``fixes`` gives a better fix than "remove it" for attributes of another release."""
    permitted = set(allowed)
    for name in element.attributes:
        if name not in permitted:
            listed = ", ".join(sorted(permitted)) or "none"
            fix = (fixes or {}).get(name) or f"remove it; <{element.tag}> accepts: {listed}"
            raise MicrokitError.on_element(element, f"invalid attribute '{name}'", fix=fix)


def required(element: XmlElement, name: str) -> str:
    value = element.get(name)
    if value is None:
        raise MicrokitError.missing_attribute(element, name)
    return value


def optional_number(element: XmlElement, name: str, kind: IntegerType = U64) -> int | None:
    value = element.get(name)
    if value is None:
        return None
    return _number(element, value, kind)


def required_number(element: XmlElement, name: str, kind: IntegerType = U64) -> int:
    return _number(element, required(element, name), kind)


def number_text(element: XmlElement, text: str, kind: IntegerType = U64) -> int:
    """Parse ``text`` taken from an attribute (or part of it, e.g. a duration)."""
    return _number(element, text, kind)


def _number(element: XmlElement, value: str, kind: IntegerType) -> int:
    """The tool's ``sdf_parse_number``; its error names no location (we still keep one)."""
    try:
        return parse_integer(value, kind)
    except NumberFormatError as reason:
        raise MicrokitError.bare(
            f"failed to parse integer '{value}' on element '{element.tag}': {reason}",
            location=element.location,
            fix="write a decimal or 0x-prefixed hexadecimal number (underscores allowed)",
        ) from None


def required_decimal(element: XmlElement, name: str, kind: IntegerType) -> int:
    return _decimal(element, name, required(element, name), kind)


def optional_decimal(element: XmlElement, name: str, kind: IntegerType) -> int | None:
    value = element.get(name)
    return None if value is None else _decimal(element, name, value, kind)


def _decimal(element: XmlElement, name: str, value: str, kind: IntegerType) -> int:
    """An attribute the tool reads with ``str::parse::<i64/u64>().unwrap()``: anything but a
    plain decimal makes the tool panic, so it is an error here that says so."""
    try:
        return parse_decimal(value, kind)
    except NumberFormatError as reason:
        hint = (
            "the tool reads it as a plain decimal number (no 0x, no underscores)"
            if reason.kind == "InvalidDigit"
            else str(reason)
        )
        raise MicrokitError.crash(
            element,
            f'{name}="{shown(value)}" on <{element.tag}>: {hint}',
            f"called `Result::unwrap()` on an `Err` value: {reason.rust_debug}",
            fix=f"write {name}= as a decimal number that fits {kind.name}",
        ) from None


def optional_bool(element: XmlElement, name: str) -> bool | None:
    value = element.get(name)
    if value is None:
        return None
    if value == "true":
        return True
    if value == "false":
        return False
    raise MicrokitError.on_element(
        element, f"{name} must be 'true' or 'false'", fix=f'write {name}="true" or {name}="false"'
    )

"""Integers the way the Microkit tool reads them.

``size="0x10_000_000"`` and ``size="268435456"`` mean the same: underscores are dropped
anywhere, a lowercase ``0x`` prefix selects hexadecimal, and the rest must be digits of
that base (an optional leading ``+``, or ``-`` where negative numbers are meaningful).
The tool parses into fixed-width Rust integers and reports Rust's own reasons ("invalid
digit found in string", "number too large to fit in target type", ...); reproducing the
reasons keeps our messages identical to the tool's.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class IntegerType:
    """A Rust integer type: its name and inclusive bounds."""

    name: str
    minimum: int
    maximum: int

    @property
    def signed(self) -> bool:
        return self.minimum < 0


U8 = IntegerType("u8", 0, 0xFF)
U64 = IntegerType("u64", 0, (1 << 64) - 1)
I64 = IntegerType("i64", -(1 << 63), (1 << 63) - 1)


class NumberFormatError(ValueError):
    """The text is not a number of the requested type; ``str()`` is Rust's reason."""


def parse_integer(text: str, kind: IntegerType = U64) -> int:
    """Parse ``text`` like the tool's ``parse_number`` into a value of ``kind``."""
    digits = text.replace("_", "")
    base = 10
    if digits.startswith("0x"):
        digits = digits[2:]
        base = 16
    return _from_str_radix(digits, base, kind)


def parse_hex_field(text: str, kind: IntegerType) -> int:
    """A bare hexadecimal field (PCI bus/device/function), surrounding blanks allowed."""
    return _from_str_radix(text.strip(), 16, kind)


def _from_str_radix(digits: str, base: int, kind: IntegerType) -> int:
    """Rust's ``from_str_radix``: sign handling, digit validation and overflow reasons."""
    if not digits:
        raise NumberFormatError("cannot parse integer from empty string")
    negative = False
    if digits[0] in "+-":
        if len(digits) == 1:
            raise NumberFormatError("invalid digit found in string")
        if digits[0] == "+":
            digits = digits[1:]
        elif kind.signed:
            negative = True
            digits = digits[1:]
    allowed = "0123456789abcdefABCDEF" if base == 16 else "0123456789"
    if any(character not in allowed for character in digits):
        raise NumberFormatError("invalid digit found in string")
    value = int(digits, base)
    if negative:
        value = -value
        if value < kind.minimum:
            raise NumberFormatError("number too small to fit in target type")
    elif value > kind.maximum:
        raise NumberFormatError("number too large to fit in target type")
    return value

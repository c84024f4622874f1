"""Integers the way the Microkit tool reads them.

The tool reads numbers two ways (``tool/microkit/src/sdf.rs``):

* :func:`parse_integer` is its ``sdf_parse_number``: underscores are dropped anywhere, a
  lowercase ``0x`` prefix selects hexadecimal, the rest goes to Rust's
  ``u64::from_str_radix``.  A failure is an error the tool reports with Rust's reason
  ("invalid digit found in string", "number too large to fit in target type", ...).
* :func:`parse_decimal` is Rust's ``str::parse::<i64>()`` / ``::<u64>()``, which the tool
  calls with ``.unwrap()`` on ``<irq id>``, ``irq=``, ``<end id>``, ``<vcpu id>``,
  ``<ioport id/size>``, ``pin``, ``ioapic``, ``vector`` and ``handle``: decimal only, no
  underscores, and a failure *panics* the tool.  The error carries Rust's
  ``ParseIntError`` kind so the caller can say exactly what the tool would print.

Both are bounded: however long the text, the value is never built from more digits than a
64-bit number can have (leading zeros are dropped first), so a 10,000-digit attribute is a
clean "too large" and never Python's own int-conversion limit.
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

#: More significant digits than any 64-bit value has in base 10 (20) or 16 (16).
_MAX_SIGNIFICANT_DIGITS = 24

#: Rust's ``IntErrorKind`` names and their ``Display`` texts.
_REASONS = {
    "Empty": "cannot parse integer from empty string",
    "InvalidDigit": "invalid digit found in string",
    "PosOverflow": "number too large to fit in target type",
    "NegOverflow": "number too small to fit in target type",
}


class NumberFormatError(ValueError):
    """The text is not a number of the requested type; ``str()`` is Rust's reason."""

    def __init__(self, kind: str) -> None:
        super().__init__(_REASONS[kind])
        #: Rust's ``IntErrorKind`` variant, e.g. ``InvalidDigit``.
        self.kind = kind

    @property
    def rust_debug(self) -> str:
        """How Rust's ``unwrap()`` panic prints the error: ``ParseIntError { kind: ... }``."""
        return f"ParseIntError {{ kind: {self.kind} }}"


def parse_integer(text: str, kind: IntegerType = U64) -> int:
    """Parse ``text`` like the tool's ``sdf_parse_number`` into a value of ``kind``."""
    digits = text.replace("_", "")
    base = 10
    if digits.startswith("0x"):
        digits = digits[2:]
        base = 16
    return _from_str_radix(digits, base, kind)


def parse_decimal(text: str, kind: IntegerType) -> int:
    """Rust's ``str::parse`` for ``kind``: decimal digits with an optional sign, nothing else."""
    return _from_str_radix(text, 10, kind)


def parse_hex_field(text: str, kind: IntegerType) -> int:
    """A bare hexadecimal field (PCI bus/device/function), surrounding blanks allowed."""
    return _from_str_radix(text.strip(), 16, kind)


def _from_str_radix(digits: str, base: int, kind: IntegerType) -> int:
    """Rust's ``from_str_radix``: sign handling, digit validation and overflow reasons."""
    if not digits:
        raise NumberFormatError("Empty")
    negative = False
    if digits[0] in "+-":
        if len(digits) == 1:
            raise NumberFormatError("InvalidDigit")
        if digits[0] == "+":
            digits = digits[1:]
        elif kind.signed:
            negative = True
            digits = digits[1:]
    allowed = "0123456789abcdefABCDEF" if base == 16 else "0123456789"
    if any(character not in allowed for character in digits):
        raise NumberFormatError("InvalidDigit")
    significant = digits.lstrip("0")
    if len(significant) > _MAX_SIGNIFICANT_DIGITS:
        raise NumberFormatError("NegOverflow" if negative else "PosOverflow")
    value = int(significant or "0", base)
    if negative:
        value = -value
        if value < kind.minimum:
            raise NumberFormatError("NegOverflow")
    elif value > kind.maximum:
        raise NumberFormatError("PosOverflow")
    return value

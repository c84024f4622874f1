"""Integers are read like the Microkit tool reads them, with Rust's failure reasons."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sel4vmm.config.microkit.numbers import (
    I64,
    U8,
    U64,
    IntegerType,
    NumberFormatError,
    parse_hex_field,
    parse_integer,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("4096", 4096),
        ("0x1000", 0x1000),
        ("0x10_000_000", 0x1000_0000),
        ("1_000", 1000),
        ("0xFFff", 0xFFFF),
        ("+7", 7),
        ("0xffffffffffffffff", (1 << 64) - 1),
    ],
)
def test_accepted_forms(text: str, value: int) -> None:
    assert parse_integer(text) == value


@pytest.mark.parametrize(
    ("text", "kind", "reason"),
    [
        ("0x200_000sd", U64, "invalid digit found in string"),
        ("", U64, "cannot parse integer from empty string"),
        ("0x", U64, "cannot parse integer from empty string"),
        ("-1", U64, "invalid digit found in string"),
        ("+", U64, "invalid digit found in string"),
        ("-", I64, "invalid digit found in string"),
        ("0X10", U64, "invalid digit found in string"),
        ("12 ", U64, "invalid digit found in string"),
        ("0x1_0000_0000_0000_0000", U64, "number too large to fit in target type"),
        ("256", U8, "number too large to fit in target type"),
        ("-9223372036854775809", I64, "number too small to fit in target type"),
    ],
)
def test_rejections_carry_rusts_reason(text: str, kind: IntegerType, reason: str) -> None:
    with pytest.raises(NumberFormatError, match=reason):
        parse_integer(text, kind)


def test_signed_types_take_a_minus() -> None:
    assert parse_integer("-1", I64) == -1
    assert parse_integer("0x-10", I64) == -16


def test_minus_before_hex_prefix_is_decimal_text() -> None:
    # The tool only strips a leading "0x"; "-0x10" is then parsed as decimal and fails.
    with pytest.raises(NumberFormatError, match="invalid digit"):
        parse_integer("-0x10", I64)


def test_pci_fields_are_hex_and_trimmed() -> None:
    assert parse_hex_field(" 1f ", I64) == 0x1F
    with pytest.raises(NumberFormatError):
        parse_hex_field("g", I64)


@given(st.integers(min_value=0, max_value=(1 << 64) - 1))
def test_round_trip_decimal_and_hex(value: int) -> None:
    assert parse_integer(str(value)) == value
    assert parse_integer(hex(value)) == value
    grouped = f"{value:_x}"
    assert parse_integer("0x" + grouped) == value

"""What a VM attribute's value must be -- a number, a boolean, a string, a list of strings.

camkes-vm's attributes are untyped in the file: ``ram_base`` may be an integer, or a
string that ``VAR_STRINGIZE`` made of one; ``untyped_mmios`` is a list of
``"0xADDR:size_bits"`` strings.  These readers turn a parsed :mod:`.values` value into the
Python value a :class:`~sel4vmm.config.spec.VmSpec` field needs, or report the one error
at the value's place; :mod:`.to_spec` uses them for every attribute it understands, and
:func:`python_value` keeps the ones it does not.
"""

from __future__ import annotations

from sel4vmm.config.camkes.c_integers import parse_c_integer
from sel4vmm.config.camkes.parse import parse_value_text
from sel4vmm.config.camkes.values import (
    BoolValue,
    DictValue,
    IntValue,
    ListValue,
    StrValue,
    SymbolValue,
    Value,
)
from sel4vmm.errors import Sel4VmmError


def python_value(value: Value) -> object:
    """A plain Python rendering of a value, for :attr:`VmSpec.extra`."""
    if isinstance(value, IntValue | StrValue | BoolValue):
        return value.value
    if isinstance(value, SymbolValue):
        return value.name
    if isinstance(value, ListValue):
        return [python_value(item) for item in value.items]
    if isinstance(value, DictValue):
        return {entry.key: python_value(entry.value) for entry in value.entries}
    return {value.function: [python_value(argument) for argument in value.arguments]}


def as_integer(value: Value, what: str) -> int:
    """An integer attribute; numeric strings (what VAR_STRINGIZE makes) are evaluated as C."""
    if isinstance(value, IntValue):
        return value.value
    if isinstance(value, BoolValue):
        return int(value.value)
    if isinstance(value, StrValue):
        if not value.value.strip():
            raise Sel4VmmError(
                f"{what} is empty", location=value.location, fix=f"give {what} a number"
            )
        try:
            parsed = parse_value_text(value.value, value.location.path)
        except Sel4VmmError:
            parsed = None
        if isinstance(parsed, IntValue):
            return parsed.value
        raise Sel4VmmError(
            f"{what} = {value.value!r} is not a number",
            location=value.location,
            fix="write a decimal or 0x-prefixed hexadecimal integer (is a macro undefined?)",
        )
    raise Sel4VmmError(
        f"{what} must be a number", location=value.location, fix="write an integer or a string"
    )


def as_boolean(value: Value, what: str) -> bool:
    """A boolean attribute: ``true``/``false`` or any number (non-zero is true)."""
    if isinstance(value, BoolValue):
        return value.value
    return as_integer(value, what) != 0


def as_string(value: Value, what: str) -> str:
    """A string attribute, such as an image's file name."""
    if isinstance(value, StrValue):
        return value.value
    raise Sel4VmmError(
        f"{what} must be a string", location=value.location, fix=f'write {what} as "text"'
    )


def as_strings(value: Value, what: str) -> list[StrValue]:
    """A list of strings, such as ``untyped_mmios``' ``"0xADDR:size_bits"`` entries."""
    if not isinstance(value, ListValue):
        raise Sel4VmmError(
            f"{what} must be a list of strings",
            location=value.location,
            fix=f'write {what} = ["..."];',
        )
    items: list[StrValue] = []
    for item in value.items:
        if not isinstance(item, StrValue):
            raise Sel4VmmError(
                f"{what} entries must be strings", location=item.location, fix='write "0x...:..."'
            )
        items.append(item)
    return items


def mmio_numbers(item: StrValue, count: int, what: str, form: str) -> list[int]:
    """The ``count`` colon-separated C integers of one such entry, written as ``form``."""
    fields = item.value.split(":")
    if len(fields) != count:
        raise Sel4VmmError(
            f"{what} entry {item.value!r} does not have the form {form}",
            location=item.location,
            fix=f'write "{form}"',
        )
    return [parse_c_integer(field.strip(), item.location) for field in fields]

"""The values a CAmkES configuration setting can hold, with where each was written.

``<instance>.<attribute> = <value>;`` assigns integers (already folded from C integer
expressions), strings, booleans, bare symbols, lists, dictionaries and calls such as
``dtb([...])``.  The parser (:mod:`.parse`) makes them and the readers of a VM's settings
(:mod:`.to_spec`, :mod:`.x86`, :mod:`.cross_vm`) take them apart; keeping the value model
in its own module lets those readers depend on what a value is without the grammar that
produced it.  Every value keeps its :class:`~sel4vmm.errors.Location` so a reader can
report a wrong one at its place.
"""

from __future__ import annotations

from dataclasses import dataclass

from sel4vmm.errors import Location


@dataclass(frozen=True)
class IntValue:
    value: int
    location: Location


@dataclass(frozen=True)
class StrValue:
    value: str
    location: Location


@dataclass(frozen=True)
class BoolValue:
    value: bool
    location: Location


@dataclass(frozen=True)
class SymbolValue:
    """A bare identifier left after preprocessing (an undefined macro or an enum name)."""

    name: str
    location: Location


@dataclass(frozen=True)
class ListValue:
    items: tuple[Value, ...]
    location: Location


@dataclass(frozen=True)
class DictEntry:
    key: str
    value: Value
    location: Location


@dataclass(frozen=True)
class DictValue:
    entries: tuple[DictEntry, ...]
    location: Location

    def get(self, key: str) -> Value | None:
        """The value of the last entry named ``key`` (later entries override earlier ones)."""
        found: Value | None = None
        for entry in self.entries:
            if entry.key == key:
                found = entry.value
        return found


@dataclass(frozen=True)
class CallValue:
    """``name(argument)``, e.g. ``dtb([{"path": "/soc/serial@12c20000"}])``."""

    function: str
    arguments: tuple[Value, ...]
    location: Location


Value = IntValue | StrValue | BoolValue | SymbolValue | ListValue | DictValue | CallValue

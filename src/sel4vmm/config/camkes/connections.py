"""The parts of CAmkES component bodies and connections that join VMs to other components.

A cross-VM connection (camkes-vm-examples' ``vm_cross_connector``) is written as:

* interfaces in a component body: ``dataport Buf(4096) crossvm_dp_0;``, ``emits Ready
  ready;``, ``consumes Done done;``;
* connections in the composition: ``connection seL4SharedDataWithCaps conn(from a.dest, to
  vm0.crossvm_dp_0);`` (shared frames, the ``to`` side holds their caps so the VMM can map
  them into its guest) and ``connection seL4Notification ev(from vm0.ready, to b.ready);``.

This module reads those two shapes off the token stream; :mod:`.parse` calls it and still
skips the statements as balanced token runs, so anything else in a component body (macros
already expanded, attributes, procedures) never stops the reader.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sel4vmm.config.camkes.c_integers import parse_c_integer
from sel4vmm.config.camkes.lexer import Token, TokenKind
from sel4vmm.errors import Location

#: Bytes of a ``dataport Buf`` with no size (camkes-tool's ``macros.dataport_size``).
DEFAULT_BUF_SIZE = 4096


@dataclass(frozen=True)
class InterfaceDecl:
    """``dataport Buf(4096) name;``, ``emits Ready name;`` or ``consumes Done name;``."""

    kind: str  # "dataport" | "emits" | "consumes"
    type_name: str
    name: str
    location: Location
    #: Bytes of a ``Buf``/``Buf(N)`` dataport; ``None`` for other types and for events.
    size: int | None = None


@dataclass
class ComponentDecl:
    """A ``component Type { ... }`` definition: its dataport and event interfaces."""

    name: str
    location: Location
    interfaces: list[InterfaceDecl] = field(default_factory=list)

    def interface(self, name: str) -> InterfaceDecl | None:
        return next((i for i in self.interfaces if i.name == name), None)


@dataclass(frozen=True)
class ConnectionEnd:
    """``instance.interface`` on one side of a connection."""

    instance: str
    interface: str
    location: Location


@dataclass(frozen=True)
class ConnectionDecl:
    """``connection Type name(from a.x, to b.y);`` (several ``from``/``to`` ends allowed)."""

    type_name: str
    name: str
    from_ends: tuple[ConnectionEnd, ...]
    to_ends: tuple[ConnectionEnd, ...]
    location: Location


def _matching(tokens: list[Token], start: int) -> int:
    """Index of the bracket closing the one at ``start`` (brackets were checked balanced)."""
    depth = 0
    for index in range(start, len(tokens)):
        token = tokens[index]
        if token.kind is TokenKind.PUNCT and token.value in "{[(":
            depth += 1
        elif token.kind is TokenKind.PUNCT and token.value in "}])":
            depth -= 1
            if depth == 0:
                return index
    return len(tokens) - 1


def _interface(tokens: list[Token], index: int) -> InterfaceDecl | None:
    """The interface declared at ``tokens[index]`` (a keyword), or None for another shape."""
    keyword = tokens[index]
    if index + 2 >= len(tokens) or tokens[index + 1].kind is not TokenKind.IDENT:
        return None
    type_token = tokens[index + 1]
    cursor = index + 2
    size: int | None = None
    if tokens[cursor].is_punct("("):
        close = _matching(tokens, cursor)
        inside = tokens[cursor + 1 : close]
        if keyword.value == "dataport" and len(inside) == 1 and inside[0].kind is TokenKind.NUMBER:
            size = parse_c_integer(inside[0].value, inside[0].location)
        cursor = close + 1
    elif keyword.value == "dataport" and type_token.value == "Buf":
        size = DEFAULT_BUF_SIZE
    if cursor + 1 >= len(tokens) or tokens[cursor].kind is not TokenKind.IDENT:
        return None
    if not tokens[cursor + 1].is_punct(";"):
        return None
    name = tokens[cursor]
    return InterfaceDecl(keyword.value, type_token.value, name.value, name.location, size)


def read_component(tokens: list[Token], index: int) -> ComponentDecl:
    """``component Name {`` at ``tokens[index]``: the interfaces directly in its body."""
    name = tokens[index + 1]
    component = ComponentDecl(name.value, name.location)
    open_brace = index + 2
    close = _matching(tokens, open_brace)
    cursor = open_brace + 1
    while cursor < close:
        token = tokens[cursor]
        if token.kind is TokenKind.PUNCT and token.value in "{[(":
            cursor = _matching(tokens, cursor) + 1
            continue
        if token.kind is TokenKind.IDENT and token.value in ("dataport", "emits", "consumes"):
            declared = _interface(tokens, cursor)
            if declared is not None:
                component.interfaces.append(declared)
        cursor += 1
    return component


def _end(tokens: list[Token]) -> ConnectionEnd | None:
    """``from``/``to`` ``instance . interface``."""
    if len(tokens) != 4 or tokens[0].kind is not TokenKind.IDENT:
        return None
    instance, dot, interface = tokens[1], tokens[2], tokens[3]
    if instance.kind is not TokenKind.IDENT or not dot.is_punct("."):
        return None
    if interface.kind is not TokenKind.IDENT:
        return None
    return ConnectionEnd(instance.value, interface.value, instance.location)


def read_connection(tokens: list[Token], index: int) -> ConnectionDecl | None:
    """``connection Type name(...)`` at ``tokens[index]``; None for another shape."""
    if index + 3 >= len(tokens):
        return None
    type_token, name_token, open_paren = tokens[index + 1], tokens[index + 2], tokens[index + 3]
    if type_token.kind is not TokenKind.IDENT or name_token.kind is not TokenKind.IDENT:
        return None
    if not open_paren.is_punct("("):
        return None
    close = _matching(tokens, index + 3)
    parts: list[list[Token]] = [[]]
    for token in tokens[index + 4 : close]:
        if token.is_punct(","):
            parts.append([])
        else:
            parts[-1].append(token)
    from_ends: list[ConnectionEnd] = []
    to_ends: list[ConnectionEnd] = []
    for part in parts:
        end = _end(part)
        if end is None:
            continue
        (from_ends if part[0].value == "from" else to_ends).append(end)
    return ConnectionDecl(
        type_token.value, name_token.value, tuple(from_ends), tuple(to_ends), name_token.location
    )

"""A device tree as Python objects: read from a checked blob, edited, written back.

sel4vmm needs little of a device-tree library: find nodes by path, read and set properties,
add and delete nodes, and write a blob; and the emulator builds whole trees.  pylibfdt does
this but has no wheel on PyPI (it needs swig and a C compiler), and the pure-Python ``fdt``
package is unmaintained since 2022, guesses property types and asserts on bad input.  So
the tree is this small model over :mod:`sel4vmm.images.fdt_check`, which has already proven
every offset and length: reading a checked blob cannot fail or go out of bounds, and editing
Python lists cannot corrupt a buffer.

Blobs are written in the layout dtc uses (header, reservation map at 0x28, structure block,
strings block; version 17 compatible back to 16).  The strings block is
ordered as libfdt's sequential writer orders it (each new name *before* the earlier ones,
reusing a name that is a suffix of one already present), so trees built with :class:`FdtWriter`
are byte for byte those pylibfdt's ``FdtSw`` wrote.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sel4vmm.images.fdt_check import (
    DTB_MAGIC,
    FDT_BEGIN_NODE,
    FDT_END,
    FDT_END_NODE,
    FDT_LAST_COMP_VERSION,
    FDT_NOP,
    FDT_PROP,
    FDT_VERSION,
    HEADER_SIZE,
    check_fdt,
)


@dataclass
class FdtNode:
    """One node: its name (``memory@40000000``), properties in order, and subnodes in order."""

    name: str
    properties: dict[str, bytes] = field(default_factory=dict)
    children: list[FdtNode] = field(default_factory=list)

    def child(self, name: str) -> FdtNode | None:
        for node in self.children:
            if node.name == name:
                return node
        return None

    def walk(self) -> Iterator[FdtNode]:
        """This node and every node below it, depth first, without recursion."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))


@dataclass
class Fdt:
    """A whole tree: the root node, the memory reservations and the boot CPU."""

    root: FdtNode
    reservations: list[tuple[int, int]] = field(default_factory=list)
    boot_cpuid_phys: int = 0

    def find(self, path: str) -> FdtNode | None:
        """The node at an absolute path such as ``/chosen`` or ``/soc/serial@9000000``."""
        if not path.startswith("/"):
            return None
        node: FdtNode | None = self.root
        for part in path.strip("/").split("/"):
            if node is None:
                return None
            if part:
                node = node.child(part)
        return node

    def to_bytes(self) -> bytes:
        return _serialize(self, _StringTable(prepend=False), rsvmap_offset=HEADER_SIZE)


def read_fdt(data: bytes | memoryview, path: str = "<memory>") -> Fdt:
    """Check ``data`` fully, then build the tree (only a checked blob is ever walked)."""
    checked = check_fdt(data, path)
    header = checked.header
    view = memoryview(data).cast("B")
    strings = header.off_dt_strings
    offset = header.off_dt_struct
    stack: list[FdtNode] = []
    root: FdtNode | None = None
    while True:
        (token,) = struct.unpack_from(">I", view, offset)
        offset += 4
        if token == FDT_BEGIN_NODE:
            nul = bytes(view[offset : offset + 257]).index(b"\0")
            node = FdtNode(bytes(view[offset : offset + nul]).decode("ascii"))
            offset += (nul + 1 + 3) & ~3
            if stack:
                stack[-1].children.append(node)
            else:
                root = node
            stack.append(node)
        elif token == FDT_END_NODE:
            stack.pop()
        elif token == FDT_PROP:
            length, name_offset = struct.unpack_from(">II", view, offset)
            offset += 8
            start = strings + name_offset
            name = bytes(view[start : start + 257]).split(b"\0", 1)[0].decode("ascii")
            stack[-1].properties[name] = bytes(view[offset : offset + length])
            offset += (length + 3) & ~3
        elif token == FDT_END:
            break
        # FDT_NOP: nothing; check_fdt has refused every other token.
    assert root is not None  # check_fdt proved there is exactly one root
    return Fdt(root, list(checked.reservations), header.boot_cpuid_phys)


class _StringTable:
    """Property names, each stored once; a name that is the tail of a stored one reuses it.

    ``prepend`` orders the table as libfdt's sequential writer does (newest first, offsets
    fixed from the end); otherwise names are appended as dtc does.
    """

    def __init__(self, *, prepend: bool) -> None:
        self.prepend = prepend
        self.table = b""
        self._offsets: dict[str, int] = {}

    def add(self, name: str) -> int:
        """A handle for ``name``: its offset (append) or its offset from the end (prepend)."""
        known = self._offsets.get(name)
        if known is not None:
            return known
        encoded = name.encode("ascii") + b"\0"
        found = self.table.find(encoded)
        if found >= 0:
            handle = found if not self.prepend else len(self.table) - found
        elif self.prepend:
            self.table = encoded + self.table
            handle = len(self.table)
        else:
            handle = len(self.table)
            self.table += encoded
        self._offsets[name] = handle
        return handle

    def offset(self, handle: int) -> int:
        return len(self.table) - handle if self.prepend else handle


def _align(value: int, alignment: int) -> int:
    return (value + alignment - 1) & -alignment


def _pad4(data: bytearray) -> None:
    data += b"\0" * (-len(data) % 4)


def _serialize(tree: Fdt, names: _StringTable, *, rsvmap_offset: int) -> bytes:
    """Header, reservation map (at ``rsvmap_offset``), structure block, strings block."""
    body = bytearray()
    # (position of a nameoff field, string handle), fixed once the table is final.
    fixups: list[tuple[int, int]] = []
    # Iterative: (node, entering); a deep tree is bounded by check_fdt's depth limit anyway.
    stack: list[tuple[FdtNode, bool]] = [(tree.root, True)]
    while stack:
        node, entering = stack.pop()
        if not entering:
            body += struct.pack(">I", FDT_END_NODE)
            continue
        body += struct.pack(">I", FDT_BEGIN_NODE) + node.name.encode("ascii") + b"\0"
        _pad4(body)
        for name, value in node.properties.items():
            handle = names.add(name)
            body += struct.pack(">II", FDT_PROP, len(value))
            fixups.append((len(body), handle))
            body += b"\0\0\0\0" + value
            _pad4(body)
        stack.append((node, False))
        stack.extend((child, True) for child in reversed(node.children))
    body += struct.pack(">I", FDT_END)
    for position, handle in fixups:
        struct.pack_into(">I", body, position, names.offset(handle))
    rsvmap = b"".join(struct.pack(">QQ", a, s) for a, s in tree.reservations)
    rsvmap += bytes(16)
    off_rsvmap = rsvmap_offset
    off_struct = off_rsvmap + len(rsvmap)
    off_strings = off_struct + len(body)
    total = off_strings + len(names.table)
    header = struct.pack(
        ">10I",
        DTB_MAGIC,
        total,
        off_struct,
        off_strings,
        off_rsvmap,
        FDT_VERSION,
        FDT_LAST_COMP_VERSION,
        tree.boot_cpuid_phys,
        len(names.table),
        len(body),
    )
    padding = bytes(off_rsvmap - HEADER_SIZE)
    return header + padding + rsvmap + bytes(body) + names.table


class FdtWriter:
    """Build a tree in order, as libfdt's sequential writer (``FdtSw``) does.

    ``with writer.add_node("chosen"): writer.property_string("bootargs", ...)``; the root is
    ``add_node("")``.  :meth:`to_bytes` gives the same bytes ``FdtSw`` gave for the same calls.
    """

    def __init__(self) -> None:
        self._stack: list[FdtNode] = []
        self._root: FdtNode | None = None
        self.reservations: list[tuple[int, int]] = []

    @contextmanager
    def add_node(self, name: str) -> Iterator[FdtNode]:
        node = FdtNode(name)
        if self._stack:
            self._stack[-1].children.append(node)
        elif self._root is not None:
            raise ValueError("a device tree has one root node")
        else:
            self._root = node
        self._stack.append(node)
        try:
            yield node
        finally:
            self._stack.pop()

    def property(self, name: str, value: bytes) -> None:
        self._stack[-1].properties[name] = bytes(value)

    def property_string(self, name: str, value: str) -> None:
        self.property(name, value.encode() + b"\0")

    def property_u32(self, name: str, value: int) -> None:
        self.property(name, struct.pack(">I", value))

    def to_bytes(self) -> bytes:
        if self._root is None or self._stack:
            raise ValueError("the root node is not finished")
        tree = Fdt(self._root, list(self.reservations))
        # libfdt's writer adds names as it meets them, in document order.
        names = _StringTable(prepend=True)
        for node in tree.root.walk():
            for name in node.properties:
                names.add(name)
        # fdt_create aligns the reservation map to an entry (16 bytes) after the header.
        return _serialize(tree, names, rsvmap_offset=_align(HEADER_SIZE, 16))


__all__ = ["FDT_NOP", "Fdt", "FdtNode", "FdtWriter", "read_fdt"]

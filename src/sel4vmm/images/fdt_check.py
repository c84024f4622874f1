"""A full check of a flattened device tree blob before anything reads it.

A DTB is offsets and lengths a user's file chose.  libfdt trusts them after a header check:
one corrupt byte (``off_mem_rsvmap`` pointing into the strings block) made pylibfdt's
``Fdt.resize`` write outside its buffer and abort sel4vmm (issue 10).  So every blob is
checked here, token by token, against the Devicetree Specification v0.4 chapter 5 ("Flattened
Devicetree (DTB) Format") before the tree model (:mod:`sel4vmm.images.fdt_tree`) or any other
code looks at it:

* the header: magic, version 17 (``last_comp_version`` 16), ``totalsize`` within the file;
* every block inside ``totalsize``, after the header, aligned (reservation map to 8, structure
  block to 4) and not overlapping another block;
* the memory-reservation map terminated by its (0, 0) entry inside its own block;
* the structure block: only known tokens, one root node with an empty name, node names
  NUL-terminated inside the block, every property's length inside the block and its name
  offset inside the strings block with its NUL there too, properties before subnodes,
  no duplicate names, balanced nesting ending in ``FDT_END``;
* bounds on nesting depth (Linux's ``FDT_MAX_DEPTH`` of 64), node and property counts, so a
  small hostile blob cannot make any later walk expensive.

The walk is one linear pass and allocates nothing per token beyond the names it checks.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from sel4vmm.errors import Location, Sel4VmmError

DTB_MAGIC = 0xD00DFEED
HEADER_SIZE = 40
#: The structure-block format this reads (dtc has written 17 since 2007); older lack fields.
FDT_VERSION = 17
FDT_LAST_COMP_VERSION = 16

FDT_BEGIN_NODE = 1
FDT_END_NODE = 2
FDT_PROP = 3
FDT_NOP = 4
FDT_END = 9

#: Linux's ``FDT_MAX_DEPTH`` (drivers/of/fdt.c): deeper trees are not unflattened.
MAX_DEPTH = 64
MAX_NODES = 1 << 16
MAX_PROPERTIES = 1 << 18
MAX_RESERVATIONS = 1 << 10
#: Node and property names: the spec allows at most 31 characters for a property name and
#: 31 for a node name before the unit address; this bounds the whole name generously.
MAX_NAME_LENGTH = 256

_HEADER = struct.Struct(">10I")
_FIX = "recompile it from its source with dtc"


@dataclass(frozen=True)
class DtbHeader:
    totalsize: int
    off_dt_struct: int
    off_dt_strings: int
    off_mem_rsvmap: int
    version: int
    last_comp_version: int
    boot_cpuid_phys: int
    size_dt_strings: int
    size_dt_struct: int


@dataclass(frozen=True)
class CheckedFdt:
    """A blob that passed :func:`check_fdt`, with its header and reservation map."""

    header: DtbHeader
    reservations: tuple[tuple[int, int], ...]
    node_count: int
    property_count: int


def is_dtb(data: bytes | memoryview) -> bool:
    return len(data) >= 4 and struct.unpack_from(">I", data, 0)[0] == DTB_MAGIC


def _corrupt(message: str, path: str) -> Sel4VmmError:
    return Sel4VmmError(f"corrupt device tree: {message}", location=Location(path), fix=_FIX)


def parse_dtb_header(data: bytes | memoryview, path: str = "<memory>") -> DtbHeader:
    """Magic, version, ``totalsize`` against the file, and each block's place and alignment."""
    where = Location(path)
    if len(data) < HEADER_SIZE:
        raise Sel4VmmError(
            f"truncated device tree header: the file has {len(data)} bytes but the device "
            f"tree header needs {HEADER_SIZE}",
            location=where,
            fix="the file was cut short (an interrupted download or copy?); recompile it",
        )
    fields = _HEADER.unpack_from(data, 0)
    if fields[0] != DTB_MAGIC:
        raise Sel4VmmError(
            f"not a device tree blob: magic is {fields[0]:#010x}, expected {DTB_MAGIC:#010x}",
            location=where,
            fix="pass a compiled .dtb (compile a .dts with --dts or 'dtc -I dts -O dtb')",
        )
    header = DtbHeader(*fields[1:])
    if header.version < FDT_VERSION:
        raise Sel4VmmError(
            f"device tree version {header.version} is too old (sel4vmm reads {FDT_VERSION})",
            location=where,
            fix="recompile the source with a current dtc",
        )
    if header.last_comp_version > FDT_VERSION:
        raise Sel4VmmError(
            f"device tree version {header.version} is only compatible back to "
            f"{header.last_comp_version}; sel4vmm reads version {FDT_VERSION}",
            location=where,
            fix="recompile the source with dtc (it writes version 17)",
        )
    if header.totalsize > len(data):
        raise Sel4VmmError(
            f"truncated device tree: totalsize is {header.totalsize:#x} but the file has "
            f"{len(data):#x} bytes",
            location=where,
            fix="the file was cut short; recompile it",
        )
    if header.totalsize < HEADER_SIZE:
        raise _corrupt(f"totalsize {header.totalsize:#x} is smaller than the header", path)
    blocks = (
        ("memory reservation map", header.off_mem_rsvmap, 16, 8),
        ("structure block", header.off_dt_struct, header.size_dt_struct, 4),
        ("strings block", header.off_dt_strings, header.size_dt_strings, 1),
    )
    for name, offset, size, alignment in blocks:
        if offset < HEADER_SIZE or offset + size > header.totalsize:
            raise _corrupt(
                f"the {name} [{offset:#x}, {offset + size:#x}) is not inside "
                f"[{HEADER_SIZE:#x}, totalsize {header.totalsize:#x})",
                path,
            )
        if offset % alignment:
            raise _corrupt(f"the {name} at {offset:#x} is not {alignment}-byte aligned", path)
    if header.size_dt_struct % 4:
        raise _corrupt(f"the structure block size {header.size_dt_struct:#x} is not 4n", path)
    struct_end = header.off_dt_struct + header.size_dt_struct
    strings_end = header.off_dt_strings + header.size_dt_strings
    if header.off_dt_struct < strings_end and header.off_dt_strings < struct_end:
        raise _corrupt("the structure and strings blocks overlap", path)
    return header


def _reservations(data: bytes | memoryview, header: DtbHeader, path: str) -> list[tuple[int, int]]:
    """Entries up to the (0, 0) terminator, which must come before any other block."""
    start = header.off_mem_rsvmap
    limit = header.totalsize
    for other in (header.off_dt_struct, header.off_dt_strings):
        if other >= start:
            limit = min(limit, other)
    entries: list[tuple[int, int]] = []
    offset = start
    while True:
        if offset + 16 > limit:
            raise _corrupt(
                f"the memory reservation map at {start:#x} has no (0, 0) terminator before "
                f"the next block at {limit:#x}",
                path,
            )
        address, size = struct.unpack_from(">QQ", data, offset)
        offset += 16
        if address == 0 and size == 0:
            return entries
        if len(entries) == MAX_RESERVATIONS:
            raise _corrupt(f"more than {MAX_RESERVATIONS} memory reservations", path)
        entries.append((address, size))


def _name_at(
    data: bytes | memoryview, start: int, end: int, what: str, path: str, *, node: bool
) -> bytes:
    """A NUL-terminated name that lies wholly in [start, end), of printable ASCII."""
    window = bytes(data[start : min(end, start + MAX_NAME_LENGTH + 1)])
    nul = window.find(b"\0")
    if nul < 0:
        raise _corrupt(
            f"the {what} at {start:#x} is not NUL-terminated inside its block within "
            f"{MAX_NAME_LENGTH} characters",
            path,
        )
    name = window[:nul]
    if not all(0x21 <= c < 0x7F and c != 0x2F for c in name):
        raise _corrupt(
            f"the {what} at {start:#x} ({name.decode('ascii', 'replace')!r}) has a "
            "character outside printable ASCII or a '/'",
            path,
        )
    if not name and not node:
        raise _corrupt(f"the {what} at {start:#x} is empty", path)
    return name


def check_fdt(data: bytes | memoryview, path: str = "<memory>") -> CheckedFdt:
    """Check the whole blob; any fault is a located :class:`Sel4VmmError`, never a crash."""
    header = parse_dtb_header(data, path)
    reservations = _reservations(data, header, path)
    offset = header.off_dt_struct
    end = offset + header.size_dt_struct
    strings = header.off_dt_strings
    strings_end = strings + header.size_dt_strings
    # Per open node: the names of its properties and children, and whether a child was seen.
    open_nodes: list[tuple[set[bytes], set[bytes], list[bool]]] = []
    nodes = properties = 0
    finished_root = False
    while True:
        if offset + 4 > end:
            raise _corrupt(f"the structure block ends at {end:#x} without FDT_END", path)
        (token,) = struct.unpack_from(">I", data, offset)
        at = offset
        offset += 4
        if token == FDT_NOP:
            continue
        if token == FDT_END:
            if open_nodes or not finished_root:
                raise _corrupt(f"FDT_END at {at:#x} inside an unclosed node", path)
            break
        if token == FDT_BEGIN_NODE:
            if finished_root:
                raise _corrupt(f"a second root node at {at:#x}", path)
            name = _name_at(data, offset, end, "node name", path, node=True)
            offset += (len(name) + 1 + 3) & ~3
            if not open_nodes:
                if name:
                    raise _corrupt(f"the root node at {at:#x} has a name ({name!r})", path)
            else:
                if not name:
                    raise _corrupt(f"a node at {at:#x} has an empty name", path)
                _props, children, seen_child = open_nodes[-1]
                if name in children:
                    raise _corrupt(
                        f"two sibling nodes named {name.decode()!r} (the second at {at:#x})",
                        path,
                    )
                children.add(name)
                seen_child[0] = True
            nodes += 1
            if nodes > MAX_NODES:
                raise _corrupt(f"more than {MAX_NODES} nodes", path)
            if len(open_nodes) == MAX_DEPTH:
                raise _corrupt(f"nodes nested deeper than {MAX_DEPTH} (at {at:#x})", path)
            open_nodes.append((set(), set(), [False]))
        elif token == FDT_END_NODE:
            if not open_nodes:
                raise _corrupt(f"FDT_END_NODE at {at:#x} closes no node", path)
            open_nodes.pop()
            finished_root = not open_nodes
        elif token == FDT_PROP:
            if not open_nodes:
                raise _corrupt(f"a property at {at:#x} outside any node", path)
            if offset + 8 > end:
                raise _corrupt(f"the property header at {at:#x} runs past its block", path)
            length, name_offset = struct.unpack_from(">II", data, offset)
            offset += 8
            if length > end - offset:
                raise _corrupt(
                    f"the property at {at:#x} is {length:#x} bytes long, past the end of "
                    f"the structure block at {end:#x}",
                    path,
                )
            if name_offset >= header.size_dt_strings:
                raise _corrupt(
                    f"the property at {at:#x} names string offset {name_offset:#x}, outside "
                    f"the strings block of {header.size_dt_strings:#x} bytes",
                    path,
                )
            name = _name_at(
                data, strings + name_offset, strings_end, "property name", path, node=False
            )
            props, _children, seen_child = open_nodes[-1]
            if seen_child[0]:
                raise _corrupt(f"the property {name.decode()!r} at {at:#x} follows a subnode", path)
            if name in props:
                raise _corrupt(f"the property {name.decode()!r} at {at:#x} is repeated", path)
            props.add(name)
            properties += 1
            if properties > MAX_PROPERTIES:
                raise _corrupt(f"more than {MAX_PROPERTIES} properties", path)
            offset += (length + 3) & ~3
        else:
            raise _corrupt(f"unknown token {token:#x} at {at:#x}", path)
    return CheckedFdt(header, tuple(reservations), nodes, properties)

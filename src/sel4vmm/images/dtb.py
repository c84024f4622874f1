"""Device trees: check a DTB, write what the kernel reads at boot, build one from sources.

What a VMM changes in the guest's device tree is small and fixed: the ``/memory`` node (the
guest RAM windows), and ``/chosen`` (``bootargs``, ``stdout-path``, and the initrd's
``linux,initrd-start``/``linux,initrd-end``).  Cells are written in the widths the root's
``#address-cells``/``#size-cells`` declare, because a 32-bit-cell tree with 64-bit values
is silently misread by the kernel.

Sources are compiled with ``dtc``.  libvmm keeps a board's ``linux.dts`` plus an
``overlay.dts`` that is *not* a dtc overlay: its Makefiles concatenate the two with
``tools/dtscat`` (which refuses a second ``/dts-v1/;``) and compile the result, so later
nodes and properties override earlier ones.  :func:`compile_dts` does the same and maps
dtc's line numbers back to the file the user wrote.  Real overlays (``/plugin/;``) are
compiled with ``-@`` and applied with ``fdtoverlay``.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import libfdt

from sel4vmm.errors import Location, Sel4VmmError
from sel4vmm.images.blob import require

DTB_MAGIC = 0xD00DFEED
HEADER_SIZE = 40
#: Linux (arm64 booting.rst, and libvmm's check) refuses device trees larger than this.
LINUX_MAX_DTB_SIZE = 2 << 20
#: Linux needs version 17 structure blocks (16 is read too); older ones lack fields.
MIN_VERSION = 16
#: Room added before editing so new nodes and properties fit; the result is packed.
EDIT_SLACK = 64 * 1024

_HEADER = struct.Struct(">10I")


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


def is_dtb(data: bytes | memoryview) -> bool:
    return len(data) >= 4 and struct.unpack_from(">I", data, 0)[0] == DTB_MAGIC


def parse_dtb_header(data: bytes | memoryview, path: str = "<memory>") -> DtbHeader:
    """Check magic, version and that the file holds ``totalsize`` bytes."""
    where = Location(path)
    require(data, HEADER_SIZE, "device tree header", path)
    fields = _HEADER.unpack_from(data, 0)
    if fields[0] != DTB_MAGIC:
        raise Sel4VmmError(
            f"not a device tree blob: magic is {fields[0]:#010x}, expected {DTB_MAGIC:#010x}",
            location=where,
            fix="pass a compiled .dtb (compile a .dts with --dts or 'dtc -I dts -O dtb')",
        )
    header = DtbHeader(*fields[1:])
    if header.totalsize > len(data):
        raise Sel4VmmError(
            f"truncated device tree: totalsize is {header.totalsize:#x} but the file has "
            f"{len(data):#x} bytes",
            location=where,
            fix="the file was cut short; recompile it",
        )
    if header.version < MIN_VERSION:
        raise Sel4VmmError(
            f"device tree version {header.version} is too old (Linux reads {MIN_VERSION}+)",
            location=where,
            fix="recompile the source with a current dtc",
        )
    for name, offset in (
        ("structure block", header.off_dt_struct + header.size_dt_struct),
        ("strings block", header.off_dt_strings + header.size_dt_strings),
    ):
        if offset > header.totalsize:
            raise Sel4VmmError(
                f"corrupt device tree: the {name} ends at {offset:#x}, past totalsize "
                f"{header.totalsize:#x}",
                location=where,
                fix="recompile it",
            )
    return header


def _encode_cells(value: int, cells: int, what: str) -> bytes:
    if value >= 1 << (32 * cells):
        raise Sel4VmmError(
            f"{what} {value:#x} does not fit in {cells} cell(s) of the device tree",
            fix="set #address-cells/#size-cells = <2> in the root node",
        )
    return value.to_bytes(4 * cells, "big")


def _decode_cells(raw: bytes) -> int:
    return int.from_bytes(raw, "big")


class DeviceTree:
    """An editable flattened device tree (pylibfdt underneath)."""

    def __init__(self, data: bytes | memoryview, path: str = "<memory>") -> None:
        header = parse_dtb_header(data, path)
        self.path = path
        try:
            self._fdt = libfdt.Fdt(bytes(data[: header.totalsize]))
            # Walk every node: libfdt's header check alone misses a damaged structure block.
            offset = 0
            depth = 0
            while True:
                offset, depth = self._fdt.next_node(offset, depth, libfdt.QUIET_NOTFOUND)
                if offset == -libfdt.NOTFOUND or (offset >= 0 and depth < 0):
                    break  # past the root's end node: the whole tree was walked
                if offset < 0:
                    raise libfdt.FdtException(offset)
        except libfdt.FdtException as error:
            raise Sel4VmmError(
                f"corrupt device tree: {error}", location=Location(path), fix="recompile it"
            ) from None

    @classmethod
    def empty(cls, *, address_cells: int = 2, size_cells: int = 2) -> DeviceTree:
        """A root node with the given cell sizes, for VMs whose config asks for a
        generated device tree and gives no base."""
        fdt = libfdt.Fdt.create_empty_tree(4096)
        fdt.setprop_u32(0, "#address-cells", address_cells)
        fdt.setprop_u32(0, "#size-cells", size_cells)
        fdt.pack()
        return cls(bytes(fdt.as_bytearray()))

    # -- reading -------------------------------------------------------------------------

    def _node(self, path: str) -> int | None:
        offset: int = self._fdt.path_offset(path, libfdt.QUIET_NOTFOUND)
        return offset if offset >= 0 else None

    def _cells(self, name: str, default: int) -> int:
        prop = self._fdt.getprop(0, name, libfdt.QUIET_NOTFOUND)
        if isinstance(prop, int):
            return default
        return int(prop.as_uint32())

    @property
    def address_cells(self) -> int:
        return self._cells("#address-cells", 2)

    @property
    def size_cells(self) -> int:
        return self._cells("#size-cells", 1)

    def _prop_bytes(self, node: int, name: str) -> bytes | None:
        prop = self._fdt.getprop(node, name, libfdt.QUIET_NOTFOUND)
        return None if isinstance(prop, int) else bytes(prop)

    def _prop_str(self, node: int, name: str) -> str | None:
        raw = self._prop_bytes(node, name)
        return None if raw is None else raw.split(b"\0", 1)[0].decode()

    def _root_children(self) -> list[tuple[int, str]]:
        children = []
        child: int = self._fdt.first_subnode(0, libfdt.QUIET_NOTFOUND)
        while child >= 0:
            children.append((child, str(self._fdt.get_name(child))))
            child = self._fdt.next_subnode(child, libfdt.QUIET_NOTFOUND)
        return children

    def memory_ranges(self) -> list[tuple[int, int]]:
        """``(base, size)`` of every ``device_type = "memory"`` node's ``reg`` entries."""
        ac, sc = self.address_cells, self.size_cells
        stride = 4 * (ac + sc)
        ranges = []
        for node, _name in self._root_children():
            if self._prop_str(node, "device_type") != "memory":
                continue
            reg = self._prop_bytes(node, "reg") or b""
            for i in range(0, len(reg) - stride + 1, stride):
                base = _decode_cells(reg[i : i + 4 * ac])
                size = _decode_cells(reg[i + 4 * ac : i + stride])
                ranges.append((base, size))
        return sorted(ranges)

    def chosen(self, name: str) -> bytes | None:
        node = self._node("/chosen")
        return None if node is None else self._prop_bytes(node, name)

    @property
    def bootargs(self) -> str | None:
        raw = self.chosen("bootargs")
        return None if raw is None else raw.split(b"\0", 1)[0].decode()

    @property
    def initrd(self) -> tuple[int, int] | None:
        """``(start, end)`` from /chosen, in whatever cell width they were written."""
        start, end = self.chosen("linux,initrd-start"), self.chosen("linux,initrd-end")
        if start is None or end is None:
            return None
        return _decode_cells(start), _decode_cells(end)

    # -- editing -------------------------------------------------------------------------

    def _edit(self) -> None:
        self._fdt.resize(self._fdt.totalsize() + EDIT_SLACK)

    def _ensure_node(self, name: str) -> int:
        node = self._node("/" + name)
        if node is None:
            node = int(self._fdt.add_subnode(0, name))
        return node

    def set_memory(self, ranges: Sequence[tuple[int, int]]) -> None:
        """Replace every memory node by one ``memory@<base>`` node per RAM window."""
        ac, sc = self.address_cells, self.size_cells
        encoded = [
            (
                base,
                _encode_cells(base, ac, "memory base") + _encode_cells(size, sc, "memory size"),
            )
            for base, size in sorted(ranges)
        ]
        self._edit()
        while True:
            doomed = [
                node
                for node, _ in self._root_children()
                if self._prop_str(node, "device_type") == "memory"
            ]
            if not doomed:
                break
            self._fdt.del_node(doomed[0])
        # libfdt adds a subnode before its siblings, so add the highest first.
        for base, reg in reversed(encoded):
            node = self._ensure_node(f"memory@{base:x}")
            self._fdt.setprop_str(node, "device_type", "memory")
            self._fdt.setprop(node, "reg", reg)
        self._fdt.pack()

    def set_chosen(
        self,
        *,
        bootargs: str | None = None,
        stdout_path: str | None = None,
        initrd: tuple[int, int] | None = None,
    ) -> None:
        """Set the given /chosen properties (None leaves a property as it is)."""
        ac = self.address_cells
        cells = None
        if initrd is not None:
            start, end = initrd
            cells = (
                _encode_cells(start, ac, "initrd start"),
                _encode_cells(end, ac, "initrd end"),
            )
        self._edit()
        node = self._ensure_node("chosen")
        if bootargs is not None:
            self._fdt.setprop_str(node, "bootargs", bootargs)
        if stdout_path is not None:
            self._fdt.setprop_str(node, "stdout-path", stdout_path)
        if cells is not None:
            self._fdt.setprop(node, "linux,initrd-start", cells[0])
            self._fdt.setprop(node, "linux,initrd-end", cells[1])
        self._fdt.pack()

    def remove_initrd(self) -> None:
        """Drop stale initrd properties (a base DTB written for another layout)."""
        node = self._node("/chosen")
        if node is None:
            return
        for name in ("linux,initrd-start", "linux,initrd-end"):
            self._fdt.delprop(node, name, libfdt.QUIET_NOTFOUND)
        self._fdt.pack()

    def to_bytes(self) -> bytes:
        self._fdt.pack()
        return bytes(self._fdt.as_bytearray())

    @property
    def size(self) -> int:
        return int(self._fdt.totalsize())


# -- compiling ---------------------------------------------------------------------------


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise Sel4VmmError(
            f"'{name}' is not installed; it is needed to compile device tree sources",
            fix="install it (Debian/Ubuntu: apt-get install device-tree-compiler)",
        )
    return found


_DTC_POSITION = re.compile(r"<stdin>:(\d+)(?:\.(\d+))?")


def _read_source(path: Path, role: str) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        raise Sel4VmmError(
            f"the {role} does not exist", location=Location(str(path)), fix="check the path"
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise Sel4VmmError(
            f"cannot read the {role}: {error}", location=Location(str(path))
        ) from None


def compile_dts(
    base: str | Path,
    overlays: Sequence[str | Path] = (),
    *,
    include_dirs: Sequence[str | Path] = (),
) -> bytes:
    """Compile ``base`` with libvmm-style overlays appended, then apply ``/plugin/`` ones.

    Errors from dtc are reported at the line of the file that caused them.
    """
    base_path = Path(base)
    text = _read_source(base_path, "device tree source")
    if "/dts-v1/;" not in text:
        raise Sel4VmmError(
            "'/dts-v1/;' not found: this is not a base device tree source",
            location=Location(str(base_path), 1),
            fix="start the base .dts with '/dts-v1/;' (overlays go in --overlay)",
        )
    # (first line in the concatenation, file) for mapping dtc's line numbers back.
    pieces: list[tuple[int, Path]] = [(1, base_path)]
    combined = text if text.endswith("\n") else text + "\n"
    plugins: list[Path] = []
    for overlay in overlays:
        path = Path(overlay)
        source = _read_source(path, "device tree overlay")
        if "/plugin/;" in source:
            plugins.append(path)
            continue
        if "/dts-v1/;" in source:
            line = source[: source.index("/dts-v1/;")].count("\n") + 1
            raise Sel4VmmError(
                "'/dts-v1/;' in an overlay: it may only appear in the base file "
                "(libvmm's dtscat refuses this too)",
                location=Location(str(path), line),
                fix="delete the '/dts-v1/;' line from the overlay",
            )
        pieces.append((combined.count("\n") + 1, path))
        combined += source if source.endswith("\n") else source + "\n"
    blob = _run_dtc(combined, pieces, include_dirs, symbols=bool(plugins))
    for plugin in plugins:
        overlay_text = _read_source(plugin, "device tree overlay")
        dtbo = _run_dtc(overlay_text, [(1, plugin)], include_dirs, symbols=True)
        blob = apply_overlay(blob, dtbo, overlay_name=str(plugin))
    return blob


def _locate(line: int, pieces: Sequence[tuple[int, Path]]) -> tuple[Path, int]:
    start, path = pieces[0]
    for first, candidate in pieces:
        if first <= line:
            start, path = first, candidate
    return path, line - start + 1


def _run_dtc(
    source: str,
    pieces: Sequence[tuple[int, Path]],
    include_dirs: Sequence[str | Path],
    *,
    symbols: bool,
) -> bytes:
    command = [_tool("dtc"), "-q", "-I", "dts", "-O", "dtb"]
    if symbols:
        command.append("-@")
    for directory in [pieces[0][1].parent, *include_dirs]:
        command += ["-i", str(directory)]
    command.append("-")
    result = subprocess.run(command, input=source.encode(), capture_output=True, check=False)
    if result.returncode != 0 or not result.stdout:
        message = result.stderr.decode(errors="replace").strip() or "dtc failed"
        match = _DTC_POSITION.search(message)
        location = Location(str(pieces[0][1]))
        if match:
            path, line = _locate(int(match.group(1)), pieces)
            location = Location(str(path), line, int(match.group(2) or 0))
        first_line = message.splitlines()[0]
        raise Sel4VmmError(
            f"dtc: {_DTC_POSITION.sub('', first_line).strip(' :')}",
            location=location,
            fix="correct the device tree source at that line",
        )
    return result.stdout


def apply_overlay(base: bytes, overlay: bytes, *, overlay_name: str = "overlay") -> bytes:
    """Apply a compiled ``/plugin/`` overlay with ``fdtoverlay``."""
    tool = _tool("fdtoverlay")
    with tempfile.TemporaryDirectory(prefix="sel4vmm-dtb-") as tmp:
        base_file, overlay_file, out_file = (Path(tmp) / n for n in ("b.dtb", "o.dtbo", "r.dtb"))
        base_file.write_bytes(base)
        overlay_file.write_bytes(overlay)
        result = subprocess.run(
            [tool, "-i", str(base_file), "-o", str(out_file), str(overlay_file)],
            capture_output=True,
            check=False,
        )
        if result.returncode != 0:
            message = result.stderr.decode(errors="replace").strip().splitlines()
            raise Sel4VmmError(
                f"fdtoverlay could not apply the overlay: {message[-1] if message else '?'}",
                location=Location(overlay_name),
                fix="check that every target/label the overlay names exists in the base tree",
            )
        return out_file.read_bytes()

"""Device trees: check a DTB, write what the kernel reads at boot, build one from sources.

What a VMM changes in the guest's device tree is small and fixed: the ``/memory`` node (the
guest RAM windows), and ``/chosen`` (``bootargs``, ``stdout-path``, and the initrd's
``linux,initrd-start``/``linux,initrd-end``).  The blob is checked completely first
(:mod:`sel4vmm.images.fdt_check`) and edited as Python objects, so a corrupt or hostile
tree is one located error.  Cells are written in the widths the root's
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
import tempfile
from collections.abc import Sequence
from pathlib import Path

from sel4vmm.errors import Location, Sel4VmmError, read_user_file
from sel4vmm.images.fdt_check import (
    DTB_MAGIC,
    HEADER_SIZE,
    DtbHeader,
    is_dtb,
    parse_dtb_header,
)
from sel4vmm.images.fdt_tree import Fdt, FdtNode, read_fdt
from sel4vmm.subprocesses import find_tool, run_tool

__all__ = ["DTB_MAGIC", "HEADER_SIZE", "DeviceTree", "DtbHeader", "is_dtb", "parse_dtb_header"]

#: Linux (arm64 booting.rst, and libvmm's check) refuses device trees larger than this.
LINUX_MAX_DTB_SIZE = 2 << 20
#: Linux's OF_MAX_ADDR_CELLS: no binding uses wider addresses or sizes.
MAX_CELLS = 4


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
    """An editable device tree (:mod:`sel4vmm.images.fdt_tree` over a fully checked blob)."""

    def __init__(self, data: bytes | memoryview, path: str = "<memory>") -> None:
        self.path = path
        self._tree: Fdt = read_fdt(data, path)

    @classmethod
    def empty(cls, *, address_cells: int = 2, size_cells: int = 2) -> DeviceTree:
        """A root node with the given cell sizes, for VMs whose config asks for a
        generated device tree and gives no base."""
        root = FdtNode("")
        root.properties["#address-cells"] = address_cells.to_bytes(4, "big")
        root.properties["#size-cells"] = size_cells.to_bytes(4, "big")
        return cls(Fdt(root).to_bytes())

    # -- reading -------------------------------------------------------------------------

    def _error(self, message: str, fix: str) -> Sel4VmmError:
        return Sel4VmmError(message, location=Location(self.path), fix=fix)

    def _cells(self, name: str, default: int, minimum: int) -> int:
        raw = self._tree.root.properties.get(name)
        if raw is None:
            return default
        if len(raw) != 4:
            raise self._error(
                f"the root node's {name} is {len(raw)} bytes long; it must be one cell (4 bytes)",
                f"write it as '{name} = <2>;'",
            )
        value = _decode_cells(raw)
        if not minimum <= value <= MAX_CELLS:
            raise self._error(
                f"the root node's {name} is {value}; sel4vmm writes /memory and /chosen "
                f"with {minimum} to {MAX_CELLS} cells",
                f"set '{name} = <2>;' in the root node",
            )
        return value

    @property
    def address_cells(self) -> int:
        return self._cells("#address-cells", 2, 1)

    @property
    def size_cells(self) -> int:
        return self._cells("#size-cells", 1, 1)

    def _root_children(self) -> list[FdtNode]:
        return list(self._tree.root.children)

    @staticmethod
    def _is_memory(node: FdtNode) -> bool:
        return node.properties.get("device_type", b"").split(b"\0", 1)[0] == b"memory"

    def memory_ranges(self) -> list[tuple[int, int]]:
        """``(base, size)`` of every ``device_type = "memory"`` node's ``reg`` entries."""
        ac, sc = self.address_cells, self.size_cells
        stride = 4 * (ac + sc)
        ranges = []
        for node in self._root_children():
            if not self._is_memory(node):
                continue
            reg = node.properties.get("reg", b"")
            if len(reg) % stride:
                raise self._error(
                    f"/{node.name}: reg is {len(reg)} bytes, not a whole number of "
                    f"(address, size) entries of {ac}+{sc} cells ({stride} bytes)",
                    "write reg with the root's #address-cells and #size-cells",
                )
            for i in range(0, len(reg), stride):
                base = _decode_cells(reg[i : i + 4 * ac])
                size = _decode_cells(reg[i + 4 * ac : i + stride])
                ranges.append((base, size))
        return sorted(ranges)

    def chosen(self, name: str) -> bytes | None:
        node = self._tree.find("/chosen")
        return None if node is None else node.properties.get(name)

    @property
    def bootargs(self) -> str | None:
        raw = self.chosen("bootargs")
        if raw is None:
            return None
        try:
            return raw.split(b"\0", 1)[0].decode()
        except UnicodeDecodeError:
            raise self._error(
                "/chosen: bootargs is not UTF-8 text", "write bootargs as a plain string"
            ) from None

    @property
    def initrd(self) -> tuple[int, int] | None:
        """``(start, end)`` from /chosen, in whatever cell width they were written."""
        start, end = self.chosen("linux,initrd-start"), self.chosen("linux,initrd-end")
        if start is None or end is None:
            return None
        return _decode_cells(start), _decode_cells(end)

    # -- editing -------------------------------------------------------------------------

    def _ensure_node(self, name: str) -> FdtNode:
        node = self._tree.root.child(name)
        if node is None:
            # libfdt's fdt_add_subnode puts a new node before its siblings; so does this.
            node = FdtNode(name)
            self._tree.root.children.insert(0, node)
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
        root = self._tree.root
        root.children = [node for node in root.children if not self._is_memory(node)]
        for base, reg in reversed(encoded):
            node = self._ensure_node(f"memory@{base:x}")
            node.properties["device_type"] = b"memory\0"
            node.properties["reg"] = reg

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
        node = self._ensure_node("chosen")
        if bootargs is not None:
            node.properties["bootargs"] = bootargs.encode() + b"\0"
        if stdout_path is not None:
            node.properties["stdout-path"] = stdout_path.encode() + b"\0"
        if cells is not None:
            node.properties["linux,initrd-start"] = cells[0]
            node.properties["linux,initrd-end"] = cells[1]

    def remove_initrd(self) -> None:
        """Drop stale initrd properties (a base DTB written for another layout)."""
        node = self._tree.find("/chosen")
        if node is None:
            return
        for name in ("linux,initrd-start", "linux,initrd-end"):
            node.properties.pop(name, None)

    def to_bytes(self) -> bytes:
        return self._tree.to_bytes()

    @property
    def size(self) -> int:
        return len(self.to_bytes())


# -- compiling ---------------------------------------------------------------------------


#: How long dtc and fdtoverlay may take: real trees compile in milliseconds.
DTC_TIMEOUT = 60.0
#: The most output kept from them: Linux refuses trees over 2 MiB anyway.
DTC_MAX_OUTPUT = 16 << 20
#: Their address-space limit: real trees need a few MiB.
DTC_MAX_MEMORY = 2 << 30


def _tool(name: str) -> str:
    return find_tool(name, package="device-tree-compiler", purpose="to compile device tree sources")


_DTC_POSITION = re.compile(r"<stdin>:(\d+)(?:\.(\d+))?")


#: Device tree sources are text a person wrote: a few MiB at most.
MAX_SOURCE_BYTES = 16 << 20


def _read_source(path: Path, role: str) -> str:
    if not path.exists() and not path.is_symlink():
        raise Sel4VmmError(
            f"the {role} does not exist", location=Location(str(path)), fix="check the path"
        )
    data = read_user_file(path, f"the {role}", "check the path", max_bytes=MAX_SOURCE_BYTES)
    try:
        return data.decode()
    except UnicodeDecodeError as error:
        raise Sel4VmmError(
            f"cannot read the {role}: it is not UTF-8 text (byte {error.start})",
            location=Location(str(path)),
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
    result = run_tool(
        command,
        input=source.encode(),
        timeout=DTC_TIMEOUT,
        max_output=DTC_MAX_OUTPUT,
        max_memory=DTC_MAX_MEMORY,
        location=Location(str(pieces[0][1])),
    )
    if result.returncode != 0 or not result.stdout:
        message = result.stderr.decode(errors="replace").strip() or "dtc failed"
        match = _DTC_POSITION.search(message)
        location = Location(str(pieces[0][1]))
        if match:
            path, line = _locate(int(match.group(1)), pieces)
            location = Location(str(path), line, int(match.group(2) or 0))
        first_line = message.splitlines()[0]
        out_of_memory = "alloc" in first_line and "failed" in first_line
        raise Sel4VmmError(
            f"dtc: {_DTC_POSITION.sub('', first_line).strip(' :')}",
            location=location,
            fix=(
                f"dtc ran out of the {DTC_MAX_MEMORY >> 30} GiB it may use: check /incbin/ "
                "and /include/ for a device or a huge file"
                if out_of_memory
                else "correct the device tree source at that line"
            ),
        )
    return result.stdout


def apply_overlay(base: bytes, overlay: bytes, *, overlay_name: str = "overlay") -> bytes:
    """Apply a compiled ``/plugin/`` overlay with ``fdtoverlay``."""
    tool = _tool("fdtoverlay")
    with tempfile.TemporaryDirectory(prefix="sel4vmm-dtb-") as tmp:
        base_file, overlay_file, out_file = (Path(tmp) / n for n in ("b.dtb", "o.dtbo", "r.dtb"))
        base_file.write_bytes(base)
        overlay_file.write_bytes(overlay)
        result = run_tool(
            [tool, "-i", str(base_file), "-o", str(out_file), str(overlay_file)],
            timeout=DTC_TIMEOUT,
            max_output=DTC_MAX_OUTPUT,
            max_memory=DTC_MAX_MEMORY,
            location=Location(overlay_name),
        )
        if result.returncode != 0:
            message = result.stderr.decode(errors="replace").strip().splitlines()
            raise Sel4VmmError(
                f"fdtoverlay could not apply the overlay: {message[-1] if message else '?'}",
                location=Location(overlay_name),
                fix="check that every target/label the overlay names exists in the base tree",
            )
        return read_user_file(
            out_file, "the tree fdtoverlay wrote", "check fdtoverlay", max_bytes=DTC_MAX_OUTPUT
        )

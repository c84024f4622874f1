"""A picture of a plan: each VM's guest-physical map beside where its regions live.

Drawn from the plan's JSON document (:mod:`sel4vmm.plan.document`), so the picture shows
exactly what ``plan --json`` says.  Heights are on a log scale (a 4 KiB UART and 2 GiB of RAM
both show, the bigger one taller); each VM is a column of its map entries (RAM, passthrough,
emulated, shared, holes), the physical column on the right lists board RAM and every
physical extent a VM maps, drawn once however many VMs share it, with an edge to each VM's
entry, and the board's device windows.  Under each VM, the untyped it was given and used.
Findings are marked at the entry their source line belongs to.  Every shape has a
``<title>`` (the browser's hover text) with exact addresses, sizes and the source line.  The
output is one self-contained file: inline SVG and CSS, no scripts, no network fetches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape
from typing import Any

#: Colours by map-entry kind (readable on white, distinguishable without colour by labels).
KIND_COLOURS = {
    "ram": "#9ecae1",
    "passthrough": "#fdd0a2",
    "emulated": "#c7e9c0",
    "shared": "#dadaeb",
    "hole": "#f4f4f4",
}
VM_WIDTH = 380
PHYS_WIDTH = 340
GAP = 140
TOP = 48
MIN_HEIGHT = 22
PX_PER_DOUBLING = 5.0
#: Physical extents drawn per map entry; the rest are summed up in the entry's hover text.
EXTENTS_SHOWN = 6


def size_text(size: int) -> str:
    """``512 MiB`` when exact, else ``~895.9 MiB`` (the hover text has the exact bytes)."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift:
            if size % (1 << shift) == 0:
                return f"{size >> shift} {unit}"
            return f"~{size / (1 << shift):.1f} {unit}"
    return f"{size} B"


def _label(text: str, limit: int = 34) -> str:
    """Visible text cut to fit its box; the full text is in the hover title."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def height_for(size: int) -> float:
    """Log-scale height: 4 KiB and below get the minimum, each doubling adds a few pixels."""
    doublings = max(0.0, math.log2(max(size, 1)) - 12)
    return MIN_HEIGHT + PX_PER_DOUBLING * doublings


def _where(location: dict[str, Any] | None) -> str:
    if not location:
        return "no source line"
    path, line, column = location["path"], location["line"], location["column"]
    if line and column:
        return f"{path}:{line}:{column}"
    return f"{path}:{line}" if line else str(path)


@dataclass
class _Box:
    x: float
    y: float
    width: float
    height: float


@dataclass
class _Extent:
    paddr: int
    size: int
    backing: str
    users: list[tuple[str, _Box]] = field(default_factory=list)


def _merged(physical: list[dict[str, int]]) -> list[tuple[int, int]]:
    """Adjacent physical runs of one entry as one extent (pool frames come in many runs)."""
    merged: list[list[int]] = []
    for run in sorted(physical, key=lambda r: r["paddr"]):
        if merged and merged[-1][0] + merged[-1][1] == run["paddr"]:
            merged[-1][1] += run["size"]
        else:
            merged.append([run["paddr"], run["size"]])
    return [(paddr, size) for paddr, size in merged]


def _entry_label(entry: dict[str, Any]) -> str:
    """``passthrough uart``; the kind alone when the name repeats it (``ram``)."""
    kind, name = entry["kind"], entry["name"]
    return kind if not name or name == kind else f"{kind} {name}"


def _finding_lines(
    findings: list[dict[str, Any]],
) -> dict[tuple[str, int], list[dict[str, Any]]]:
    """Findings by the (file, line) they point at, to mark the entry from that line."""
    by_line: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for finding in findings:
        location = finding.get("location")
        if location and location.get("line"):
            by_line.setdefault((location["path"], location["line"]), []).append(finding)
    return by_line


def _text(x: float, y: float, text: str, cls: str = "") -> str:
    attribute = f' class="{cls}"' if cls else ""
    return f'<text x="{x:.1f}" y="{y:.1f}"{attribute}>{escape(text)}</text>'


def _untyped_lines(resources: dict[str, Any] | None) -> list[str]:
    """``untyped 2^24 (16 MiB): 33 given, 33 used`` per pool, for the foot of a VM column."""
    if not resources:
        return []
    used = {(u["size_bits"], u["device"]): u["count"] for u in resources["untyped_used"]}
    lines = []
    for given in resources["untyped_given"]:
        bits, device = given["size_bits"], given["device"]
        kind = "device untyped" if device else "untyped"
        lines.append(
            f"{kind} 2^{bits} ({size_text(1 << bits)}): {given['count']} given, "
            f"{used.get((bits, device), 0)} used"
        )
    return lines


def _vm_column(
    vm: dict[str, Any], x: float, parts: list[str], extents: dict[tuple[int, int], _Extent]
) -> float:
    """Draw one VM's map entries at ``x``; record the physical extents they use; the bottom."""
    parts.append(_text(x, TOP - 14, f"{vm['name']} ({vm['arch']}): guest-physical", "head"))
    findings_at = _finding_lines(vm["findings"])
    y = float(TOP)
    for entry in vm["map"]:
        height = height_for(entry["size"])
        location = entry.get("location")
        marked = findings_at.get((location["path"], location["line"]), []) if location else []
        extent_list = _merged(entry["physical"])
        title = (
            f"{entry['kind']} {entry['name']}\n[{entry['start']:#x}, {entry['end']:#x}) = "
            f"{entry['size']} bytes ({size_text(entry['size'])})\nbacked by: "
            f"{entry['backing'] or '-'}\nphysical: "
            + (", ".join(f"{p:#x}+{size_text(n)}" for p, n in extent_list) or "none")
            + f"\nsource: {_where(location)}"
            + "".join(f"\n{f['severity']}: {f['message']}" for f in marked)
        )
        colour = KIND_COLOURS.get(entry["kind"], "#ffffff")
        css = "entry finding" if marked else "entry"
        parts.append(
            f'<g class="{css}" data-vm="{escape(vm["name"])}" '
            f'data-start="{entry["start"]:#x}" data-kind="{escape(entry["kind"])}">'
            f"<title>{escape(title)}</title>"
            f'<rect x="{x}" y="{y:.1f}" width="{VM_WIDTH}" height="{height:.1f}" '
            f'fill="{colour}"/>'
            + _text(x + 4, y + 14, f"{entry['start']:#x}", "addr")
            + _text(x + 96, y + 14, _label(_entry_label(entry)))
            + _text(x + VM_WIDTH - 26, y + 14, size_text(entry["size"]), "size")
            + (_text(x + VM_WIDTH - 16, y + 15, "!", "mark") if marked else "")
            + "</g>"
        )
        box = _Box(x, y, VM_WIDTH, height)
        for paddr, size in extent_list[:EXTENTS_SHOWN]:
            extent = extents.setdefault(
                (paddr, size), _Extent(paddr, size, entry["backing"] or entry["kind"])
            )
            extent.users.append((vm["name"], box))
        y += height
    if vm["map"]:
        parts.append(_text(x + 4, y + 14, f"{vm['map'][-1]['end']:#x}", "addr"))
    for line in _untyped_lines(vm.get("resources")):
        y += 18
        parts.append(_text(x + 4, y + 14, line, "pool"))
    return y + 24


def _window_row(x: float, y: float, base: int, size: int, label: str, css: str) -> str:
    """A board RAM bank or device window: a header row the extents inside it sit under."""
    what = "board RAM" if css == "board" else f"device window {label}"
    title = f"{what} [{base:#x}, {base + size:#x}) = {size} bytes ({size_text(size)})"
    return (
        f'<g class="{css}"><title>{escape(title)}</title>'
        f'<rect x="{x}" y="{y:.1f}" width="{PHYS_WIDTH}" height="{MIN_HEIGHT}"/>'
        + _text(x + 4, y + 15, _label(f"{base:#x} {label} {size_text(size)}", 44), "addr")
        + "</g>"
    )


def _physical_column(
    document: dict[str, Any],
    windows: list[dict[str, Any]],
    x: float,
    parts: list[str],
    edges: list[str],
    extents: dict[tuple[int, int], _Extent],
) -> float:
    """Board RAM, device windows and every extent a VM maps (each once, with an edge to
    every VM entry that uses it); the bottom."""
    parts.append(_text(x, TOP - 14, f"physical ({document['board']['name']})", "head"))
    rows: list[tuple[int, int, str, str]] = [
        (r["base"], r["size"], "board RAM", "board") for r in document["board"]["ram"]
    ]
    rows += [(w["base"], w["size"], w["name"] or "device", "window") for w in windows]
    rows += [(e.paddr, e.size, e.backing, "extent") for e in extents.values()]
    rows.sort(key=lambda row: (row[0], -row[1], row[3] == "extent"))
    y = float(TOP)
    for paddr, size, label, kind in rows:
        if kind != "extent":
            parts.append(_window_row(x, y, paddr, size, label, kind))
            y += MIN_HEIGHT
            continue
        extent = extents[(paddr, size)]
        height = height_for(size)
        names = sorted({name for name, _box in extent.users})
        title = (
            f"[{paddr:#x}, {paddr + size:#x}) = {size} bytes ({size_text(size)})\n"
            f"{label}\nused by: {', '.join(names)}"
        )
        shared = " shared" if len(names) > 1 else ""
        parts.append(
            f'<g class="extent{shared}" data-paddr="{paddr:#x}"><title>{escape(title)}</title>'
            f'<rect x="{x + 12}" y="{y:.1f}" width="{PHYS_WIDTH - 12}" height="{height:.1f}"/>'
            + _text(x + 16, y + 14, _label(f"{paddr:#x} {size_text(size)} {label}", 40), "addr")
            + "</g>"
        )
        for _name, box in extent.users:
            x0, y0 = box.x + box.width, box.y + min(box.height, 2 * MIN_HEIGHT) / 2
            x1, y1 = x + 12, y + min(height, 2 * MIN_HEIGHT) / 2
            middle = (x0 + x1) / 2
            edges.append(
                f'<path class="edge" d="M{x0:.1f},{y0:.1f} C{middle:.1f},{y0:.1f} '
                f'{middle:.1f},{y1:.1f} {x1:.1f},{y1:.1f}"/>'
            )
        y += height
    return y + 24


STYLE = (
    "text{font:12px sans-serif}"
    ".head{font-weight:bold;font-size:14px}.addr{font-family:monospace}"
    ".size{text-anchor:end;font-family:monospace}.pool{fill:#444}"
    ".entry rect{stroke:#555;stroke-width:1}.finding rect{stroke:#c00;stroke-width:3}"
    ".mark{fill:#c00;font-weight:bold;font-size:16px}"
    ".board rect{fill:#e6e6e6;stroke:#777}.window rect{fill:#f2e6f2;stroke:#777}"
    ".extent rect{fill:#fff7bc;stroke:#777}"
    ".shared rect{fill:#fdae6b}.edge{fill:none;stroke:#888;stroke-width:1.2;opacity:.8}"
)


def memory_map_svg(
    document: dict[str, Any], device_windows: list[dict[str, Any]] | None = None
) -> str:
    """The plan document drawn as one standalone SVG image.  ``device_windows``
    (``{"name", "base", "size"}``, the board's) are drawn in the physical column too."""
    parts: list[str] = []
    edges: list[str] = []
    extents: dict[tuple[int, int], _Extent] = {}
    vms = document["vms"]
    bottom = float(TOP)
    for index, vm in enumerate(vms):
        bottom = max(bottom, _vm_column(vm, 20 + index * (VM_WIDTH + 20), parts, extents))
    phys_x = 20 + len(vms) * (VM_WIDTH + 20) + GAP
    bottom = max(
        bottom, _physical_column(document, device_windows or [], phys_x, parts, edges, extents)
    )
    width, height = phys_x + PHYS_WIDTH + 20, int(bottom)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img">'
        f"<title>{escape(document['file'])}: memory map</title>"
        f"<style>{STYLE}</style>" + "".join(edges) + "".join(parts) + "</svg>"
    )


def _findings_html(title: str, findings: list[dict[str, Any]]) -> str:
    if not findings:
        return ""
    items = "".join(
        f'<li class="{escape(f["severity"])}"><code>{escape(_where(f.get("location")))}</code> '
        f"<b>{escape(f['severity'])}</b>: {escape(f['message'])}"
        + (f"<br><i>fix: {escape(f['fix'])}</i>" if f.get("fix") else "")
        + "</li>"
        for f in findings
    )
    return f"<h2>{escape(title)}</h2><ul>{items}</ul>"


def memory_map_page(
    document: dict[str, Any], device_windows: list[dict[str, Any]] | None = None
) -> str:
    """The picture as one self-contained HTML page, with the findings listed under it."""
    board = document["board"]
    findings = _findings_html("findings", document["findings"]) + "".join(
        _findings_html(f"{vm['name']}: findings", vm["findings"]) for vm in document["vms"]
    )
    legend = " ".join(
        f'<span class="key" style="background:{colour}">{kind}</span>'
        for kind, colour in KIND_COLOURS.items()
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(document['file'])}: memory map</title>"
        "<style>body{font:14px sans-serif;margin:16px}h1{font-size:20px;margin:0 0 4px}"
        "h2{font-size:16px}"
        ".key{padding:1px 6px;border:1px solid #777;margin-right:4px}"
        "li.error{color:#a00}li.warning{color:#850}</style></head><body>"
        f"<h1>memory map of {escape(document['file'].rsplit('/', 1)[-1])}</h1>"
        f"<p><code>{escape(document['file'])}</code></p>"
        f"<p>{escape(document['format'])} configuration on board "
        f"<b>{escape(board['name'])}</b> ({escape(board['arch'])}); heights are on a log "
        f"scale; hover a region for exact addresses, sizes and its source line.</p>"
        f'<p>{legend} <span class="key" style="background:#fdae6b">shared physical</span> '
        '<span class="key" style="background:#f2e6f2">device window</span> '
        '<span class="key" style="background:#e6e6e6">board RAM</span> '
        '<span class="key" style="border:3px solid #c00">! finding at this region</span></p>'
        f"{memory_map_svg(document, device_windows)}{findings}</body></html>\n"
    )

"""``sel4vmm plan FILE --html/--svg``: the memory map drawn, checked in a real headless
Chromium (Debian's ``chromium``, installed by install.sh): every map entry of the JSON plan
is drawn with its address, shared physical regions once, hover text exact."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sel4vmm.cli import app
from sel4vmm.cli.picture import height_for, memory_map_page, memory_map_svg
from sel4vmm.errors import Sel4VmmError
from tests.helpers import REALWORLD

VM_MINIMAL = REALWORLD / "camkes-vm-examples/vm_minimal/vm_minimal.camkes"
VIRTIO_SND = REALWORLD / "libvmm/virtio-snd/board/qemu_virt_aarch64/virtio-snd.system"
SVG = "{http://www.w3.org/2000/svg}"
runner = CliRunner()


def plan_document(path: Path, *extra: str) -> dict[str, Any]:
    result = runner.invoke(app, ["plan", str(path), "--json", *extra])
    document: dict[str, Any] = json.loads(result.output)
    return document


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("chromium is not installed (apt-get install chromium; install.sh does)")
    return found


def run_chromium(*args: str) -> str:
    """Headless Chromium in its own process group, killed whole if it overruns."""
    command = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", *args]
    with subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        text=True,
        env=dict(os.environ, HOME=os.environ.get("HOME", "/tmp")),
    ) as process:
        try:
            out, _ = process.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            pytest.fail("chromium did not finish within 120 s")
    assert process.returncode == 0, out[-2000:]
    return out


def entries_drawn(dom: str) -> set[tuple[str, str, str]]:
    """(vm, data-start, the address text shown) for every drawn map entry in the DOM."""
    drawn = set()
    pattern = r'<g class="entry[^"]*" data-vm="([^"]+)" data-start="(0x[0-9a-f]+)"[^>]*>(.*?)</g>'
    for vm, start, body in re.findall(pattern, dom, re.S):
        shown = re.search(r'<text[^>]*class="addr"[^>]*>(0x[0-9a-f]+)</text>', body)
        drawn.add((vm, start, shown.group(1) if shown else ""))
    return drawn


def test_svg_is_well_formed_and_every_entry_has_exact_hover_text() -> None:
    document = plan_document(VM_MINIMAL, "--board", "qemu-arm-virt")
    root = ET.fromstring(memory_map_svg(document))
    groups = [g for g in root.iter(f"{SVG}g") if "entry" in g.get("class", "")]
    (vm,) = document["vms"]
    assert [g.get("data-start") for g in groups] == [f"{e['start']:#x}" for e in vm["map"]]
    for group, entry in zip(groups, vm["map"], strict=True):
        title = group.find(f"{SVG}title")
        assert title is not None and title.text is not None
        assert f"[{entry['start']:#x}, {entry['end']:#x}) = {entry['size']} bytes" in title.text
        if entry["location"]:
            where = entry["location"]
            assert f"source: {where['path']}:{where['line']}" in title.text
    # The kernel_entry_addr warning points at the RAM entry's line: that entry is marked.
    marked = [g for g in groups if "finding" in g.get("class", "")]
    assert [g.get("data-kind") for g in marked] == ["ram"]


def test_heights_are_log_scaled_so_small_and_huge_regions_both_show() -> None:
    assert height_for(4096) >= 20
    assert height_for(2 << 30) > height_for(4096) * 3
    assert height_for(2 << 30) < 200


def test_page_is_self_contained() -> None:
    page = memory_map_page(plan_document(VIRTIO_SND))
    assert re.findall(r"https?://[^\"' ]+", page) == ["http://www.w3.org/2000/svg"]
    for fetch in ("<script", "<link", "src=", "href=", "url(", "@import"):
        assert fetch not in page


def test_plan_writes_html_and_svg(tmp_path: Path) -> None:
    html, svg = tmp_path / "plan.html", tmp_path / "plan.svg"
    result = runner.invoke(
        app,
        [
            "plan",
            str(VM_MINIMAL),
            "--board",
            "qemu-arm-virt",
            "--html",
            str(html),
            "--svg",
            str(svg),
        ],
    )
    assert result.exit_code == 0, result.output
    assert html.read_text().startswith("<!DOCTYPE html>")
    root = ET.fromstring(svg.read_text())
    # The board's device windows and the VM's untyped are drawn beside the map.
    titles = [t.text or "" for t in root.iter(f"{SVG}title")]
    assert "device window uart [0x9000000, 0x9001000) = 4096 bytes (4 KiB)" in titles
    texts = [t.text or "" for t in root.iter(f"{SVG}text")]
    assert "untyped 2^24 (16 MiB): 12 given, 1 used" in texts
    target = tmp_path / "no" / "x.html"
    unwritable = runner.invoke(
        app, ["plan", str(VM_MINIMAL), "--board", "qemu-arm-virt", "--html", str(target)]
    )
    assert isinstance(unwritable.exception, Sel4VmmError)
    assert str(unwritable.exception) == (
        f"{target}: error: cannot write the HTML page: No such file or directory "
        "(fix: give a writable path for the HTML page)"
    )


def test_chromium_draws_every_map_entry_with_its_address(tmp_path: Path) -> None:
    document = plan_document(VIRTIO_SND)
    page = tmp_path / "plan.html"
    page.write_text(memory_map_page(document))
    dom = run_chromium("--dump-dom", page.as_uri())
    expected = {
        (vm["name"], f"{e['start']:#x}", f"{e['start']:#x}")
        for vm in document["vms"]
        for e in vm["map"]
    }
    assert entries_drawn(dom) == expected
    # The GIC vCPU interface frame is one physical page mapped by all three VMs: drawn once.
    assert dom.count('data-paddr="0x8040000"') == 1
    assert re.search(r'class="extent shared" data-paddr="0x8040000"', dom)


def test_chromium_screenshot(tmp_path: Path) -> None:
    page = tmp_path / "plan.html"
    page.write_text(memory_map_page(plan_document(VM_MINIMAL, "--board", "qemu-arm-virt")))
    shot = tmp_path / "plan.png"
    run_chromium(
        "--hide-scrollbars", "--window-size=1100,760", f"--screenshot={shot}", page.as_uri()
    )
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1100, 760)
    assert len(data) > 20_000  # a drawn page, not a blank one

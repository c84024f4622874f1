"""Several VMs' consoles on one stream (cli/labelled_console.py)."""

from __future__ import annotations

from sel4vmm.cli.labelled_console import LabelledConsole


def test_every_line_is_labelled_and_an_open_line_is_ended_when_another_vm_prints() -> None:
    out = bytearray()
    console = LabelledConsole(out.extend)
    a, b = console.sink("vm_a"), console.sink("vm_b")
    a(b"one\r\ntw")
    a(b"o\r\n")
    b(b"~ # ")
    a(b"three\n")
    b(b"ls\r\n")
    a(b"")
    assert bytes(out) == (b"[vm_a] one\r\n[vm_a] two\r\n[vm_b] ~ # \n[vm_a] three\n[vm_b] ls\r\n")

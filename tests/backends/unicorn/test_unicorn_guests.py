"""The bundled AArch64 test guests, booted end to end through ``run_guest``."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from sel4vmm.backends.unicorn.cpu import StopReason
from sel4vmm.backends.unicorn.session import (
    BUNDLED_GUESTS,
    bundled_guest,
    bundled_system,
    layout_from_system,
    run_guest,
)
from sel4vmm.errors import Sel4VmmError

#: Every test here runs on both emulated-MMIO paths (conftest.py).
pytestmark = pytest.mark.usefixtures("mmio_path")

REPO = Path(__file__).resolve().parents[3]
SMALL_RAM = 16 << 20


def test_hello_prints_the_dtb_memory_node_and_chosen(mmio_path: str) -> None:
    printed = bytearray()
    result = run_guest(console=printed.extend)
    assert result.ok, result.diagnostic
    assert result.mmio_path.startswith(mmio_path)  # hello only touches the PL011 and PSCI
    text = result.console_text
    assert "hello from the sel4vmm aarch64 guest" in text
    assert "memory: base 0x40000000 size 0x10000000" in text
    assert "/chosen bootargs: console=ttyAMA0" in text
    assert "/chosen stdout-path: /pl011@9000000" in text
    assert "psci version 0x10000" in text
    assert bytes(printed) == result.console  # the console callback saw every byte


@pytest.mark.parametrize("one_to_one", [True, False], ids=["1:1", "pools"])
def test_memtest_writes_and_verifies_all_its_ram(one_to_one: bool, mmio_path: str) -> None:
    result = run_guest(
        kernel_path=bundled_guest("memtest"), one_to_one=one_to_one, ram_size=SMALL_RAM
    )
    assert result.ok, result.diagnostic
    assert result.mmio_path.startswith(mmio_path)
    assert "memtest: testing 0x40086000..0x41000000" in result.console_text
    assert f"memtest: OK {0x4100_0000 - 0x4008_6000} bytes" in result.console_text


def test_gictimer_takes_timer_and_uart_interrupts(mmio_path: str) -> None:
    result = run_guest(kernel_path=bundled_guest("gictimer"), console_input=b"q")
    assert result.ok, result.diagnostic
    assert result.mmio_path.startswith(mmio_path)
    assert (result.trampoline_accesses > 0) is (mmio_path == "C extension")
    text = result.console_text
    assert "gic: 128 interrupt lines" in text
    assert "uart rx 'q'" in text
    assert [line for line in text.splitlines() if line.startswith("tick")] == [
        f"tick {n}" for n in range(1, 6)
    ]
    assert "gictimer: 5 timer ticks, 1 uart interrupts" in text
    assert result.statistics.irqs_delivered == 6


def test_gictimer_without_input_still_ticks() -> None:
    result = run_guest(kernel_path=bundled_guest("gictimer"))
    assert result.ok, result.diagnostic
    assert "gictimer: 5 timer ticks, 0 uart interrupts" in result.console_text


def test_dma_is_right_with_one_to_one_ram(mmio_path: str) -> None:
    result = run_guest(kernel_path=bundled_guest("dma"), ram_size=SMALL_RAM)
    assert result.ok, result.diagnostic
    assert result.mmio_path.startswith(mmio_path)
    assert (result.trampoline_accesses > 0) is (mmio_path == "C extension")
    assert "dma: OK 4096 bytes copied" in result.console_text


def test_dma_is_detectably_wrong_without_one_to_one_ram() -> None:
    result = run_guest(kernel_path=bundled_guest("dma"), ram_size=SMALL_RAM, one_to_one=False)
    assert result.ok, result.diagnostic  # the guest ran to its end and reported
    assert "dma: MISMATCH" in result.console_text or "dma: ERROR" in result.console_text
    assert "dma: OK" not in result.console_text


def test_touching_an_address_not_given_ends_in_a_clean_diagnostic(mmio_path: str) -> None:
    result = run_guest(kernel_path=bundled_guest("badaccess"), ram_size=SMALL_RAM)
    assert result.stop_reason is StopReason.GUEST_FAULT
    assert result.mmio_path.startswith(mmio_path)
    assert (result.trampoline_accesses > 0) is (mmio_path == "C extension")
    assert "the read returned" not in result.console_text
    diagnostic = result.diagnostic
    assert diagnostic is not None
    assert diagnostic.address == 0x2000_0000
    assert diagnostic.access == "4-byte read"
    # The PC is the faulting load itself, and its base register holds the address.
    image = bundled_guest("badaccess").read_bytes()
    offset = diagnostic.pc - 0x4008_0000
    insn = int.from_bytes(image[offset : offset + 4], "little")
    assert insn & 0xFFC0_0000 == 0xB940_0000  # LDR Wt, [Xn, #imm]
    assert diagnostic.registers[f"x{insn >> 5 & 0x1F}"] == 0x2000_0000
    text = str(diagnostic)
    assert "no reservation claims this address" in text
    assert "x30" in text and "pc" in text


def test_the_libvmm_simple_system_is_read_for_the_layout(realworld: Path) -> None:
    system = realworld / "libvmm/simple/board/qemu_virt_aarch64/simple.system"
    layout = layout_from_system(system)
    assert (layout.name, layout.ram_base, layout.ram_size) == ("linux", 0x4000_0000, 0x1000_0000)
    assert (layout.uart.guest_addr, layout.uart.paddr) == (0x0900_0000, 0x0900_0000)
    assert (layout.gic_vcpu.guest_addr, layout.gic_vcpu.paddr) == (0x0801_0000, 0x0804_0000)
    result = run_guest(system)
    assert result.ok and "memory: base 0x40000000" in result.console_text


def test_the_bundled_system_is_libvmms_simple_system(realworld: Path) -> None:
    original = (realworld / "libvmm/simple/board/qemu_virt_aarch64/simple.system").read_text()
    bundled = bundled_system().read_text()
    assert original.split("<system>", 1)[1] == bundled.split("<system>", 1)[1]


def test_a_system_without_a_virtual_machine_is_refused(tmp_path: Path) -> None:
    system = tmp_path / "novm.system"
    system.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<system>\n'
        '  <protection_domain name="pd"><program_image path="pd.elf"/></protection_domain>\n'
        "</system>\n"
    )
    with pytest.raises(Sel4VmmError, match="describes no virtual machine"):
        run_guest(system)


def test_user_errors_are_sel4vmm_errors(tmp_path: Path) -> None:
    with pytest.raises(Sel4VmmError, match="the kernel file does not exist"):
        run_guest(kernel_path=tmp_path / "missing.bin")
    with pytest.raises(Sel4VmmError, match="unknown backend"):
        run_guest(backend="qemu-kvm-magic")
    with pytest.raises(Sel4VmmError, match="no bundled guest"):
        bundled_guest("doom")
    with pytest.raises(Sel4VmmError, match="cannot be one untyped"):
        run_guest(ram_size=0x300_0000)  # 48 MiB: not a power of two for 1:1
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(SMALL_RAM))
    with pytest.raises(Sel4VmmError, match="does not fit"):
        run_guest(kernel_path=big, ram_size=SMALL_RAM)


@pytest.mark.skipif(shutil.which("aarch64-linux-gnu-gcc") is None, reason="no cross compiler")
def test_committed_guest_binaries_rebuild_byte_for_byte(tmp_path: Path) -> None:
    subprocess.run(
        ["sh", str(REPO / "guests" / "aarch64" / "build.sh"), str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    for name in BUNDLED_GUESTS:
        for suffix in (".bin", ".elf"):
            built = (tmp_path / f"{name}{suffix}").read_bytes()
            committed = bundled_guest(name).with_suffix(suffix).read_bytes()
            assert built == committed, f"{name}{suffix} differs from the committed binary"

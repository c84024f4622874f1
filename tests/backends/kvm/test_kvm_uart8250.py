"""The 8250 UART as Linux's 8250 driver and earlyprintk drive it."""

from __future__ import annotations

from sel4vmm.backends.kvm.uart8250 import COM1_IRQ, Uart8250
from sel4vmm.devices.irq import IrqLine, LineLevels

THR, IER, IIR, LCR, MCR, LSR, MSR, SCR = range(8)


def com1_levels(controller: LineLevels) -> list[bool]:
    """The levels COM1's line took, in order, as the controller saw them."""
    return [level for line, level in controller.changes if line == COM1_IRQ]


def test_transmitted_bytes_reach_the_sink_and_the_buffer() -> None:
    sink: list[bytes] = []
    uart = Uart8250(output=sink.append)
    for byte in b"ok\n":
        uart.port_write(THR, 1, byte)
    assert b"".join(sink) == b"ok\n"
    assert uart.text() == "ok\n"


def test_transmitter_is_always_ready() -> None:
    uart = Uart8250()
    assert uart.port_read(LSR, 1) & 0x60 == 0x60


def test_divisor_latch_hides_thr_and_ier() -> None:
    uart = Uart8250()
    uart.port_write(LCR, 1, 0x83)
    uart.port_write(THR, 1, 0x01)  # DLL: 115200 baud
    uart.port_write(IER, 1, 0x00)  # DLM
    assert (uart.port_read(THR, 1), uart.port_read(IER, 1)) == (1, 0)
    uart.port_write(LCR, 1, 0x03)
    assert uart.divisor == 1
    assert uart.transmitted == b""


def test_scratch_register_and_fifo_identify_a_16550a() -> None:
    uart = Uart8250()
    uart.port_write(SCR, 1, 0xA5)
    assert uart.port_read(SCR, 1) == 0xA5
    uart.port_write(IIR, 1, 0x01)
    assert uart.port_read(IIR, 1) & 0xC0 == 0xC0


def test_loopback_reflects_modem_control_and_returns_data() -> None:
    uart = Uart8250()
    uart.port_write(MCR, 1, 0x10 | 0x0A)  # loop, RTS, OUT2 (the driver's probe)
    assert uart.port_read(MSR, 1) & 0xF0 == 0x90
    uart.port_write(THR, 1, 0x55)
    assert uart.port_read(LSR, 1) & 0x01
    assert uart.port_read(THR, 1) == 0x55
    assert uart.transmitted == b""


def test_thr_empty_interrupt_is_raised_gated_by_out2_and_acknowledged_by_iir() -> None:
    controller = LineLevels()
    uart = Uart8250(irq=IrqLine(controller, COM1_IRQ))
    uart.port_write(MCR, 1, 0x00)
    uart.port_write(IER, 1, 0x02)
    assert com1_levels(controller) == []  # OUT2 low: the PC's IRQ line stays quiet
    uart.port_write(MCR, 1, 0x08)
    assert com1_levels(controller) == [True]
    assert uart.port_read(IIR, 1) & 0x0F == 0x02
    assert com1_levels(controller) == [True, False]
    assert uart.port_read(IIR, 1) & 0x0F == 0x01
    uart.port_write(THR, 1, ord("x"))
    assert com1_levels(controller) == [True, False, True]


def test_received_bytes_raise_the_data_interrupt_until_read() -> None:
    controller = LineLevels()
    uart = Uart8250(irq=IrqLine(controller, COM1_IRQ))
    uart.port_write(IER, 1, 0x01)
    uart.receive(b"a")
    assert uart.irq_level and uart.port_read(IIR, 1) & 0x0F == 0x04
    assert uart.port_read(THR, 1) == ord("a")
    assert com1_levels(controller) == [True, False]
    assert uart.port_read(LSR, 1) & 0x01 == 0

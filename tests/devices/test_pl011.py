"""The PL011 model, without a CPU: output, receive interrupt line, identification."""

from __future__ import annotations

from sel4vmm.devices.pl011 import (
    FR_RXFE,
    INT_RX,
    UARTDR,
    UARTFR,
    UARTICR,
    UARTIMSC,
    UARTMIS,
    Pl011,
)


def test_uart_output_and_receive_interrupt_line() -> None:
    out = bytearray()
    levels: list[bool] = []
    uart = Pl011(out.extend, levels.append)
    uart.write(UARTDR, 4, ord("A"))
    assert out == b"A"
    assert uart.read(UARTFR, 4) & FR_RXFE
    uart.feed_input(b"hi")
    assert not uart.irq_asserted  # receive interrupt still masked
    uart.write(UARTIMSC, 4, INT_RX)
    assert uart.irq_asserted and levels == [True]
    assert uart.read(UARTMIS, 4) & INT_RX
    uart.write(UARTICR, 4, INT_RX)
    assert uart.irq_asserted  # level: input is still queued
    assert uart.read(UARTDR, 4) == ord("h")
    assert uart.read(UARTDR, 4) == ord("i")
    assert not uart.irq_asserted and levels == [True, False]
    assert uart.read(0xFE0, 4) == 0x11  # UARTPeriphID0 of a PL011

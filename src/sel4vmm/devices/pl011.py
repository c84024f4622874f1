"""The board's PL011 UART, as the guest sees it when the VMM passes the device through.

On real hardware seL4 maps the UART's frame straight into the guest and only its interrupt
goes through the VMM (``<irq irq="33" id="1"/>`` in libvmm's ``simple.system``).  Here the
"hardware" is this model: the backend's board maps its frame into the guest at whatever guest
address the system description gives it, so the guest talks to it without any VMM fault, and
the model raises its interrupt line, which the backend forwards to the vGIC as SPI 1
(INTID 33) exactly as the VMM forwards the real IRQ.

Only what a console needs is modelled: the data register, the flag register, the
interrupt mask/status/clear registers and the identification registers Linux's
``amba-pl011`` driver probes.  Transmit is immediate (the FIFO never fills).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

#: Register offsets (ARM PrimeCell UART PL011 TRM, table 3-1).
UARTDR = 0x000
UARTRSR = 0x004
UARTFR = 0x018
UARTIBRD = 0x024
UARTFBRD = 0x028
UARTLCR_H = 0x02C
UARTCR = 0x030
UARTIFLS = 0x034
UARTIMSC = 0x038
UARTRIS = 0x03C
UARTMIS = 0x040
UARTICR = 0x044
UARTDMACR = 0x048

FR_RXFE = 1 << 4
FR_TXFE = 1 << 7
#: Receive and receive-timeout interrupts: both mean "there is input".
INT_RX = 1 << 4
INT_RT = 1 << 6
INT_TX = 1 << 5

#: UARTPeriphID0-3 and UARTPCellID0-3 at 0xFE0..0xFFC: a PL011 r1p5.
_ID_REGISTERS = {
    0xFE0: 0x11,
    0xFE4: 0x10,
    0xFE8: 0x34,
    0xFEC: 0x00,
    0xFF0: 0x0D,
    0xFF4: 0xF0,
    0xFF8: 0x05,
    0xFFC: 0xB1,
}

#: Size of the PL011's register frame.
PL011_FRAME_SIZE = 0x1000


class Pl011:
    """A PL011 with an output callback, an input queue and an interrupt line."""

    def __init__(
        self,
        output: Callable[[bytes], None],
        irq_line: Callable[[bool], None] | None = None,
    ) -> None:
        self._output = output
        self._irq_line = irq_line
        self._rx: deque[int] = deque()
        self._registers = {UARTIBRD: 0, UARTFBRD: 0, UARTLCR_H: 0, UARTCR: 0x300, UARTIFLS: 0x12}
        self.interrupt_mask = 0
        self._tx_raw = INT_TX  # the transmit FIFO is always below its trigger level
        self._line_level = False

    # -- the host side -------------------------------------------------------------------
    def feed_input(self, data: bytes) -> None:
        """Queue bytes typed at the console; raises the receive interrupt if unmasked."""
        self._rx.extend(data)
        self._update_line()

    @property
    def has_input(self) -> bool:
        return bool(self._rx)

    @property
    def irq_asserted(self) -> bool:
        return self._line_level

    # -- the guest side ------------------------------------------------------------------
    def raw_interrupts(self) -> int:
        return (INT_RX | INT_RT if self._rx else 0) | self._tx_raw

    def read(self, offset: int, size: int) -> int:
        """A guest load from the register frame (unknown offsets read as zero)."""
        del size  # registers are 32 bits wide; narrower loads see the low bits
        if offset == UARTDR:
            value = self._rx.popleft() if self._rx else 0
            self._update_line()
            return value
        if offset == UARTFR:
            return FR_TXFE | (0 if self._rx else FR_RXFE)
        if offset == UARTIMSC:
            return self.interrupt_mask
        if offset == UARTRIS:
            return self.raw_interrupts()
        if offset == UARTMIS:
            return self.raw_interrupts() & self.interrupt_mask
        if offset in _ID_REGISTERS:
            return _ID_REGISTERS[offset]
        return self._registers.get(offset, 0)

    def write(self, offset: int, size: int, value: int) -> None:
        """A guest store to the register frame (read-only and unknown offsets are ignored)."""
        del size
        if offset == UARTDR:
            self._output(bytes([value & 0xFF]))
        elif offset == UARTIMSC:
            self.interrupt_mask = value & 0x7FF
            self._update_line()
        elif offset == UARTICR:
            # Receive interrupts stay raised while input is queued (level, as on hardware
            # with the FIFO above its trigger level); transmit can be acknowledged.
            if value & INT_TX:
                self._tx_raw = 0
            self._update_line()
        elif offset in self._registers:
            self._registers[offset] = value

    def _update_line(self) -> None:
        level = bool(self.raw_interrupts() & self.interrupt_mask)
        if level != self._line_level:
            self._line_level = level
            if self._irq_line is not None:
                self._irq_line(level)

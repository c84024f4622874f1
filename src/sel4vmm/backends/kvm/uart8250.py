"""A 16550A-compatible 8250 UART at the PC's COM1 (ports 0x3f8-0x3ff, IRQ 4).

It models what Linux's 8250 driver and ``earlyprintk=serial`` actually exercise: the divisor
latch, the scratch register, the FIFO-enable bits that make it identify as a 16550A, the
loopback test the driver's autoconfiguration runs (``MCR`` loop bit reflected in ``MSR``),
transmit-empty and receive-data interrupts gated by ``OUT2`` as on real PC boards, and an
always-ready transmitter (output is never slower than the guest).  Transmitted bytes go to
a sink and are kept so tests and the command line can show them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Final

from sel4vmm.devices.irq import IrqLine

COM1_PORT: Final = 0x3F8
COM1_IRQ: Final = 4

# Register offsets.
_RBR_THR: Final = 0  # receive buffer / transmit holding (DLL when DLAB)
_IER: Final = 1  # interrupt enable (DLM when DLAB)
_IIR_FCR: Final = 2  # interrupt identification (read) / FIFO control (write)
_LCR: Final = 3
_MCR: Final = 4
_LSR: Final = 5
_MSR: Final = 6
_SCR: Final = 7

_LCR_DLAB: Final = 0x80
_IER_RDI: Final = 0x01  # received data available
_IER_THRI: Final = 0x02  # transmit holding register empty
_IIR_NO_INT: Final = 0x01
_IIR_THRI: Final = 0x02
_IIR_RDI: Final = 0x04
_IIR_FIFO_ENABLED: Final = 0xC0
_FCR_ENABLE_FIFO: Final = 0x01
_LSR_DR: Final = 0x01
_LSR_THRE: Final = 0x20
_LSR_TEMT: Final = 0x40
_MCR_DTR: Final = 0x01
_MCR_RTS: Final = 0x02
_MCR_OUT1: Final = 0x04
_MCR_OUT2: Final = 0x08
_MCR_LOOP: Final = 0x10
_MSR_CTS: Final = 0x10
_MSR_DSR: Final = 0x20
_MSR_RI: Final = 0x40
_MSR_DCD: Final = 0x80


class Uart8250:
    """The UART's registers; plug it into a :class:`~.portio.PortIoBus` at 0x3f8.

    ``irq`` is its interrupt line (COM1's GSI 4 on :class:`~.irqchip.KvmIrqchip` in a
    session), raised and lowered like every other device's.
    """

    def __init__(
        self,
        output: Callable[[bytes], None] | None = None,
        irq: IrqLine | None = None,
    ) -> None:
        self._output = output
        self._irq = irq
        self.transmitted = bytearray()
        self._input: deque[int] = deque()
        self.divisor = 12  # 9600 baud, the power-on value firmware leaves
        self.ier = 0
        self.lcr = 0x03
        self.mcr = _MCR_OUT2
        self.scratch = 0
        self.fifo_enabled = False
        #: Set when the transmitter became empty and the guest has not yet acknowledged it.
        self._thr_interrupt = False
        self._irq_level = False

    # --- host side --------------------------------------------------------------------

    def receive(self, data: bytes) -> None:
        """Bytes typed at the console: they appear in RBR (and raise the RX interrupt)."""
        self._input.extend(data)
        self._update_irq()

    # --- guest side -------------------------------------------------------------------

    def port_read(self, offset: int, width: int) -> int:
        dlab = bool(self.lcr & _LCR_DLAB)
        if offset == _RBR_THR:
            if dlab:
                return self.divisor & 0xFF
            value = self._input.popleft() if self._input else 0
            self._update_irq()
            return value
        if offset == _IER:
            return (self.divisor >> 8) & 0xFF if dlab else self.ier
        if offset == _IIR_FCR:
            identification = self._pending_interrupt()
            if identification == _IIR_THRI:
                # Reading IIR while it reports "THR empty" acknowledges that interrupt.
                self._thr_interrupt = False
                self._update_irq()
            return identification | (_IIR_FIFO_ENABLED if self.fifo_enabled else 0)
        if offset == _LCR:
            return self.lcr
        if offset == _MCR:
            return self.mcr
        if offset == _LSR:
            return _LSR_THRE | _LSR_TEMT | (_LSR_DR if self._input else 0)
        if offset == _MSR:
            return self._modem_status()
        return self.scratch

    def port_write(self, offset: int, width: int, value: int) -> None:
        value &= 0xFF
        dlab = bool(self.lcr & _LCR_DLAB)
        if offset == _RBR_THR:
            if dlab:
                self.divisor = (self.divisor & 0xFF00) | value
                return
            self._transmit(value)
        elif offset == _IER:
            if dlab:
                self.divisor = (self.divisor & 0x00FF) | (value << 8)
                return
            enabling_thri = bool(value & _IER_THRI) and not self.ier & _IER_THRI
            self.ier = value & 0x0F
            if enabling_thri:
                # The transmitter is always empty, so enabling its interrupt fires it.
                self._thr_interrupt = True
            self._update_irq()
        elif offset == _IIR_FCR:
            self.fifo_enabled = bool(value & _FCR_ENABLE_FIFO)
        elif offset == _LCR:
            self.lcr = value
        elif offset == _MCR:
            self.mcr = value & 0x1F
            self._update_irq()
        elif offset == _SCR:
            self.scratch = value

    # --- internals --------------------------------------------------------------------

    def _transmit(self, byte: int) -> None:
        if self.mcr & _MCR_LOOP:
            self._input.append(byte)
        else:
            self.transmitted.append(byte)
            if self._output is not None:
                self._output(bytes((byte,)))
        self._thr_interrupt = True
        self._update_irq()

    def _modem_status(self) -> int:
        if self.mcr & _MCR_LOOP:
            status = 0
            status |= _MSR_CTS if self.mcr & _MCR_RTS else 0
            status |= _MSR_DSR if self.mcr & _MCR_DTR else 0
            status |= _MSR_RI if self.mcr & _MCR_OUT1 else 0
            status |= _MSR_DCD if self.mcr & _MCR_OUT2 else 0
            return status
        return _MSR_DCD | _MSR_DSR | _MSR_CTS

    def _pending_interrupt(self) -> int:
        if self.ier & _IER_RDI and self._input:
            return _IIR_RDI
        if self.ier & _IER_THRI and self._thr_interrupt:
            return _IIR_THRI
        return _IIR_NO_INT

    def _update_irq(self) -> None:
        level = self._pending_interrupt() != _IIR_NO_INT and bool(self.mcr & _MCR_OUT2)
        if level != self._irq_level:
            self._irq_level = level
            if self._irq is not None:
                self._irq.set(level)

    @property
    def irq_level(self) -> bool:
        return self._irq_level

    def text(self) -> str:
        """Everything transmitted so far, decoded leniently (kernels print UTF-8)."""
        return self.transmitted.decode("utf-8", "replace")

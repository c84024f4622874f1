"""A VMM-emulated DMA engine: it copies *physical* memory, as bus-master hardware does.

The guest programs it with addresses it believes are physical (its guest-physical
addresses).  Without an SMMU nothing translates them, so the engine reads and writes
:attr:`PhysicalMemory <sel4vmm.sel4.physmem.PhysicalMemory>` at exactly those addresses.
The copy is therefore right only when guest RAM is mapped 1:1 (IPA == PA): the reason the
CAmkES VM configuration offers ``map_one_to_one`` for guests that drive DMA-capable
passthrough devices (seed 000).  With RAM from pools the copy lands somewhere else and the
``dma`` test guest detects it.

That hardware lets a guest reach memory that is not its own, so the engine *says* so:
every transfer touching physical memory outside the guest's frames is reported with the
addresses and whose memory it is (another VM's frames, kernel objects, memory reserved for
seL4 and the VMM, nothing) — the answer comes from the seL4 model
(:mod:`sel4vmm.sel4.ownership`) — and the transfer still happens, as it would on the board.
With ``smmu`` the engine sits behind an SMMU that shares the VM's stage-2 translation:
device addresses are guest-physical, translated through the VM's address space, and a
transfer that leaves the guest's RAM is stopped (STATUS error bit, nothing copied) with a
diagnostic.

Registers (32-bit, offsets from the device base): ``SRC_LO/HI`` 0x00/0x04, ``DST_LO/HI``
0x08/0x0C, ``LEN`` 0x10, ``CTRL`` 0x14 (write 1 to start; the copy completes at once),
``STATUS`` 0x18 (bit 0 done, bit 1 error: an address outside the board's memory, or an
SMMU fault).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sel4vmm.errors import Sel4VmmError
from sel4vmm.memory import FaultResult, MemoryFault
from sel4vmm.sel4.physmem import PhysicalMemory
from sel4vmm.vm import VirtualMachine

DMA_SRC_LO = 0x00
DMA_SRC_HI = 0x04
DMA_DST_LO = 0x08
DMA_DST_HI = 0x0C
DMA_LEN = 0x10
DMA_CTRL = 0x14
DMA_STATUS = 0x18
CTRL_START = 1
STATUS_DONE = 1
STATUS_ERROR = 2
#: The register window the board reserves for the engine.
DMA_FRAME_SIZE = 0x1000
#: The largest single transfer; bigger lengths are refused with STATUS_ERROR.
MAX_TRANSFER = 1 << 24
#: Reports kept per engine; later ones are only counted (a guest may DMA in a loop).
MAX_REPORTS = 16


class DmaEngine:
    """A memory-to-memory copy engine behind a fault-callback reservation.

    ``vm`` is the guest that programs it (its memory is the guest's own); ``report``
    receives one line per transfer that reached foreign memory or was stopped.
    """

    def __init__(
        self,
        physmem: PhysicalMemory,
        vm: VirtualMachine | None = None,
        *,
        smmu: bool = False,
        report: Callable[[str], None] | None = None,
    ) -> None:
        if smmu and vm is None:
            raise Sel4VmmError("an SMMU translates through a VM's address space: give the VM")
        self._physmem = physmem
        self._vm = vm
        self.smmu = smmu
        self._report = report
        self._registers = dict.fromkeys(
            (DMA_SRC_LO, DMA_SRC_HI, DMA_DST_LO, DMA_DST_HI, DMA_LEN), 0
        )
        self.status = 0
        self.transfers = 0
        #: Transfers that touched foreign memory (no SMMU) or were stopped (SMMU).
        self.reported = 0
        self.reports: list[str] = []

    def register_fault(self, vm: Any, fault: MemoryFault, base: int) -> FaultResult:
        """Fault callback of the engine's reservation (cookie: its guest address)."""
        del vm
        offset = fault.address - base
        if fault.width != 4 or offset & 3:
            return FaultResult.UNHANDLED  # the registers are 32-bit only
        if fault.is_write:
            self.write(offset, fault.value)
        else:
            fault.reply(self.read(offset))
        return FaultResult.HANDLED

    def read(self, offset: int) -> int:
        if offset == DMA_STATUS:
            return self.status
        return self._registers.get(offset, 0)

    def write(self, offset: int, value: int) -> None:
        if offset in self._registers:
            self._registers[offset] = value & 0xFFFF_FFFF
        elif offset == DMA_CTRL and value & CTRL_START:
            self._transfer()

    def _say(self, text: str) -> None:
        self.reported += 1
        if len(self.reports) < MAX_REPORTS:
            self.reports.append(text)
            if self._report is not None:
                self._report(text)
        elif len(self.reports) == MAX_REPORTS and self._report is not None:
            self.reports.append("dma: further reports suppressed")
            self._report(self.reports[-1])

    def _transfer(self) -> None:
        source = self._registers[DMA_SRC_HI] << 32 | self._registers[DMA_SRC_LO]
        destination = self._registers[DMA_DST_HI] << 32 | self._registers[DMA_DST_LO]
        length = self._registers[DMA_LEN]
        if length > MAX_TRANSFER:
            self.status = STATUS_DONE | STATUS_ERROR
            return
        if self.smmu:
            done = self._translated_copy(source, destination, length)
        else:
            done = self._physical_copy(source, destination, length)
        if done:
            self.transfers += 1
        self.status = STATUS_DONE if done else STATUS_DONE | STATUS_ERROR

    def _physical_copy(self, source: int, destination: int, length: int) -> bool:
        """No SMMU: these are bus (physical) addresses, whatever the guest meant."""
        self._check_ownership("read", source, length)
        self._check_ownership("write", destination, length)
        try:
            data = bytes(self._physmem.view(source, length))
            self._physmem.view(destination, length)[:] = data
        except Sel4VmmError:
            return False
        return True

    def _check_ownership(self, access: str, paddr: int, length: int) -> None:
        vm = self._vm
        if vm is None or length == 0:
            return
        me = vm.allocator.owner
        foreign = [
            f"[{lo:#x}, {hi:#x}) is {owner}"
            for lo, hi, owner in vm.ownership.pieces(paddr, length)
            if not (owner.what == "frames" and owner.holder == me)
        ]
        if foreign:
            self._say(
                f"dma: no SMMU: {vm.name}'s DMA {access} of {length:#x} bytes at physical "
                f"{paddr:#x} reaches memory that is not {vm.name}'s: {'; '.join(foreign)} "
                "(the transfer went ahead, as on hardware without an SMMU; map guest RAM "
                "1:1 or run with --smmu)"
            )

    def _translated_copy(self, source: int, destination: int, length: int) -> bool:
        """Behind an SMMU: device addresses are guest-physical, confined to guest RAM."""
        vm = self._vm
        assert vm is not None
        pieces = []
        for access, addr in (("read", source), ("write", destination)):
            try:
                pieces.append(vm.ram.physical_pieces(addr, length))
            except Sel4VmmError as error:
                self._say(
                    f"dma: SMMU fault: {vm.name}'s DMA {access} of {length:#x} bytes at "
                    f"guest-physical {addr:#x} leaves its RAM ({error.message}); the "
                    "transfer was stopped"
                )
                return False
        data = b"".join(bytes(self._physmem.view(p, n)) for _, p, n in pieces[0])
        offset = 0
        for _, paddr, size in pieces[1]:
            self._physmem.view(paddr, size)[:] = data[offset : offset + size]
            offset += size
        return True

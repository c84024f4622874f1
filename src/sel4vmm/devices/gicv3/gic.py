"""One GICv3: its state, distributor, redistributors and CPU interface, attached to a VM."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sel4vmm.devices.gicv3.cpu_interface import CpuInterface, Encoding
from sel4vmm.devices.gicv3.distributor import FRAME_SIZE as DISTRIBUTOR_SIZE
from sel4vmm.devices.gicv3.distributor import Distributor
from sel4vmm.devices.gicv3.layout import Gicv3Layout
from sel4vmm.devices.gicv3.lines import Gicv3Line, PrivateLines
from sel4vmm.devices.gicv3.redistributor import STRIDE, Redistributors
from sel4vmm.devices.gicv3.state import NUM_PRIVATE, NUM_SGIS, Gicv3State, Interrupt
from sel4vmm.errors import Sel4VmmError
from sel4vmm.memory import Reservation

#: SPIs by default: INTIDs 32-127 (GICD_TYPER.ITLinesNumber = 3), as the GICv2 model.
DEFAULT_SPIS = 96
#: INTIDs stop at 1019 and the distributor implements whole 32-INTID words: 32 + 960.
MAX_SPIS = 960


class Gicv3:
    """A GICv3 for ``num_cpus`` PEs with ``num_spis`` SPIs (a multiple of 32).

    ``affinities[i]`` is PE ``i``'s MPIDR_EL1 affinity packed Aff3.Aff2.Aff1.Aff0 (Aff3
    in bits 31:24); by default PE ``i`` has Aff0 = ``i``, as the unicorn backend numbers
    its vCPUs.  ``on_change()`` is called after anything that may change
    :meth:`pending_irq` of some PE, so a backend can re-check and kick a vCPU.
    """

    def __init__(
        self,
        num_cpus: int = 1,
        num_spis: int = DEFAULT_SPIS,
        *,
        affinities: Sequence[int] | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        if num_spis % 32 or not 0 < num_spis <= MAX_SPIS:
            raise ValueError("a GICv3 has a multiple of 32 SPIs, 32 to 960")
        if not 1 <= num_cpus <= 512:
            raise ValueError("the GICv3 model serves 1 to 512 PEs")
        chosen = list(range(num_cpus)) if affinities is None else list(affinities)
        if len(chosen) != num_cpus or len(set(chosen)) != num_cpus:
            raise ValueError(f"give {num_cpus} distinct affinities, one per PE")
        self._on_change = on_change
        self.state = Gicv3State(num_cpus, num_spis, chosen)
        self.distributor = Distributor(self.state, self._changed)
        self.redistributors = Redistributors(self.state, self._changed)
        self.cpu_interface = CpuInterface(self.state, self._changed)
        self.reservations: list[Reservation] = []

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()

    @property
    def num_cpus(self) -> int:
        return self.state.num_cpus

    # -- placing it in a guest -------------------------------------------------------------
    def attach(self, vm: Any, layout: Gicv3Layout) -> list[Reservation]:
        """Reserve the distributor and every PE's redistributor pair in ``vm``'s address
        space with this model's fault callbacks.  All or nothing."""
        if layout.capacity() < self.num_cpus:
            raise Sel4VmmError(
                f"the GICv3 {layout.node or 'layout'} has redistributor space for "
                f"{layout.capacity()} PE(s) but the VM has {self.num_cpus} vCPUs",
                fix=f"give the redistributor region {self.num_cpus * STRIDE:#x} bytes "
                "(128 KiB per vCPU) in the node's reg, or use fewer vCPUs",
            )
        made: list[Reservation] = []
        try:
            made.append(
                vm.memory.reserve_at(
                    layout.distributor,
                    DISTRIBUTOR_SIZE,
                    self.distributor.fault,
                    layout.distributor,
                    label="GICv3 distributor",
                )
            )
            first = 0
            last: set[int] = set()
            for base, size in layout.redistributor_regions:
                count = min(size // STRIDE, self.num_cpus - first)
                if count <= 0:
                    break
                made.append(
                    vm.memory.reserve_at(
                        base,
                        count * STRIDE,
                        self.redistributors.fault,
                        (base, first),
                        label=f"GICv3 redistributors {first}-{first + count - 1}",
                    )
                )
                first += count
                last.add(first - 1)
        except Exception:
            for reservation in reversed(made):
                vm.memory.free(reservation)
            raise
        self.redistributors.last_in_region = last
        self.reservations = made
        return made

    # -- interrupt inputs ------------------------------------------------------------------
    def _input(self, intid: int, cpu: int | None) -> Interrupt:
        """The state behind an input line; a line that is not a PPI or SPI is a bug."""
        if NUM_SGIS <= intid < NUM_PRIVATE:
            if cpu is None or not 0 <= cpu < self.num_cpus:
                raise ValueError(f"PPI {intid} needs the PE it belongs to (0-{self.num_cpus - 1})")
            return self.state.interrupt(intid, cpu)
        if NUM_PRIVATE <= intid < self.state.num_lines:
            if cpu is not None:
                raise ValueError(f"SPI {intid} is routed by GICD_IROUTER, not given a PE")
            return self.state.interrupt(intid, 0)
        raise ValueError(
            f"INTID {intid} is not a PPI or an SPI of this GIC (16-{self.state.num_lines - 1})"
        )

    def raise_line(self, intid: int, cpu: int | None = None) -> None:
        """Assert the input of SPI ``intid`` (or PPI ``intid`` of PE ``cpu``).

        Edge-triggered (GICD_ICFGR/GICR_ICFGR1): a rising edge latches it pending.
        Level-sensitive: pending while asserted (IHI 0069, the interrupt lifecycle).
        """
        irq = self._input(intid, cpu)
        if irq.edge and not irq.level:
            irq.latched = True
        irq.level = True
        self._changed()

    def lower_line(self, intid: int, cpu: int | None = None) -> None:
        """Deassert the input; a level-sensitive interrupt stops being pending."""
        self._input(intid, cpu).level = False
        self._changed()

    def set_level(self, line: int, level: bool) -> None:
        """Set SPI ``line``'s input: the devices layer's interrupt-controller call
        (``InterruptController.set_level``), so an ``IrqLine(gic, spi)`` drives it."""
        if level:
            self.raise_line(line)
        else:
            self.lower_line(line)

    def private_lines(self, cpu: int) -> PrivateLines:
        """PE ``cpu``'s PPIs as an interrupt controller (``set_level(ppi, level)``), for
        per-vCPU sources such as the generic timer."""
        if not 0 <= cpu < self.num_cpus:
            raise ValueError(f"PE {cpu} does not exist ({self.num_cpus} PEs)")
        return PrivateLines(self, cpu)

    def line(self, intid: int, cpu: int | None = None) -> Gicv3Line:
        """An :class:`~sel4vmm.devices.gicv3.lines.InterruptLine` for one input."""
        self._input(intid, cpu)
        return Gicv3Line(self, intid, cpu)

    # -- the CPU interface -----------------------------------------------------------------
    def read_sysreg(self, cpu: int, register: str | Encoding) -> int:
        return self.cpu_interface.read_sysreg(cpu, register)

    def write_sysreg(self, cpu: int, register: str | Encoding, value: int) -> None:
        self.cpu_interface.write_sysreg(cpu, register, value)

    def pending_irq(self, cpu: int) -> bool:
        return self.cpu_interface.pending_irq(cpu)

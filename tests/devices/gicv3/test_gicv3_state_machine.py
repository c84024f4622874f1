"""A hypothesis state machine: the model, driven through registers and lines, against a
tiny reference of pending/active/enabled per (cpu, intid) and who is signalled.

The reference is written from the architecture's rules (ARM IHI 0069, the interrupt
lifecycle and "Interrupt prioritization"), not from the model's code: an interrupt is
pending when latched or level-high (level-sensitive ones); a PE is offered its
highest-priority pending, enabled, inactive interrupt (lowest INTID on a tie) if that is
below the priority mask and below every priority it has acknowledged and not dropped.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tests.devices.gicv3.harness import Guest, make_guest

CPUS = 2
SGIS = (0, 1)
PPI = 27
SPIS = (32, 33)
EDGE = {0, 1, 33}
PRIORITY = {0: 0x80, 1: 0xA0, 27: 0x90, 32: 0x88, 33: 0xA0}
#: GICD_IROUTER of each SPI: 32 to PE 1, 33 to PE 0.
TARGET = {32: 1, 33: 0}
PMR = 0xF0
INTIDS = st.sampled_from((*SGIS, PPI, *SPIS))
PE = st.integers(0, CPUS - 1)

Key = tuple[int | None, int]


class Reference:
    def __init__(self) -> None:
        keys: list[Key] = [(c, i) for c in range(CPUS) for i in (*SGIS, PPI)]
        keys += [(None, i) for i in SPIS]
        self.enabled = dict.fromkeys(keys, False)
        self.latched = dict.fromkeys(keys, False)
        self.level = dict.fromkeys(keys, False)
        self.active = dict.fromkeys(keys, False)
        self.acked: list[list[int]] = [[] for _ in range(CPUS)]

    @staticmethod
    def key(intid: int, cpu: int) -> Key:
        return (None, intid) if intid >= 32 else (cpu, intid)

    def pending(self, key: Key) -> bool:
        return self.latched[key] or (self.level[key] and key[1] not in EDGE)

    def offered(self, cpu: int) -> int | None:
        candidates = [(cpu, i) for i in (*SGIS, PPI)]
        candidates += [(None, i) for i in SPIS if TARGET[i] == cpu]
        ready = [
            k for k in candidates if self.pending(k) and self.enabled[k] and not self.active[k]
        ]
        if not ready:
            return None
        best = min(ready, key=lambda k: (PRIORITY[k[1]], k[1]))[1]
        running = min((PRIORITY[i] for i in self.acked[cpu]), default=0x100)
        return best if PRIORITY[best] < PMR and PRIORITY[best] < running else None

    def raise_(self, key: Key) -> None:
        if key[1] in EDGE and not self.level[key]:
            self.latched[key] = True
        self.level[key] = True


class Gicv3Machine(RuleBasedStateMachine):
    #: ICC_CTLR_EL1.EOImode of every PE: 0, EOIR drops and deactivates; 1, DIR deactivates.
    EOI_MODE = 0

    def __init__(self) -> None:
        super().__init__()
        self.guest: Guest = make_guest(CPUS)
        self.ref = Reference()
        #: Interrupts whose priority was dropped (EOImode 1) but that are still active.
        self.dropped: list[tuple[int, int]] = []
        guest = self.guest
        guest.gicd(0, 0b10)  # EnableGrp1
        guest.gicd(0x84, 0b11)  # SPIs 32, 33 in Group 1
        guest.gicd(0xC08, 0b10 << 2)  # SPI 33 edge-triggered
        for intid, cpu in TARGET.items():
            guest.gicd(0x6000 + 8 * intid, cpu, width=8)
        for intid in SPIS:
            guest.gicd(0x400 + intid, PRIORITY[intid], width=1)
        for cpu in range(CPUS):
            guest.write(guest.rd(cpu, 0x14), 0)
            guest.write(guest.sgi(cpu, 0x80), 0xFFFF_FFFF)
            for intid in (*SGIS, PPI):
                guest.write(guest.sgi(cpu, 0x400 + intid), PRIORITY[intid], width=1)
            guest.msr(cpu, "ICC_PMR_EL1", PMR)
            guest.msr(cpu, "ICC_CTLR_EL1", self.EOI_MODE << 1)
            guest.msr(cpu, "ICC_IGRPEN1_EL1", 1)

    def _bit_register(self, intid: int, cpu: int, offset: int) -> int:
        """Address of the set/clear register word holding ``intid`` (GICR for private)."""
        if intid < 32:
            return self.guest.sgi(cpu, offset)
        return 0x0800_0000 + offset + 4 * (intid // 32)

    @rule(intid=INTIDS, cpu=PE, on=st.booleans())
    def enable(self, intid: int, cpu: int, on: bool) -> None:
        self.guest.write(self._bit_register(intid, cpu, 0x100 if on else 0x180), 1 << intid % 32)
        self.ref.enabled[self.ref.key(intid, cpu)] = on

    @rule(intid=INTIDS, cpu=PE, on=st.booleans())
    def set_pending(self, intid: int, cpu: int, on: bool) -> None:
        self.guest.write(self._bit_register(intid, cpu, 0x200 if on else 0x280), 1 << intid % 32)
        self.ref.latched[self.ref.key(intid, cpu)] = on

    @rule(intid=st.sampled_from((PPI, *SPIS)), cpu=st.integers(0, CPUS - 1), high=st.booleans())
    def drive_line(self, intid: int, cpu: int, high: bool) -> None:
        which = cpu if intid < 32 else None
        key = self.ref.key(intid, cpu)
        if high:
            self.guest.gic.raise_line(intid, which)
            self.ref.raise_(key)
        else:
            self.guest.gic.lower_line(intid, which)
            self.ref.level[key] = False

    @rule(sender=st.integers(0, CPUS - 1), sgi=st.sampled_from(SGIS), mask=st.integers(0, 3))
    def send_sgi(self, sender: int, sgi: int, mask: int) -> None:
        self.guest.msr(sender, "ICC_SGI1R_EL1", sgi << 24 | mask)
        for cpu in range(CPUS):
            if mask >> cpu & 1:
                self.ref.latched[(cpu, sgi)] = True

    @rule(cpu=st.integers(0, CPUS - 1))
    def acknowledge(self, cpu: int) -> None:
        expected = self.ref.offered(cpu)
        got = self.guest.mrs(cpu, "ICC_IAR1_EL1")
        assert got == (1023 if expected is None else expected)
        if expected is not None:
            key = self.ref.key(expected, cpu)
            self.ref.latched[key] = False
            self.ref.active[key] = True
            self.ref.acked[cpu].append(expected)

    @precondition(lambda self: any(self.ref.acked))
    @rule(data=st.data())
    def end_of_interrupt(self, data: st.DataObject) -> None:
        cpu = data.draw(st.sampled_from([c for c in range(CPUS) if self.ref.acked[c]]))
        intid = self.ref.acked[cpu].pop()
        self.guest.msr(cpu, "ICC_EOIR1_EL1", intid)
        if self.EOI_MODE:
            self.dropped.append((cpu, intid))  # priority dropped, still active
        else:
            self.ref.active[self.ref.key(intid, cpu)] = False

    @precondition(lambda self: bool(self.dropped))
    @rule(data=st.data())
    def deactivate(self, data: st.DataObject) -> None:
        cpu, intid = self.dropped.pop(data.draw(st.integers(0, len(self.dropped) - 1)))
        self.guest.msr(cpu, "ICC_DIR_EL1", intid)
        self.ref.active[self.ref.key(intid, cpu)] = False

    @invariant()
    def registers_and_signals_agree(self) -> None:
        for cpu in range(CPUS):
            assert self.guest.gic.pending_irq(cpu) == (self.ref.offered(cpu) is not None)
            for intid in (*SGIS, PPI, *SPIS):
                key = self.ref.key(intid, cpu)
                bit = 1 << intid % 32
                for offset, want in (
                    (0x100, self.ref.enabled[key]),
                    (0x200, self.ref.pending(key)),
                    (0x300, self.ref.active[key]),
                ):
                    value = self.guest.read(self._bit_register(intid, cpu, offset))
                    assert bool(value & bit) == want, (hex(offset), intid, cpu)


class Gicv3SplitEoiMachine(Gicv3Machine):
    """The same with EOImode 1, as Linux runs when it owns EL2 (split drop/deactivate)."""

    EOI_MODE = 1


Gicv3Machine.TestCase.settings = settings(max_examples=150, stateful_step_count=40)
Gicv3SplitEoiMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40)
test_gicv3_against_reference = Gicv3Machine.TestCase
test_gicv3_split_eoi_against_reference = Gicv3SplitEoiMachine.TestCase

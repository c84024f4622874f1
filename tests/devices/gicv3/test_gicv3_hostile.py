"""A hostile guest: any access to the GIC frames, any MRS/MSR value, never an exception,
never a state the architecture does not allow, never an access outside the frames."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sel4vmm.devices.gicv3 import ICC_ENCODINGS
from sel4vmm.devices.gicv3.state import PRIORITY_MASK
from sel4vmm.memory import FaultResult, MemoryFault
from tests.devices.gicv3.harness import GICD, GICR, STRIDE, make_guest

CPUS = 2
#: Anywhere in the frames, and more often where registers are (0x000-0xFFF of GICD and of
#: each SGI_base, the first IROUTERs, RD_base's first words).
FRAMES = st.one_of(
    st.integers(GICD, GICD + 0xFFFF),
    st.integers(GICR, GICR + CPUS * STRIDE - 1),
    st.integers(GICD, GICD + 0xFFF),
    st.integers(GICD + 0x6000, GICD + 0x6000 + 8 * 128),
    st.builds(
        lambda cpu, frame, offset: GICR + cpu * STRIDE + frame + offset,
        st.integers(0, CPUS - 1),
        st.sampled_from([0, 0x10000]),
        st.integers(0, 0xFFF),
    ),
)
ACCESS = st.tuples(
    FRAMES, st.sampled_from([1, 2, 4, 8, 16]), st.booleans(), st.integers(0, (1 << 64) - 1)
)
SYSREG = st.tuples(
    st.integers(0, CPUS - 1),
    st.sampled_from(sorted(ICC_ENCODINGS)),
    st.booleans(),
    st.integers(0, (1 << 64) - 1),
)


OPERATION = st.one_of(ACCESS, SYSREG)


@settings(max_examples=200)
@given(operations=st.lists(OPERATION, max_size=80))
def test_any_access_is_answered_and_state_stays_architectural(
    operations: list[tuple[int, int, bool, int] | tuple[int, str, bool, int]],
) -> None:
    guest = make_guest(CPUS)
    gic = guest.gic
    for first, second, flag, value in operations:
        if isinstance(second, str):  # an MRS or MSR on PE ``first``
            if flag:
                gic.write_sysreg(first, second, value)
            else:
                assert 0 <= gic.read_sysreg(first, second) < 1 << 64
            continue
        fault = MemoryFault(first, second, flag, value)
        result = guest.vm.memory.handle_fault(fault)
        aligned = second <= 8 and first % second == 0
        assert result is (FaultResult.HANDLED if aligned else FaultResult.ERROR)
        assert "raised" not in guest.vm.memory.last_error
    state = gic.state
    for pe in state.cpus:
        assert all(irq.edge for irq in pe.private[:16])  # SGIs stay edge-triggered
        assert pe.priority_mask & ~PRIORITY_MASK == 0
        assert 3 <= pe.binary_point <= 7 and 2 <= pe.binary_point0 <= 7
    for irq in [*state.spis, *(i for pe in state.cpus for i in pe.private)]:
        assert irq.priority & ~PRIORITY_MASK == 0
        assert irq.router >> 40 == 0 and irq.router >> 24 & 0x7F == 0
    for cpu in range(CPUS):
        intid = gic.read_sysreg(cpu, "ICC_IAR1_EL1")
        assert intid == 1023 or 0 <= intid < state.num_lines


def test_accesses_next_to_the_frames_are_not_the_gics() -> None:
    guest = make_guest(CPUS)
    for address in (GICD - 4, GICD + 0x10000, GICR - 4, GICR + CPUS * STRIDE):
        fault = MemoryFault(address, 4, False)
        assert guest.vm.memory.handle_fault(fault) is FaultResult.UNHANDLED
        assert fault.reservation is None

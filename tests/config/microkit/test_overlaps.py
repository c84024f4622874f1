"""The first overlapping range is found as the tool's pairwise scan finds it, in O(n log n)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sel4vmm.config.microkit.overlaps import first_overlap


def tools_scan(ranges: list[tuple[int, int]]) -> tuple[int, int] | None:
    """sdf.rs ``check_maps``: each range against every earlier one, first hit reported;
    overlap unless ``start >= other_end || end <= other_start``."""
    for later, (start, end) in enumerate(ranges):
        for earlier, (other_start, other_end) in enumerate(ranges[:later]):
            if not (start >= other_end or end <= other_start):
                return later, earlier
    return None


@given(
    st.lists(
        st.tuples(st.integers(0, 40), st.sampled_from([0, 0, 1, 2, 3, 8])),
        max_size=14,
    )
)
def test_same_pair_as_the_tools_scan(pairs: list[tuple[int, int]]) -> None:
    ranges = [(start, start + length) for start, length in pairs]
    assert first_overlap(ranges) == tools_scan(ranges)


def test_zero_size_range_inside_another_overlaps() -> None:
    assert first_overlap([(0x9000000, 0x9002000), (0x9001000, 0x9001000)]) == (1, 0)


def test_zero_size_range_at_an_edge_does_not() -> None:
    assert first_overlap([(0x1000, 0x2000), (0x1000, 0x1000), (0x2000, 0x2000)]) is None


def test_the_earliest_partner_is_reported() -> None:
    ranges = [(0, 10), (20, 30), (40, 50), (5, 45)]
    assert first_overlap(ranges) == (3, 0)


def test_a_late_overlap_among_many_disjoint_ranges() -> None:
    ranges = [(i * 0x1000, (i + 1) * 0x1000) for i in range(100_000)]
    ranges.append((0x5000_0000 - 0x1000, 0x5000_0000))
    assert first_overlap(ranges) is None
    ranges.append((0x800, 0x1800))
    assert first_overlap(ranges) == (100_001, 0)

"""Which range is the first to overlap an earlier one -- in O(n log n), as the tool decides.

The Microkit tool checks maps, physical addresses and I/O ports the simple way: each new
range against every range accepted before it (``check_maps`` in ``sdf.rs``), reporting the
first *new* range that intersects an earlier one and, of the earlier ones, the first in
document order.  Its intersection test is ``!(start >= other_end || end <= other_start)``,
so a zero-size range strictly inside another one *does* overlap it.

That pairwise scan is quadratic; a system with 10^5 maps would take minutes.  Here the
same answer comes from a sweep over the ranges sorted once: "does some prefix of the
ranges contain an overlap" is monotone in the prefix length, so the first offending range
is found by bisection over prefixes, each test a linear sweep.  Only then is the earliest
partner found, with one linear scan.
"""

from __future__ import annotations

from collections.abc import Sequence


def intersects(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """The tool's test: half-open ranges, zero-size ranges inside others included."""
    return a[0] < b[1] and a[1] > b[0]


def first_overlap(ranges: Sequence[tuple[int, int]]) -> tuple[int, int] | None:
    """``(later, earlier)`` indices of the pair the tool reports, or None if all disjoint."""
    order = sorted(range(len(ranges)), key=lambda index: ranges[index])
    if not _prefix_overlaps(ranges, order, len(ranges)):
        return None
    low, high = 2, len(ranges)  # the shortest overlapping prefix has a length in here
    while low < high:
        middle = (low + high) // 2
        if _prefix_overlaps(ranges, order, middle):
            high = middle
        else:
            low = middle + 1
    later = low - 1
    for earlier in range(later):
        if intersects(ranges[later], ranges[earlier]):
            return later, earlier
    raise AssertionError("a prefix overlaps but no pair does")  # pragma: no cover


def _prefix_overlaps(ranges: Sequence[tuple[int, int]], order: Sequence[int], length: int) -> bool:
    """Whether two of the first ``length`` ranges intersect (one sweep in start order).

    Scanning by start, a range of positive size meets an earlier-sorted one exactly when it
    starts before the furthest end seen so far; a zero-size range at ``s`` meets one only
    if that one started strictly before ``s`` and ends after it, so for those the furthest
    end counts only ranges with a smaller start.
    """
    furthest_end: int | None = None  # over every range scanned so far
    furthest_end_before: int | None = None  # over ranges with a smaller start
    group_start: int | None = None
    group_end: int | None = None  # furthest end within the current equal-start group
    for index in order:
        if index >= length:
            continue
        start, end = ranges[index]
        if start != group_start:
            if group_end is not None and (
                furthest_end_before is None or group_end > furthest_end_before
            ):
                furthest_end_before = group_end
            group_start, group_end = start, None
        if end > start:
            if furthest_end is not None and start < furthest_end:
                return True
        elif furthest_end_before is not None and start < furthest_end_before:
            return True
        if furthest_end is None or end > furthest_end:
            furthest_end = end
        if group_end is None or end > group_end:
            group_end = end
    return False

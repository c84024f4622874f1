"""seL4's untyped rules: alignment, watermarks, boot-time splitting."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from sel4vmm.sel4.untyped import Untyped, aligned_blocks


def test_retype_aligns_watermark_and_counts_loss() -> None:
    ut = Untyped(0x40000000, 24, False)
    paddr, lost = ut.place(4, 1)  # an endpoint
    assert (paddr, lost) == (0x40000000, 0)
    paddr, lost = ut.place(12, 2)  # two frames: aligned up to 4 KiB
    assert paddr == 0x40001000
    assert lost == 0x1000 - 16
    assert ut.watermark == 0x3000
    assert ut.fit(21, 10) == 7  # 2 MiB objects: the first 2 MiB is gone
    assert ut.fit(25, 1) == 0


def test_misaligned_untyped_is_refused() -> None:
    import pytest

    from sel4vmm.errors import Sel4VmmError

    with pytest.raises(Sel4VmmError, match="not aligned"):
        Untyped(0x40001000, 24, False)


@given(
    st.integers(min_value=0, max_value=1 << 36).map(lambda v: v & ~0xF),
    st.integers(min_value=16, max_value=1 << 34).map(lambda v: v & ~0xF),
)
def test_aligned_blocks_cover_exactly_with_natural_alignment(base: int, length: int) -> None:
    end = base + length
    blocks = aligned_blocks(base, end, 47, 4)
    cursor = base
    for paddr, bits in blocks:
        assert paddr == cursor
        assert paddr % (1 << bits) == 0
        cursor += 1 << bits
    assert cursor == end
    # Maximal: two neighbours of equal size that could merge into an aligned block do not
    # appear (seL4 would have made the larger one).
    for (a, abits), (b, bbits) in itertools.pairwise(blocks):
        assert not (abits == bbits and a % (1 << (abits + 1)) == 0 and b == a + (1 << abits))

"""The shortfall a pool reports is exact: that many more untyped make it fit, one fewer not."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from sel4vmm.errors import ResourceExhausted
from sel4vmm.vm import PoolRequest, VirtualMachine
from tests.helpers import make_platform

RAM_BASE = 0x40000000


def register(pool_bits: int, count: int, size: int, page_bits: int) -> None:
    vm = VirtualMachine.create(
        "vm0", make_platform(ram_size=8 << 30), pools=[PoolRequest(pool_bits, count)]
    )
    vm.ram.register_at(RAM_BASE, size, page_bits=page_bits)


@settings(max_examples=40, deadline=None)
@given(
    pool_bits=st.sampled_from([21, 22, 24, 26]),
    count=st.integers(1, 12),
    megabytes=st.integers(1, 128).map(lambda m: 2 * m),
    page_bits=st.sampled_from([12, 21]),
)
def test_reported_shortfall_is_exactly_enough(
    pool_bits: int, count: int, megabytes: int, page_bits: int
) -> None:
    size = megabytes << 20
    try:
        register(pool_bits, count, size, page_bits)
    except ResourceExhausted as error:
        found = re.search(r"needs (\d+) more untyped of 2\^(\d+)", error.message)
        assert found is not None, error.message
        more, bits = int(found.group(1)), int(found.group(2))
        assert bits == max(pool_bits, page_bits)
        if bits == pool_bits:
            register(pool_bits, count + more, size, page_bits)
            if more > 1:
                try:
                    register(pool_bits, count + more - 1, size, page_bits)
                except ResourceExhausted:
                    pass
                else:
                    raise AssertionError(f"{more - 1} more would have been enough") from None

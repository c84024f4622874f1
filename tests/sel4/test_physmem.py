"""The sparse host mapping behind physical memory."""

from __future__ import annotations

import ctypes
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sel4vmm.errors import Sel4VmmError
from sel4vmm.sel4 import physmem as physmem_module
from sel4vmm.sel4.physmem import MemoryRange, PhysicalMemory
from sel4vmm.vm import PoolRequest, VirtualMachine
from tests.helpers import make_platform


def test_a_4gib_board_costs_only_what_is_touched() -> None:
    platform = make_platform(ram_size=4 << 30)
    vm = VirtualMachine.create("vm0", platform, pools=[PoolRequest(30, 3), PoolRequest(24, 2)])
    vm.ram.register_at(0x40000000, 3 << 30, page_bits=21)
    before = platform.physmem.resident_bytes()
    step = 100 * 4096
    for addr in range(0x40000000, 0x40000000 + (3 << 30), step):
        vm.ram.write(addr, b"\xff")
    touched = len(range(0, 3 << 30, step)) * 4096
    resident = platform.physmem.resident_bytes() - before
    assert touched <= resident <= touched + (1 << 20)


def test_file_backed_memory_is_shared_with_other_mappings(tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "ram")
    physmem = PhysicalMemory([MemoryRange(0x40000000, 16 << 20)], backing_path=path)
    physmem.view(0x40001000, 5)[:] = b"hello"
    with open(path, "rb") as f:
        f.seek(physmem.file_offset(0x40001000))
        assert f.read(5) == b"hello"
    physmem.close()


def test_overlapping_and_empty_ranges_are_refused() -> None:
    with pytest.raises(Sel4VmmError, match="overlap"):
        PhysicalMemory([MemoryRange(0, 0x2000), MemoryRange(0x1000, 0x2000)])
    with pytest.raises(Sel4VmmError, match="empty"):
        PhysicalMemory([MemoryRange(0, 0)])
    with pytest.raises(Sel4VmmError, match="outside the board"):
        PhysicalMemory([MemoryRange(0, 0x2000)]).view(0x1000, 0x2000)
    with pytest.raises(Sel4VmmError, match="cannot create"):
        PhysicalMemory([MemoryRange(0, 0x2000)], backing_path="/nonexistent/dir/ram")


# -- issue 10 item 8: an address-space limit (ulimit -v) ---------------------------------
ULIMIT_V_KIB = 3_000_000  # the issue's `ulimit -v 3000000`


def _limited(args: list[str]) -> subprocess.CompletedProcess[str]:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (ULIMIT_V_KIB * 1024, ULIMIT_V_KIB * 1024))

    return subprocess.run(
        [sys.executable, *args],
        preexec_fn=limit,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


@pytest.mark.parametrize("board", [[], ["--board", "zcu102"]])
def test_plan_works_under_ulimit_v(realworld: Path, board: list[str]) -> None:
    # qemu_virt_aarch64 spans 2.9 GiB of physical addresses, zcu102 34 GiB: more than the
    # limit lets one mapping take, so each range is mapped only when first touched.
    system = realworld / "libvmm/simple/board/qemu_virt_aarch64/simple.system"
    done = _limited(["-m", "sel4vmm", "plan", str(system), *board])
    assert "Traceback" not in done.stderr
    assert done.returncode == 0, done.stderr
    assert "CSpace slots" in done.stdout


def test_a_range_too_big_for_the_limit_is_one_clear_error() -> None:
    script = (
        "from sel4vmm.errors import Sel4VmmError\n"
        "from sel4vmm.sel4.physmem import MemoryRange, PhysicalMemory\n"
        "memory = PhysicalMemory([MemoryRange(0x40000000, 8 << 30, name='ram')])\n"
        "try:\n"
        "    memory.view(0x40000000, 16)\n"
        "except Sel4VmmError as error:\n"
        "    print(error)\n"
    )
    done = _limited(["-c", script])
    assert done.returncode == 0, done.stderr
    assert "cannot map the board's physical range [0x40000000, 0x240000000)" in done.stdout
    assert "ulimit -v" in done.stdout


def test_lazy_per_range_mappings_behave_like_the_whole_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    whole_map = physmem_module._Segment.map

    def refuse_big(self: Any, fd: int | None, file_base: int) -> memoryview:
        if self.end - self.start > 256 << 20:
            raise OSError(12, "Cannot allocate memory")
        return whole_map(self, fd, file_base)

    monkeypatch.setattr(physmem_module._Segment, "map", refuse_big)
    memory = PhysicalMemory(
        [
            MemoryRange(0x08000000, 0x1000, device=True, name="uart"),
            MemoryRange(0x40000000, 64 << 20, name="ram"),
        ]
    )
    assert not memory.mapped_whole
    assert memory.resident_bytes() == 0  # nothing mapped until touched
    memory.view(0x40001000, 5)[:] = b"hello"
    assert bytes(memory.view(0x40001000, 5)) == b"hello"
    host = memory.host_address(0x40001000)
    assert ctypes.string_at(host, 5) == b"hello"
    assert memory.file_offset(0x40001000) == 0x38001000
    assert memory.resident_bytes() >= 4096
    with pytest.raises(Sel4VmmError, match="outside the board"):
        memory.view(0x40000000 + (64 << 20) - 2, 4)
    with pytest.raises(Sel4VmmError, match="outside the board"):
        memory.view(0x20000000, 4)  # between the ranges
    memory.close()

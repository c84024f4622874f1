"""Fixtures for the KVM backend: a VM on a small x86_64 board and the built test guests."""

from __future__ import annotations

import lzma
import platform
import shutil
import struct
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path

import pytest

from sel4vmm.backends.kvm import x86_boot
from sel4vmm.backends.kvm.run import RunOutcome
from sel4vmm.backends.kvm.session import KvmSession
from sel4vmm.backends.kvm.system import kvm_unavailable_reason
from sel4vmm.images.bzimage import parse_bzimage
from sel4vmm.native import PURE_PYTHON_VARIABLE, import_error
from sel4vmm.sel4.arch import X86_64
from sel4vmm.sel4.physmem import MemoryRange, PhysicalMemory
from sel4vmm.sel4.platform import Sel4Platform
from sel4vmm.vm import DeviceUntypedRequest, PoolRequest, VirtualMachine

REPO = Path(__file__).resolve().parents[3]
GUEST_SOURCES = REPO / "guests" / "x86_64"

#: Guest-physical layout of the test guests (inside the RAM at 0 the fixture registers).
LAYOUT = x86_boot.LongModeLayout()
SCRIPT_ADDR = 0x2_0000
STRINGS_ADDR = 0x3_0000
STACK_BASE, STACK_TOP = 0x7_0000, 0x8_0000
#: Physical RAM of the board: the VM's pools come from here; 1:1 RAM sits at ONE_TO_ONE.
BOARD_RAM = MemoryRange(0, 256 << 20, name="ram")
ONE_TO_ONE = 0x0800_0000
ONE_TO_ONE_SIZE = 2 << 20


@pytest.fixture(scope="session")
def kvm_available() -> None:
    reason = kvm_unavailable_reason()
    if reason is not None:
        pytest.skip(f"KVM is not usable here: {reason}")


@pytest.fixture(scope="session")
def guest_binaries(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test guests, built from guests/x86_64 with the host gcc (once per session)."""
    if platform.machine() != "x86_64" or shutil.which("gcc") is None:
        pytest.skip("building the x86_64 test guests needs an x86_64 host with gcc")
    out = tmp_path_factory.mktemp("x86_64-guests")
    subprocess.run(["sh", str(GUEST_SOURCES / "build.sh"), str(out)], check=True)
    return out


@pytest.fixture(scope="session")
def bzimage() -> bytes:
    kernels = sorted(Path("/boot").glob("vmlinuz-*"))
    if not kernels:
        pytest.skip("no /boot/vmlinuz-*: apt-get install linux-image-amd64")
    return kernels[-1].read_bytes()


@pytest.fixture(scope="session")
def vmlinux(bzimage: bytes) -> bytes:
    """The ELF kernel inside the bzImage's compressed payload (Debian compresses with xz)."""
    header = parse_bzimage(bzimage)
    start = header.setup_size + header.payload_offset
    payload = bzimage[start : start + header.payload_length]
    if not payload.startswith(b"\xfd7zXZ\x00"):
        pytest.skip("the installed kernel's payload is not xz-compressed")
    return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(payload)


def make_vm(name: str = "guest", ram_size: int = 4 << 20) -> VirtualMachine:
    """An x86_64 VM with 2 MiB of 1:1 RAM at ONE_TO_ONE and RAM at guest 0 from its pool.

    The 1:1 window is registered first: guest-RAM frames are taken from device untyped
    before RAM untyped (as libsel4vm's ``vka_alloc_frame_maybe_device`` does), so the
    device untyped must be claimed for 1:1 before ordinary RAM is allocated.
    """
    physmem = PhysicalMemory([BOARD_RAM])
    platform_ = Sel4Platform(physmem, X86_64)
    vm = VirtualMachine.create(
        name,
        platform_,
        pools=[PoolRequest(24, 2)],
        device_untypeds=[DeviceUntypedRequest(ONE_TO_ONE, 21)],
    )
    vm.ram.register_at(ONE_TO_ONE, ONE_TO_ONE_SIZE, one_to_one=True)
    vm.ram.register_at(0, ram_size)
    return vm


class Op(IntEnum):
    """Operations of guests/x86_64/script.c."""

    END = 0
    WRITE = 1
    READ = 2
    OUT = 3
    IN = 4
    UART_PUTS = 5
    READ_LOOP = 6


_OP = struct.Struct("<IIQQQ")


@dataclass
class Script:
    """A list of guest operations, written into guest RAM for script.c to run."""

    ops: list[tuple[Op, int, int, int]] = field(default_factory=list)
    strings: bytearray = field(default_factory=bytearray)

    def write(self, addr: int, value: int, width: int = 8) -> int:
        self.ops.append((Op.WRITE, width, addr, value))
        return len(self.ops) - 1

    def read(self, addr: int, width: int = 8) -> int:
        self.ops.append((Op.READ, width, addr, 0))
        return len(self.ops) - 1

    def read_loop(self, addr: int, count: int) -> int:
        self.ops.append((Op.READ_LOOP, 4, addr, count))
        return len(self.ops) - 1

    def out(self, port: int, value: int, width: int = 1) -> int:
        self.ops.append((Op.OUT, width, port, value))
        return len(self.ops) - 1

    def port_in(self, port: int, width: int = 1) -> int:
        self.ops.append((Op.IN, width, port, 0))
        return len(self.ops) - 1

    def uart_puts(self, text: str, port: int = 0x3F8) -> int:
        addr = STRINGS_ADDR + len(self.strings)
        self.strings += text.encode() + b"\0"
        self.ops.append((Op.UART_PUTS, 1, addr, port))
        return len(self.ops) - 1

    def encode(self) -> bytes:
        body = b"".join(
            _OP.pack(kind, width, addr, value, 0) for kind, width, addr, value in self.ops
        )
        return body + _OP.pack(Op.END, 0, 0, 0, 0)


class ScriptGuest:
    """A KvmSession running guests/x86_64/script.elf on a VM from :func:`make_vm`."""

    def __init__(self, session: KvmSession, elf: bytes) -> None:
        self.session = session
        self.vm = session.vm
        session.write_boot_tables(LAYOUT)
        self.vm.ram.mark_allocated(STACK_BASE, STACK_TOP - STACK_BASE)
        self.vm.ram.mark_allocated(SCRIPT_ADDR, STRINGS_ADDR + 0x1_0000 - SCRIPT_ADDR)
        self.entry = session.load_elf(elf, "script.elf")

    def run(self, script: Script, timeout: float = 30.0) -> RunOutcome:
        self.vm.ram.write(SCRIPT_ADDR, script.encode())
        self.vm.ram.write(STRINGS_ADDR, bytes(script.strings) + b"\0")
        self.session.enter(
            LAYOUT, x86_boot.EntryState(rip=self.entry, rsp=STACK_TOP, rdi=SCRIPT_ADDR)
        )
        return self.session.run(timeout=timeout)

    def result(self, index: int) -> int:
        value: int = struct.unpack_from(
            "<Q", self.vm.ram.read(SCRIPT_ADDR + index * _OP.size + 24, 8)
        )[0]
        return value


@pytest.fixture(params=["c", "python"])
def exit_loop(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test on the C exit loop and on the pure-Python one (sel4vmm.native)."""
    if request.param == "python":
        monkeypatch.setenv(PURE_PYTHON_VARIABLE, "1")
        return "pure Python"
    monkeypatch.delenv(PURE_PYTHON_VARIABLE, raising=False)
    reason = import_error("_kvmexit")
    if reason is not None:
        pytest.skip(f"the C exit loop is not available: {reason}")
    return "C extension"


@pytest.fixture
def script_guest(
    kvm_available: None, guest_binaries: Path, exit_loop: str
) -> Iterator[ScriptGuest]:
    vm = make_vm()
    uart_output: list[bytes] = []
    with KvmSession(vm, uart_output=uart_output.append) as session:
        assert session.loop.implementation.startswith(exit_loop)
        yield ScriptGuest(session, (guest_binaries / "script.elf").read_bytes())
    vm.physmem.close()

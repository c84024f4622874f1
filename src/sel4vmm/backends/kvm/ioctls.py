"""The KVM ABI as ctypes: structure layouts, ioctl request numbers and exit reasons.

Everything here is transcribed from ``include/uapi/linux/kvm.h`` and
``arch/x86/include/uapi/asm/kvm.h`` for x86_64.  The ioctl is called through libc with an
*unsigned long* request and a pointer or integer argument: :func:`fcntl.ioctl` takes a signed
C ``int`` argument and overflows on values such as the TSS address ``0xfffbd000``, and it
copies buffers rather than letting the kernel write into a structure we keep.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from typing import Final

from sel4vmm.errors import Sel4VmmError

KVMIO: Final = 0xAE

_IOC_NONE: Final = 0
_IOC_WRITE: Final = 1
_IOC_READ: Final = 2


def _ioc(direction: int, number: int, size: int) -> int:
    """Linux ``_IOC``: direction, size, type and number packed into one request word."""
    return (direction << 30) | (size << 16) | (KVMIO << 8) | number


def _io(number: int) -> int:
    return _ioc(_IOC_NONE, number, 0)


def _iow(number: int, size: int) -> int:
    return _ioc(_IOC_WRITE, number, size)


def _ior(number: int, size: int) -> int:
    return _ioc(_IOC_READ, number, size)


def _iowr(number: int, size: int) -> int:
    return _ioc(_IOC_READ | _IOC_WRITE, number, size)


# --- structures -----------------------------------------------------------------------


class KvmRegs(ctypes.Structure):
    """``struct kvm_regs``: the general-purpose registers, rip and rflags."""

    _fields_ = [
        (name, ctypes.c_uint64)
        for name in (
            "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp",
            "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
            "rip", "rflags",
        )
    ]  # fmt: skip


class KvmSegment(ctypes.Structure):
    """``struct kvm_segment``: a segment register in VMX's unpacked form."""

    _fields_ = [
        ("base", ctypes.c_uint64),
        ("limit", ctypes.c_uint32),
        ("selector", ctypes.c_uint16),
        ("type", ctypes.c_uint8),
        ("present", ctypes.c_uint8),
        ("dpl", ctypes.c_uint8),
        ("db", ctypes.c_uint8),
        ("s", ctypes.c_uint8),
        ("l", ctypes.c_uint8),
        ("g", ctypes.c_uint8),
        ("avl", ctypes.c_uint8),
        ("unusable", ctypes.c_uint8),
        ("padding", ctypes.c_uint8),
    ]


class KvmDtable(ctypes.Structure):
    """``struct kvm_dtable``: GDTR / IDTR."""

    _fields_ = [
        ("base", ctypes.c_uint64),
        ("limit", ctypes.c_uint16),
        ("padding", ctypes.c_uint16 * 3),
    ]


class KvmSregs(ctypes.Structure):
    """``struct kvm_sregs``: segments, descriptor tables, control registers and EFER."""

    _fields_ = [
        ("cs", KvmSegment),
        ("ds", KvmSegment),
        ("es", KvmSegment),
        ("fs", KvmSegment),
        ("gs", KvmSegment),
        ("ss", KvmSegment),
        ("tr", KvmSegment),
        ("ldt", KvmSegment),
        ("gdt", KvmDtable),
        ("idt", KvmDtable),
        ("cr0", ctypes.c_uint64),
        ("cr2", ctypes.c_uint64),
        ("cr3", ctypes.c_uint64),
        ("cr4", ctypes.c_uint64),
        ("cr8", ctypes.c_uint64),
        ("efer", ctypes.c_uint64),
        ("apic_base", ctypes.c_uint64),
        ("interrupt_bitmap", ctypes.c_uint64 * 4),
    ]


class KvmUserspaceMemoryRegion(ctypes.Structure):
    """``struct kvm_userspace_memory_region``: one memory slot."""

    _fields_ = [
        ("slot", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("guest_phys_addr", ctypes.c_uint64),
        ("memory_size", ctypes.c_uint64),
        ("userspace_addr", ctypes.c_uint64),
    ]


class KvmDirtyLog(ctypes.Structure):
    """``struct kvm_dirty_log``: the slot and where the kernel writes its dirty bitmap."""

    _fields_ = [
        ("slot", ctypes.c_uint32),
        ("padding", ctypes.c_uint32),
        ("dirty_bitmap", ctypes.c_uint64),
    ]


class KvmCpuidEntry2(ctypes.Structure):
    """``struct kvm_cpuid_entry2``: one CPUID leaf/sub-leaf."""

    _fields_ = [
        ("function", ctypes.c_uint32),
        ("index", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("eax", ctypes.c_uint32),
        ("ebx", ctypes.c_uint32),
        ("ecx", ctypes.c_uint32),
        ("edx", ctypes.c_uint32),
        ("padding", ctypes.c_uint32 * 3),
    ]


#: How many CPUID entries we make room for; KVM answers E2BIG when there are more.
MAX_CPUID_ENTRIES: Final = 256


class KvmCpuid2(ctypes.Structure):
    """``struct kvm_cpuid2`` with a fixed-size entry array (the C flexible array member)."""

    _fields_ = [
        ("nent", ctypes.c_uint32),
        ("padding", ctypes.c_uint32),
        ("entries", KvmCpuidEntry2 * MAX_CPUID_ENTRIES),
    ]


class KvmPitConfig(ctypes.Structure):
    """``struct kvm_pit_config``."""

    _fields_ = [("flags", ctypes.c_uint32), ("pad", ctypes.c_uint32 * 15)]


class KvmIrqLevel(ctypes.Structure):
    """``struct kvm_irq_level``: raise or lower one GSI of the in-kernel IRQ chip."""

    _fields_ = [("irq", ctypes.c_uint32), ("level", ctypes.c_uint32)]


# The request numbers use the size of the *header* of variable-sized structures, as C does.
_CPUID2_HEADER_SIZE: Final = 8

KVM_GET_API_VERSION: Final = _io(0x00)
KVM_CREATE_VM: Final = _io(0x01)
KVM_CHECK_EXTENSION: Final = _io(0x03)
KVM_GET_VCPU_MMAP_SIZE: Final = _io(0x04)
KVM_GET_SUPPORTED_CPUID: Final = _iowr(0x05, _CPUID2_HEADER_SIZE)
KVM_CREATE_VCPU: Final = _io(0x41)
KVM_GET_DIRTY_LOG: Final = _iow(0x42, ctypes.sizeof(KvmDirtyLog))
KVM_SET_USER_MEMORY_REGION: Final = _iow(0x46, ctypes.sizeof(KvmUserspaceMemoryRegion))
KVM_SET_TSS_ADDR: Final = _io(0x47)
KVM_SET_IDENTITY_MAP_ADDR: Final = _iow(0x48, 8)
KVM_CREATE_IRQCHIP: Final = _io(0x60)
KVM_IRQ_LINE: Final = _iow(0x61, ctypes.sizeof(KvmIrqLevel))
KVM_CREATE_PIT2: Final = _iow(0x77, ctypes.sizeof(KvmPitConfig))
KVM_RUN: Final = _io(0x80)
KVM_GET_REGS: Final = _ior(0x81, ctypes.sizeof(KvmRegs))
KVM_SET_REGS: Final = _iow(0x82, ctypes.sizeof(KvmRegs))
KVM_GET_SREGS: Final = _ior(0x83, ctypes.sizeof(KvmSregs))
KVM_SET_SREGS: Final = _iow(0x84, ctypes.sizeof(KvmSregs))
KVM_SET_CPUID2: Final = _iow(0x90, _CPUID2_HEADER_SIZE)

KVM_API_VERSION: Final = 12

# Capabilities (KVM_CHECK_EXTENSION).
KVM_CAP_IRQCHIP: Final = 0
KVM_CAP_USER_MEMORY: Final = 3
KVM_CAP_SET_TSS_ADDR: Final = 4
KVM_CAP_EXT_CPUID: Final = 7
KVM_CAP_NR_MEMSLOTS: Final = 10
KVM_CAP_PIT2: Final = 33
KVM_CAP_IMMEDIATE_EXIT: Final = 136

# Memory-slot flags.
KVM_MEM_LOG_DIRTY_PAGES: Final = 1 << 0
KVM_MEM_READONLY: Final = 1 << 1

# struct kvm_pit_config.flags
KVM_PIT_SPEAKER_DUMMY: Final = 1

# Exit reasons (kvm_run.exit_reason).
KVM_EXIT_UNKNOWN: Final = 0
KVM_EXIT_EXCEPTION: Final = 1
KVM_EXIT_IO: Final = 2
KVM_EXIT_HYPERCALL: Final = 3
KVM_EXIT_DEBUG: Final = 4
KVM_EXIT_HLT: Final = 5
KVM_EXIT_MMIO: Final = 6
KVM_EXIT_IRQ_WINDOW_OPEN: Final = 7
KVM_EXIT_SHUTDOWN: Final = 8
KVM_EXIT_FAIL_ENTRY: Final = 9
KVM_EXIT_INTR: Final = 10
KVM_EXIT_INTERNAL_ERROR: Final = 17
KVM_EXIT_SYSTEM_EVENT: Final = 24

EXIT_REASON_NAMES: Final[dict[int, str]] = {
    KVM_EXIT_UNKNOWN: "UNKNOWN",
    KVM_EXIT_EXCEPTION: "EXCEPTION",
    KVM_EXIT_IO: "IO",
    KVM_EXIT_HYPERCALL: "HYPERCALL",
    KVM_EXIT_DEBUG: "DEBUG",
    KVM_EXIT_HLT: "HLT",
    KVM_EXIT_MMIO: "MMIO",
    KVM_EXIT_IRQ_WINDOW_OPEN: "IRQ_WINDOW_OPEN",
    KVM_EXIT_SHUTDOWN: "SHUTDOWN",
    KVM_EXIT_FAIL_ENTRY: "FAIL_ENTRY",
    KVM_EXIT_INTR: "INTR",
    KVM_EXIT_INTERNAL_ERROR: "INTERNAL_ERROR",
    KVM_EXIT_SYSTEM_EVENT: "SYSTEM_EVENT",
}

KVM_EXIT_IO_IN: Final = 0
KVM_EXIT_IO_OUT: Final = 1

# Offsets into ``struct kvm_run`` (x86_64).  The exit-specific union starts at byte 32.
RUN_IMMEDIATE_EXIT: Final = 1
RUN_EXIT_REASON: Final = 8
RUN_UNION: Final = 32
#: ``io``: direction u8, size u8, port u16, count u32, data_offset u64.
RUN_IO_FORMAT: Final = "<BBHIQ"
#: ``mmio``: phys_addr u64, data u8[8], len u32, is_write u8.
RUN_MMIO_ADDR: Final = RUN_UNION
RUN_MMIO_DATA: Final = RUN_UNION + 8
RUN_MMIO_LEN: Final = RUN_UNION + 16
RUN_MMIO_IS_WRITE: Final = RUN_UNION + 20


def _load_libc_ioctl() -> ctypes._NamedFuncPointer:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    function = libc.ioctl
    function.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]
    function.restype = ctypes.c_int
    return function


_libc_ioctl = _load_libc_ioctl()


class KvmIoctlError(Sel4VmmError):
    """An ioctl on /dev/kvm, a VM or a vCPU failed; ``errno`` says why."""

    def __init__(self, what: str, error_number: int, fix: str | None = None) -> None:
        super().__init__(f"KVM {what} failed: {os.strerror(error_number)}", fix=fix)
        self.errno = error_number


def kvm_ioctl(fd: int, request: int, argument: int | ctypes.Structure | None, what: str) -> int:
    """Issue one ioctl; ``argument`` is an integer, a structure (passed by pointer) or None.

    EINTR is retried except for ``KVM_RUN``, whose caller wants to see the signal (the run
    loop treats it as "come back and look at the stop flag").
    """
    if isinstance(argument, ctypes.Structure):
        pointer: int | None = ctypes.addressof(argument)
    else:
        pointer = argument
    while True:
        result: int = _libc_ioctl(fd, request, pointer)
        if result >= 0:
            return result
        error_number = ctypes.get_errno()
        if error_number == errno.EINTR and request != KVM_RUN:
            continue
        raise KvmIoctlError(what, error_number)


def raw_ioctl_function() -> ctypes._NamedFuncPointer:
    """The libc ``ioctl`` itself, for the one hot call (``KVM_RUN``) the run loop makes."""
    return _libc_ioctl

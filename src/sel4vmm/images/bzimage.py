"""x86 ``bzImage``: the real-mode setup header of Documentation/x86/boot.rst.

A bzImage is ``(setup_sects + 1) * 512`` bytes of real-mode setup code followed by the
protected-mode kernel (a self-decompressing payload).  A 64-bit VMM skips the real-mode
part: it copies the protected-mode kernel into guest RAM, copies the *setup header* into a
zero page (``boot_params``), and enters at ``load address + 0x200`` in long mode with
``rsi`` pointing at the zero page.  That path needs boot protocol 2.12 or newer (the
``xloadflags`` field and ``XLF_KERNEL_64``), the same floor libvmm enforces.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from sel4vmm.errors import Location, Sel4VmmError
from sel4vmm.images.blob import require
from sel4vmm.images.kernel import KernelRequirements

SETUP_HEADER_OFFSET = 0x1F1
BOOT_FLAG_OFFSET = 0x1FE
BOOT_FLAG = 0xAA55
HEADER_MAGIC_OFFSET = 0x202
HEADER_MAGIC = b"HdrS"
#: The zero page's ``hdr`` field ends here (``edd_mbr_sig_buffer`` follows at 0x290).
SETUP_HEADER_LIMIT = 0x290
#: Fields up to ``kernel_info_offset`` (protocol 2.15) are read.
MIN_FILE_SIZE = 0x26C
MIN_PROTOCOL = (2, 12)
#: ``startup_64`` sits 0x200 bytes into the protected-mode kernel.
ENTRY_64_OFFSET = 0x200
#: Where a loader puts a protected-mode kernel that is not told otherwise (``code32_start``).
DEFAULT_LOAD_ADDRESS = 0x100000

LOADFLAG_LOADED_HIGH = 1 << 0
XLF_KERNEL_64 = 1 << 0
XLF_CAN_BE_LOADED_ABOVE_4G = 1 << 1


@dataclass(frozen=True)
class BzImageHeader:
    """The setup-header fields a 64-bit loader acts on."""

    setup_sects: int
    syssize: int
    boot_protocol: tuple[int, int]
    loadflags: int
    code32_start: int
    initrd_addr_max: int
    kernel_alignment: int
    relocatable: bool
    min_alignment: int
    xloadflags: int
    cmdline_size: int
    payload_offset: int
    payload_length: int
    pref_address: int
    init_size: int
    kernel_version: str
    #: The raw setup header (offset 0x1f1 up to its end), copied into the zero page.
    setup_header: bytes
    file_size: int

    @property
    def setup_size(self) -> int:
        """Bytes of real-mode code before the protected-mode kernel."""
        return (self.setup_sects + 1) * 512

    @property
    def protected_mode_size(self) -> int:
        return self.file_size - self.setup_size

    @property
    def supports_64bit_entry(self) -> bool:
        return bool(self.xloadflags & XLF_KERNEL_64)

    @property
    def protocol_text(self) -> str:
        return f"{self.boot_protocol[0]}.{self.boot_protocol[1]:02d}"

    def requirements(self) -> KernelRequirements:
        if self.relocatable:
            alignment = 1 << self.min_alignment if self.min_alignment else self.kernel_alignment
            fixed = None
        else:
            alignment = self.kernel_alignment or 0x1000
            fixed = self.pref_address
        return KernelRequirements(
            format="bzImage",
            arch="x86_64",
            payload_offset=self.setup_size,
            load_size=self.protected_mode_size,
            # A relocatable kernel realigns itself to kernel_alignment before using its
            # init_size bytes, so reserve the slack that realignment can cost.
            footprint=max(self.init_size + self.kernel_alignment, self.protected_mode_size),
            fixed_address=fixed,
            base_alignment=max(alignment, 1),
            entry_offset=ENTRY_64_OFFSET,
            preferred_address=DEFAULT_LOAD_ADDRESS if self.relocatable else self.pref_address,
            initrd_limit=self.initrd_addr_max + 1 if self.initrd_addr_max else None,
        )


def is_bzimage(data: bytes | memoryview) -> bool:
    return (
        len(data) >= HEADER_MAGIC_OFFSET + 4
        and bytes(data[HEADER_MAGIC_OFFSET : HEADER_MAGIC_OFFSET + 4]) == HEADER_MAGIC
    )


def _u8(data: bytes | memoryview, offset: int) -> int:
    return int(data[offset])


def _u16(data: bytes | memoryview, offset: int) -> int:
    value: int = struct.unpack_from("<H", data, offset)[0]
    return value


def _u32(data: bytes | memoryview, offset: int) -> int:
    value: int = struct.unpack_from("<I", data, offset)[0]
    return value


def _u64(data: bytes | memoryview, offset: int) -> int:
    value: int = struct.unpack_from("<Q", data, offset)[0]
    return value


def _kernel_version(data: bytes | memoryview, offset: int) -> str:
    """The NUL-terminated version string ``kernel_version + 0x200`` bytes into the file."""
    if offset == 0:
        return ""
    start = offset + 0x200
    chunk = bytes(data[start : start + 256])
    return chunk.split(b"\0", 1)[0].decode("ascii", "replace")


def parse_bzimage(data: bytes | memoryview, path: str = "<memory>") -> BzImageHeader:
    """Read and check the setup header for a 64-bit boot; every refusal says why."""
    where = Location(path)
    require(data, MIN_FILE_SIZE, "bzImage setup header", path)
    if bytes(data[HEADER_MAGIC_OFFSET : HEADER_MAGIC_OFFSET + 4]) != HEADER_MAGIC:
        raise Sel4VmmError(
            f"not a bzImage: no 'HdrS' at offset {HEADER_MAGIC_OFFSET:#x}",
            location=where,
            fix="use arch/x86/boot/bzImage (a vmlinux ELF is not a bzImage)",
        )
    if _u16(data, BOOT_FLAG_OFFSET) != BOOT_FLAG:
        raise Sel4VmmError(
            f"corrupt bzImage: boot_flag at {BOOT_FLAG_OFFSET:#x} is "
            f"{_u16(data, BOOT_FLAG_OFFSET):#06x}, not 0xaa55",
            location=where,
            fix="rebuild the kernel; the file has been modified",
        )
    version = _u16(data, 0x206)
    protocol = (version >> 8, version & 0xFF)
    if protocol < MIN_PROTOCOL:
        raise Sel4VmmError(
            f"bzImage boot protocol {protocol[0]}.{protocol[1]:02d} is too old: a 64-bit "
            f"entry needs {MIN_PROTOCOL[0]}.{MIN_PROTOCOL[1]} (Linux 3.8) or newer",
            location=where,
            fix="use a Linux 3.8 or newer kernel",
        )
    setup_sects = _u8(data, 0x1F1) or 4
    header_end = min(HEADER_MAGIC_OFFSET + _u8(data, 0x201), SETUP_HEADER_LIMIT)
    header = BzImageHeader(
        setup_sects=setup_sects,
        syssize=_u32(data, 0x1F4),
        boot_protocol=protocol,
        loadflags=_u8(data, 0x211),
        code32_start=_u32(data, 0x214),
        initrd_addr_max=_u32(data, 0x22C),
        kernel_alignment=_u32(data, 0x230),
        relocatable=bool(_u8(data, 0x234)),
        min_alignment=_u8(data, 0x235),
        xloadflags=_u16(data, 0x236),
        cmdline_size=_u32(data, 0x238),
        payload_offset=_u32(data, 0x248),
        payload_length=_u32(data, 0x24C),
        pref_address=_u64(data, 0x258),
        init_size=_u32(data, 0x260),
        kernel_version=_kernel_version(data, _u16(data, 0x20E)),
        setup_header=bytes(data[SETUP_HEADER_OFFSET:header_end]),
        file_size=len(data),
    )
    if header.setup_size >= len(data):
        raise Sel4VmmError(
            f"truncated bzImage: setup_sects={setup_sects} puts the protected-mode kernel at "
            f"{header.setup_size:#x}, past the end of the {len(data)}-byte file",
            location=where,
            fix="the file was cut short; rebuild or re-download it",
        )
    needed = header.setup_size + header.syssize * 16
    # syssize counts 16-byte paragraphs, rounded up, so the file may be up to 15 bytes short.
    if needed - 15 > len(data):
        raise Sel4VmmError(
            f"truncated bzImage: the header says {needed:#x} bytes (setup + syssize*16) "
            f"but the file has {len(data):#x}",
            location=where,
            fix="the file was cut short; rebuild or re-download it",
        )
    payload_end = header.setup_size + header.payload_offset + header.payload_length
    if header.payload_length and payload_end > len(data):
        raise Sel4VmmError(
            f"corrupt bzImage: the compressed payload ends at {payload_end:#x}, past the end "
            f"of the {len(data)}-byte file",
            location=where,
            fix="the file was cut short; rebuild or re-download it",
        )
    if not header.supports_64bit_entry:
        raise Sel4VmmError(
            "the bzImage has no 64-bit entry point (XLF_KERNEL_64 clear in xloadflags)",
            location=where,
            fix="build an x86_64 kernel (CONFIG_64BIT=y); 32-bit kernels cannot be booted",
        )
    if header.init_size == 0:
        raise Sel4VmmError(
            "corrupt bzImage: init_size is 0",
            location=where,
            fix="rebuild the kernel",
        )
    return header

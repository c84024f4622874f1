"""Loading Linux into a KVM session by the x86 64-bit boot protocol.

Two kernel forms are accepted: a ``bzImage`` (the protected-mode part is copied to its
preferred address, the setup header goes into the zero page, entry is ``startup_64`` 0x200
bytes in, which decompresses the kernel) and an ELF ``vmlinux`` (segments copied to their
physical addresses, entry at ``e_entry``, which the x86 linker script sets to the physical
``startup_64``; no decompression, which matters where guest kernel mode is slow).

The guest sees the VirtualMachine's registered RAM, and nothing else, as its E820 map, so
what Linux reports as "BIOS-e820" is exactly the plan.  Fixed boot structures sit in the
first 1 MiB like a PC firmware would leave them, each marked allocated in guest RAM so a
later user of ``vm.ram.allocate`` cannot overwrite them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sel4vmm.backends.kvm import x86_boot
from sel4vmm.backends.kvm.session import KvmSession
from sel4vmm.errors import Sel4VmmError
from sel4vmm.images.bzimage import is_bzimage, parse_bzimage
from sel4vmm.images.elf import is_elf, parse_elf
from sel4vmm.images.zero_page import (
    ZERO_PAGE_SIZE,
    BootParameters,
    E820Entry,
    build_zero_page,
    e820_from_ram,
)

ZERO_PAGE_ADDR: Final = 0x7000
BOOT_STACK_TOP: Final = 0x9000
BOOT_STACK_SIZE: Final = 0x1000
CMDLINE_ADDR: Final = 0x2_0000
#: The longest command line when the kernel does not say (``cmdline_size`` of protocol 2.06+).
DEFAULT_CMDLINE_MAX: Final = 2047
_GIB: Final = 1 << 30


@dataclass(frozen=True)
class LinuxBoot:
    """Where everything went: for the command line's report and for tests."""

    kernel_format: str
    kernel_addr: int
    kernel_end: int
    entry: int
    zero_page_addr: int
    cmdline_addr: int
    cmdline: str
    initrd_addr: int
    initrd_size: int
    e820: tuple[E820Entry, ...]


def load_linux(
    session: KvmSession,
    kernel: bytes | memoryview,
    cmdline: str,
    *,
    initrd: bytes | memoryview | None = None,
    kernel_path: str = "<kernel>",
) -> LinuxBoot:
    """Put ``kernel``, the command line, the initrd and the zero page into guest RAM and
    point the vCPU at the kernel's 64-bit entry.  Nothing runs until ``session.run()``.

    When the session has virtio-mmio devices (:meth:`~.session.KvmSession.attach_virtio`),
    their ``virtio_mmio.device=<size>@<base>:<irq>`` words are appended to ``cmdline``:
    that is how an x86 Linux, which has no device tree, finds them (:mod:`.virtio`).
    """
    if session.virtio is not None and session.virtio.slots:
        cmdline = f"{cmdline} {session.virtio.kernel_parameters()}".strip()
    ram = session.vm.ram
    regions = [(r.start, r.size) for r in ram.regions()]
    if not regions:
        raise Sel4VmmError(
            f"{session.vm.name} has no RAM registered", fix="register guest RAM before booting"
        )
    e820 = e820_from_ram(regions)
    ram_end = max(entry.end for entry in e820)
    layout = x86_boot.LongModeLayout(
        identity_map_bytes=min(max(4 * _GIB, -(-ram_end // _GIB) * _GIB), 512 * _GIB)
    )
    with session.vm.undo.transaction():
        session.write_boot_tables(layout)
        ram.mark_allocated(BOOT_STACK_TOP - BOOT_STACK_SIZE, BOOT_STACK_SIZE)
        if is_bzimage(kernel):
            setup_header, kernel_format, kernel_addr, kernel_end, entry, cmdline_max, initrd_max = (
                _load_bzimage(session, kernel, kernel_path)
            )
        elif is_elf(kernel):
            kernel_addr, kernel_end = _elf_extent(session, kernel, kernel_path)
            entry = session.load_elf(kernel, kernel_path)
            setup_header, kernel_format = None, "ELF vmlinux"
            cmdline_max, initrd_max = DEFAULT_CMDLINE_MAX, 0xFFFF_FFFF
        else:
            raise Sel4VmmError(
                f"{kernel_path} is neither a bzImage nor an ELF vmlinux",
                fix="pass arch/x86/boot/bzImage, /boot/vmlinuz-* or vmlinux",
            )
        encoded = cmdline.encode() + b"\0"
        if len(encoded) - 1 > cmdline_max:
            raise Sel4VmmError(
                f"the kernel command line is {len(encoded) - 1} bytes; this kernel accepts "
                f"{cmdline_max}",
                fix="shorten the command line",
            )
        ram.mark_allocated(CMDLINE_ADDR, len(encoded))
        ram.write(CMDLINE_ADDR, encoded)
        initrd_addr = 0
        if initrd is not None and len(initrd):
            initrd_addr = _place_initrd(session, len(initrd), kernel_end, initrd_max)
            ram.mark_allocated(initrd_addr, len(initrd))
            ram.write(initrd_addr, initrd)
        params = BootParameters(
            e820=e820,
            cmdline_addr=CMDLINE_ADDR,
            initrd_addr=initrd_addr,
            initrd_size=len(initrd) if initrd is not None else 0,
            setup_header=setup_header,
        )
        ram.mark_allocated(ZERO_PAGE_ADDR, ZERO_PAGE_SIZE)
        ram.write(ZERO_PAGE_ADDR, build_zero_page(params))
    session.enter(
        layout, x86_boot.EntryState(rip=entry, rsp=BOOT_STACK_TOP - 0x10, rsi=ZERO_PAGE_ADDR)
    )
    return LinuxBoot(
        kernel_format=kernel_format,
        kernel_addr=kernel_addr,
        kernel_end=kernel_end,
        entry=entry,
        zero_page_addr=ZERO_PAGE_ADDR,
        cmdline_addr=CMDLINE_ADDR,
        cmdline=cmdline,
        initrd_addr=initrd_addr,
        initrd_size=params.initrd_size,
        e820=e820,
    )


def _load_bzimage(
    session: KvmSession, kernel: bytes | memoryview, path: str
) -> tuple[bytes, str, int, int, int, int, int]:
    """Copy the protected-mode kernel to its load address; (header, format, start, end,
    entry, max command line, highest initrd address)."""
    header = parse_bzimage(kernel, path)
    requirements = header.requirements()
    load_addr = (
        requirements.fixed_address
        if requirements.fixed_address is not None
        else requirements.first_load_address_at_or_above(header.pref_address)
    )
    end = load_addr + requirements.footprint
    if not session.vm.ram.is_ram(load_addr, requirements.footprint):
        raise Sel4VmmError(
            f"{path} needs RAM at [{load_addr:#x}, {end:#x}) to decompress into "
            f"(init_size {header.init_size:#x}), which the guest does not have",
            fix=f"give the guest RAM covering up to {end:#x}",
        )
    session.vm.ram.mark_allocated(load_addr, requirements.footprint)
    payload = kernel[
        requirements.payload_offset : requirements.payload_offset + requirements.load_size
    ]
    session.vm.ram.write(load_addr, payload)
    return (
        header.setup_header,
        f"bzImage {header.protocol_text}",
        load_addr,
        end,
        requirements.entry_for(load_addr),
        header.cmdline_size or DEFAULT_CMDLINE_MAX,
        header.initrd_addr_max or 0x37FF_FFFF,
    )


def _elf_extent(session: KvmSession, kernel: bytes | memoryview, path: str) -> tuple[int, int]:
    image = parse_elf(kernel, path)
    if not session.vm.ram.is_ram(image.load_base, image.load_end - image.load_base):
        raise Sel4VmmError(
            f"{path} loads at [{image.load_base:#x}, {image.load_end:#x}), outside guest RAM",
            fix=f"give the guest RAM covering [{image.load_base:#x}, {image.load_end:#x})",
        )
    return image.load_base, image.load_end


def _place_initrd(session: KvmSession, size: int, kernel_end: int, highest: int) -> int:
    """The highest page-aligned free RAM below ``highest`` and above the kernel.

    Linux wants the initrd high, away from the kernel's decompression area, and entirely
    below ``initrd_addr_max``.
    """
    for region in sorted(session.vm.ram.regions(), key=lambda r: r.start, reverse=True):
        if region.allocated:
            continue
        top = min(region.end, highest + 1)
        addr = (top - size) & ~0xFFF
        if addr >= max(region.start, kernel_end):
            return addr
    raise Sel4VmmError(
        f"no free guest RAM for a {size:#x}-byte initrd between the kernel's end "
        f"{kernel_end:#x} and {highest:#x}",
        fix="give the guest more RAM or use a smaller initrd",
    )

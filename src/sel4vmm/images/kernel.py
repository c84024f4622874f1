"""What a kernel image asks of the address it is loaded at.

Every kernel format says something different about placement: an arm64 ``Image`` wants
``text_offset`` bytes above a 2 MiB-aligned base and ``image_size`` bytes free, a
``bzImage`` wants ``init_size`` bytes at a ``kernel_alignment`` boundary, an ELF or uImage
names its load address outright.  Format parsers translate their header into one
:class:`KernelRequirements` so the placement code needs to know no format at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class LoadSegment:
    """One run of file bytes copied to ``load address + offset``, zero-filled to ``mem_size``."""

    file_offset: int
    file_size: int
    offset: int
    mem_size: int


@dataclass(frozen=True)
class KernelRequirements:
    """A kernel's placement rules, in format-independent terms."""

    #: Short format name for tables and messages (``arm64 Image``, ``bzImage`` ...).
    format: str
    #: Architecture the image is built for (``aarch64``, ``x86_64``, ``arm``, ``riscv64``).
    arch: str
    #: Offset in the file of the first byte copied to the load address.
    payload_offset: int
    #: Bytes copied from the file (starting at ``payload_offset``).
    load_size: int
    #: Bytes the kernel owns from the load address once running (BSS, page tables,
    #: decompression buffer).  Overlap checks use this, never the file size.
    footprint: int
    #: The image names its own load address (ELF ``p_paddr``, uImage ``ih_load``).
    fixed_address: int | None = None
    #: ``load address - offset_from_base`` must be a multiple of this.
    base_alignment: int = 0x1000
    offset_from_base: int = 0
    #: Entry point = load address + ``entry_offset`` (unless ``fixed_entry`` is set).
    entry_offset: int = 0
    fixed_entry: int | None = None
    #: False when the kernel must sit as close to the start of RAM as possible (arm64
    #: images without the "anywhere" flag cannot use memory below their base).
    anywhere_in_ram: bool = True
    #: Lowest address the kernel prefers when it may go anywhere (bzImage ``pref_address``).
    preferred_address: int | None = None
    #: The format says nothing about placement (a raw binary): the configuration must
    #: name the address (CAmkES ``kernel_entry_addr``).
    needs_configured_address: bool = False
    #: The initrd must end at or below this address (bzImage ``initrd_addr_max + 1``).
    initrd_limit: int | None = None
    #: How the file maps onto memory; empty means one segment of ``load_size`` bytes from
    #: ``payload_offset`` (only ELF images have several).
    segments: tuple[LoadSegment, ...] = field(default=())

    def load_segments(self) -> tuple[LoadSegment, ...]:
        if self.segments:
            return self.segments
        return (LoadSegment(self.payload_offset, self.load_size, 0, self.load_size),)

    def base_for(self, load_address: int) -> int:
        return load_address - self.offset_from_base

    def entry_for(self, load_address: int) -> int:
        if self.fixed_entry is not None:
            return self.fixed_entry
        return load_address + self.entry_offset

    def load_address_for_base_at_or_above(self, addr: int) -> int:
        """The load address whose base is the first aligned base ``>= addr``.

        The base, not the load address, must lie in RAM: an arm64 kernel cannot use memory
        below its 2 MiB-aligned base, and a zImage expects RAM at ``load - 0x8000``.
        """
        align = self.base_alignment
        return -(-addr // align) * align + self.offset_from_base

    def first_load_address_at_or_above(self, addr: int) -> int:
        """The lowest address ``>= addr`` this kernel may be loaded at (its base may then
        lie below ``addr``; use :meth:`load_address_for_base_at_or_above` for RAM starts)."""
        if self.fixed_address is not None:
            return self.fixed_address
        align = self.base_alignment
        return -(-(addr - self.offset_from_base) // align) * align + self.offset_from_base

    def allows(self, load_address: int) -> bool:
        if self.fixed_address is not None:
            return load_address == self.fixed_address
        return self.base_for(load_address) % self.base_alignment == 0

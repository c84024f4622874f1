"""Guest RAM that sel4vmm owns and QEMU executes from: one shared-memory file.

sel4vmm's :class:`~sel4vmm.sel4.physmem.PhysicalMemory` can back the board with a file
instead of anonymous memory.  QEMU maps the same file as its machine RAM
(``-object memory-backend-file,mem-path=F,share=on``), so every byte sel4vmm writes through
its own guest-RAM API - kernel, initrd, DTB, boot stub - is what the guest CPU reads, with
no copy and no second loader.

The layout follows from two facts:

* QEMU ``virt`` RAM starts at 0x40000000 and ``memory-backend-file`` (QEMU 7.2) maps the
  file from offset 0, so the file must begin with guest RAM.  Guest-physical therefore
  equals physical: the RAM is given to the VM **1:1**, from device untyped covering the
  RAM the platform reserved (``device_reserved``), as libvmm does for DMA-capable guests.
* seL4 still needs normal RAM for the VM's own kernel objects (VSpace, TCB, VCPU, stage-2
  tables).  That RAM is placed in the file *after* guest RAM: QEMU maps only the first
  ``ram_size`` bytes, so it never becomes guest-visible.

With no ``-kernel``, QEMU copies its own generated DTB (at most 1 MiB) to the RAM base at
every reset, so the first 2 MiB of guest RAM are marked allocated for QEMU and the stub:
no image may be placed there.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from sel4vmm.closing import Closing
from sel4vmm.errors import Sel4VmmError
from sel4vmm.sel4.arch import AARCH64
from sel4vmm.sel4.physmem import MemoryRange, PhysicalMemory
from sel4vmm.sel4.platform import Sel4Platform
from sel4vmm.sel4.untyped import aligned_blocks
from sel4vmm.vm import DeviceUntypedRequest, PoolRequest, VirtualMachine

#: Where QEMU ``virt`` puts RAM (``hw/arm/virt.c``: ``VIRT_MEM``); it cannot be moved.
QEMU_VIRT_RAM_BASE = 0x4000_0000
#: The most RAM QEMU 7.2's ``virt`` accepts below its high I/O (``LEGACY_RAMLIMIT_GB``).
QEMU_VIRT_RAM_LIMIT = 255 << 30
#: Bottom of RAM kept for QEMU's own DTB (``arm_load_dtb`` writes it at the RAM base when
#: there is no ``-kernel``; virt's tree is allocated at 1 MiB) and the boot stub.
QEMU_RESERVED_SIZE = 2 << 20
#: The boot stub's page: the last page of the reserved window, clear of QEMU's DTB.
STUB_OFFSET = QEMU_RESERVED_SIZE - 0x1000
#: Normal RAM after guest RAM for the VM's seL4 objects (one 2^24 untyped pool).
KERNEL_OBJECT_POOL_BITS = 24
#: QEMU sizes memory backends in whole MiB on its command line.
RAM_GRANULE = 1 << 20


def shared_memory_dir() -> Path:
    """``/dev/shm`` when it exists (tmpfs: no disk writes), else the temporary directory."""
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())


def check_ram(ram_base: int, ram_size: int) -> None:
    """Refuse guest RAM that QEMU ``virt`` cannot present at the same addresses."""
    if ram_base != QEMU_VIRT_RAM_BASE:
        raise Sel4VmmError(
            f"guest RAM starts at {ram_base:#x}, but QEMU virt's RAM starts at "
            f"{QEMU_VIRT_RAM_BASE:#x} and the QEMU backend runs guests 1:1",
            fix=f"map guest RAM at {QEMU_VIRT_RAM_BASE:#x} (as libvmm's qemu_virt_aarch64 "
            "systems do), or use the emulator backend",
        )
    if ram_size <= QEMU_RESERVED_SIZE or ram_size % RAM_GRANULE:
        raise Sel4VmmError(
            f"guest RAM of {ram_size:#x} bytes cannot be QEMU machine RAM: it must be a "
            f"whole number of MiB and more than the {QEMU_RESERVED_SIZE >> 20} MiB QEMU "
            "keeps at its base",
            fix='give the VM e.g. 256 MiB of RAM (size="0x10_000_000")',
        )
    if ram_size > QEMU_VIRT_RAM_LIMIT:
        raise Sel4VmmError(
            f"guest RAM of {ram_size >> 30} GiB is more than QEMU virt accepts "
            f"({QEMU_VIRT_RAM_LIMIT >> 30} GiB)",
            fix="give the VM less RAM",
        )


class SharedGuestRam(Closing):
    """A :class:`VirtualMachine` whose 1:1 guest RAM lives in a shared-memory file.

    Use as a context manager (or call :meth:`close`): the file is removed on close, also
    when loading or QEMU failed.
    """

    def __init__(
        self,
        name: str,
        ram_size: int,
        *,
        ram_base: int = QEMU_VIRT_RAM_BASE,
        page_bits: int = 21,
        directory: Path | None = None,
    ) -> None:
        check_ram(ram_base, ram_size)
        self.ram_base = ram_base
        self.ram_size = ram_size
        where = directory if directory is not None else shared_memory_dir()
        handle, path = tempfile.mkstemp(prefix=f"sel4vmm-{os.getpid()}-{name}-", dir=where)
        os.close(handle)
        self.path = Path(path)
        self.physmem: PhysicalMemory | None = None
        try:
            guest = MemoryRange(ram_base, ram_size, name="guest ram")
            objects = MemoryRange(
                ram_base + ram_size, 1 << KERNEL_OBJECT_POOL_BITS, name="seL4 objects"
            )
            self.physmem = PhysicalMemory([guest, objects], backing_path=str(self.path))
            platform = Sel4Platform(
                self.physmem, AARCH64, device_reserved=[guest], board_name="qemu-virt"
            )
            blocks = aligned_blocks(
                ram_base,
                ram_base + ram_size,
                AARCH64.max_untyped_bits,
                AARCH64.min_untyped_bits,
            )
            self.vm = VirtualMachine.create(
                name,
                platform,
                pools=[PoolRequest(KERNEL_OBJECT_POOL_BITS, 1)],
                device_untypeds=[DeviceUntypedRequest(paddr, bits) for paddr, bits in blocks],
            )
            frame_bits = page_bits if ram_size % (1 << page_bits) == 0 else 12
            self.vm.ram.register_at(ram_base, ram_size, one_to_one=True, page_bits=frame_bits)
            self.vm.ram.mark_allocated(ram_base, QEMU_RESERVED_SIZE)
        except BaseException:
            self.close()
            raise

    @property
    def stub_addr(self) -> int:
        return self.ram_base + STUB_OFFSET

    @property
    def first_free(self) -> int:
        """The lowest guest address images may use (above QEMU's window)."""
        return self.ram_base + QEMU_RESERVED_SIZE

    def file_offset(self, guest_addr: int) -> int:
        """Where ``guest_addr`` is in the file (guest RAM is 1:1, the file starts with it)."""
        assert self.physmem is not None, "closed"
        return self.physmem.file_offset(guest_addr)

    def remove_name(self) -> None:
        """Remove the file's name once QEMU has mapped it (the memory lives on in both
        mappings), so that not even a SIGKILL of sel4vmm leaves it in ``/dev/shm``."""
        self.path.unlink(missing_ok=True)

    def close(self) -> None:
        """Unmap and remove the file; safe to call twice."""
        if self.physmem is not None:
            self.physmem.close()
            self.physmem = None
        self.path.unlink(missing_ok=True)

"""Recognise an image file by its magic numbers and open it for its role.

libsel4vmmplatsupport decides by magic too (ELF, zImage, uImage, DTB, gzip, else "binary"),
but then treats anything unrecognised as a raw kernel and any non-gzip initrd as an error
without saying what the file *is*.  Here every known format is named, compressed kernels are
inflated (Debian's arm64 ``vmlinuz`` is a gzip'd ``Image``, which no arm64 boot protocol
decompresses), and each reader checks the file fits its role: a DTB given as the kernel or
a kernel for the wrong architecture is an error that says so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import Enum

from sel4vmm.config.spec import Finding
from sel4vmm.errors import Location, Sel4VmmError
from sel4vmm.images import arm64_image, bzimage, compression, cpio, dtb, elf, uimage, zimage
from sel4vmm.images.blob import ImageBlob
from sel4vmm.images.kernel import KernelRequirements


class ImageKind(Enum):
    ARM64_IMAGE = "arm64 Image"
    BZIMAGE = "bzImage"
    ELF = "ELF"
    ZIMAGE = "arm32 zImage"
    UIMAGE = "U-Boot uImage"
    GZIP = "gzip"
    OTHER_COMPRESSED = "compressed"
    CPIO = "newc cpio"
    DTB = "device tree blob"
    UNKNOWN = "unknown"


def detect(data: bytes | memoryview) -> ImageKind:
    """The format ``data`` starts with; never raises (an empty input is UNKNOWN).

    Order matters: container formats first, then kernels whose magic sits at an offset
    (an arm64 Image and a bzImage with an EFI stub both begin with "MZ").
    """
    if elf.is_elf(data):
        return ImageKind.ELF
    if uimage.is_uimage(data):
        return ImageKind.UIMAGE
    if dtb.is_dtb(data):
        return ImageKind.DTB
    if compression.is_gzip(data):
        return ImageKind.GZIP
    if compression.other_compressor(data) is not None:
        return ImageKind.OTHER_COMPRESSED
    if bytes(data[:6]) in (cpio.NEWC_MAGIC, cpio.NEWC_CRC_MAGIC):
        return ImageKind.CPIO
    if arm64_image.is_arm64_image(data):
        return ImageKind.ARM64_IMAGE
    if bzimage.is_bzimage(data):
        return ImageKind.BZIMAGE
    if zimage.is_zimage(data):
        return ImageKind.ZIMAGE
    return ImageKind.UNKNOWN


KernelHeader = (
    arm64_image.Arm64ImageHeader
    | bzimage.BzImageHeader
    | elf.ElfImage
    | zimage.ZImageHeader
    | uimage.UImageHeader
    | None
)


@dataclass
class KernelImage:
    """A kernel ready to place: its bytes, its placement rules and what it is."""

    blob: ImageBlob
    requirements: KernelRequirements
    header: KernelHeader
    description: str
    #: The file the user named (``blob`` may be an inflated copy of it).
    path: str
    notes: list[Finding] = field(default_factory=list)


@dataclass
class InitrdImage:
    blob: ImageBlob
    compression: str
    description: str
    path: str
    notes: list[Finding] = field(default_factory=list)


def _a(noun: str) -> str:
    return f"an {noun}" if noun[:1].lower() in "aeiou" else f"a {noun}"


def _wrong_role(kind: ImageKind, role: str, path: str) -> Sel4VmmError:
    fixes = {
        ImageKind.DTB: "this is a device tree; pass it with --dtb",
        ImageKind.CPIO: "this is an initramfs; pass it with --initrd",
        ImageKind.GZIP: "this is a gzip file; pass it with --initrd if it is an initramfs",
    }
    return Sel4VmmError(
        f"the {role} is {_a(kind.value)} file, not {_a(role)}",
        location=Location(path),
        fix=fixes.get(kind, f"pass the {role} file here"),
    )


def _inflate(data: memoryview, path: str, guest_ram: int | None, role: str) -> memoryview:
    """Inflate a gzip'd image (zero-copy view of the one buffer), bounded by the guest's
    RAM when it is known."""
    if guest_ram is None:
        return memoryview(compression.gunzip(data, path))
    return memoryview(
        compression.gunzip(
            data,
            path,
            limit=guest_ram,
            limit_reason=f"more than the guest's {guest_ram} bytes of RAM can hold as its {role}",
        )
    )


def _open(name: str, role: str, guest_ram: int | None) -> ImageBlob:
    """Map an image file, bounded by the guest's RAM when it is known."""
    if guest_ram is None:
        return ImageBlob.open(name, role=role)
    return ImageBlob.open(
        name,
        role=role,
        max_bytes=guest_ram,
        fix=f"the guest has {guest_ram} bytes of RAM: give it more, or use a smaller file",
    )


def _kernel_from_bytes(
    blob: ImageBlob, path: str, arch: str | None, depth: int = 0, guest_ram: int | None = None
) -> KernelImage:
    data = blob.data
    kind = detect(data)
    header: KernelHeader
    notes: list[Finding] = []
    if kind is ImageKind.GZIP and depth == 0:
        inflated = _inflate(data, path, guest_ram, "kernel")
        inner = _kernel_from_bytes(ImageBlob(inflated, path), path, arch, depth + 1)
        inner.description = f"gzip-compressed {inner.description}"
        inner.notes.insert(
            0,
            Finding(
                "note",
                f"the kernel is gzip-compressed ({blob.size} -> {len(inflated)} bytes); it is "
                "inflated before loading because the boot protocol has no decompressor",
                Location(path),
            ),
        )
        blob.close()
        return inner
    if kind is ImageKind.OTHER_COMPRESSED:
        name, command = compression.other_compressor(data) or ("?", "?")
        raise Sel4VmmError(
            f"the kernel is {name}-compressed; only gzip is inflated automatically",
            location=Location(path),
            fix=f"decompress it first ({command})",
        )
    if kind is ImageKind.ARM64_IMAGE:
        header = arm64_image.parse_arm64_image(data, path)
        text = header.effective_text_offset
        description = f"arm64 Image, text_offset {text:#x}, image_size {header.image_size:#x}"
        if header.legacy:
            notes.append(
                Finding(
                    "warning",
                    "arm64 Image has image_size 0 (a pre-3.17 kernel): its BSS size is "
                    "unknown, so overlap checks only cover the file",
                    Location(path),
                    "use a Linux 3.17 or newer kernel",
                )
            )
        requirements = header.requirements()
    elif kind is ImageKind.BZIMAGE:
        header = bzimage.parse_bzimage(data, path)
        description = f"bzImage, boot protocol {header.protocol_text}"
        if header.kernel_version:
            description += f", {header.kernel_version.split(' ')[0]}"
        requirements = header.requirements()
    elif kind is ImageKind.ELF:
        header = elf.parse_elf(data, path)
        description = f"ELF {header.arch}, {len(header.segments)} PT_LOAD segment(s)"
        requirements = header.requirements()
    elif kind is ImageKind.ZIMAGE:
        header = zimage.parse_zimage(data, path)
        description = "arm32 zImage" + (
            "" if header.position_independent else f" linked at {header.start:#x}"
        )
        requirements = header.requirements()
    elif kind is ImageKind.UIMAGE:
        header = uimage.parse_uimage(data, path)
        if header.image_type not in ("kernel", "kernel_noload", "standalone"):
            raise Sel4VmmError(
                f"the uImage holds a {header.image_type}, not a kernel",
                location=Location(path),
                fix="wrap the kernel with 'mkimage -T kernel'",
            )
        if header.compression != "none":
            raise Sel4VmmError(
                f"the uImage payload is {header.compression}-compressed; U-Boot inflates it "
                "but a VMM copies the payload as it is",
                location=Location(path),
                fix="wrap an uncompressed kernel (mkimage -C none)",
            )
        description = f"uImage '{header.name}' ({header.arch}), load {header.load:#x}"
        requirements = header.requirements()
    elif kind is ImageKind.UNKNOWN:
        header = None
        description = "raw binary"
        requirements = KernelRequirements(
            format="raw binary",
            arch=arch or "unknown",
            payload_offset=0,
            load_size=blob.size,
            footprint=blob.size,
            needs_configured_address=True,
        )
        notes.append(
            Finding(
                "warning",
                "the kernel is not a recognised format (arm64 Image, bzImage, ELF, zImage, "
                "uImage); it is loaded as a raw binary at the configured entry address",
                Location(path),
                "check this is the kernel you meant",
            )
        )
    else:
        raise _wrong_role(kind, "kernel", path)
    if arch is not None and requirements.arch not in (arch, "unknown"):
        raise Sel4VmmError(
            f"the kernel ({requirements.format}) is built for {requirements.arch} "
            f"but the VM is {arch}",
            location=Location(path),
            fix=f"build the kernel for {arch}",
        )
    return KernelImage(blob, requirements, header, description, path, notes)


def read_kernel(
    path: str | os.PathLike[str], *, arch: str | None = None, guest_ram: int | None = None
) -> KernelImage:
    """Open, identify and check a kernel for a VM of ``arch`` (any if None); with
    ``guest_ram`` (bytes) the file and its inflated form are bounded by it."""
    name = os.fspath(path)
    return _kernel_from_bytes(_open(name, "kernel", guest_ram), name, arch, guest_ram=guest_ram)


def kernel_from_bytes(
    data: bytes, *, path: str = "<memory>", arch: str | None = None
) -> KernelImage:
    """As :func:`read_kernel`, for an image already in memory."""
    return _kernel_from_bytes(ImageBlob(data, path), path, arch)


def read_initrd(
    path: str | os.PathLike[str], *, verify: bool = True, guest_ram: int | None = None
) -> InitrdImage:
    """Open and check an initial RAM disk.

    With ``verify`` a gzip'd initrd is inflated once to prove it is complete (a truncated
    initramfs makes the kernel panic long after the VMM reported success) and its contents
    checked to be a newc archive.
    """
    name = os.fspath(path)
    blob = _open(name, "initrd", guest_ram)
    return initrd_from_blob(blob, verify=verify, guest_ram=guest_ram)


def initrd_from_blob(
    blob: ImageBlob, *, verify: bool = True, guest_ram: int | None = None
) -> InitrdImage:
    name = blob.path
    kind = detect(blob.data)
    notes: list[Finding] = []
    if kind in (ImageKind.DTB, ImageKind.ARM64_IMAGE, ImageKind.BZIMAGE, ImageKind.ZIMAGE):
        blob.close()
        raise _wrong_role(kind, "initrd", name)
    if kind is ImageKind.GZIP:
        compression.parse_gzip_header(blob.data, name)
        method = "gzip"
        inner = _inflate(blob.data, name, guest_ram, "initramfs") if verify else None
        if inner is not None:
            if detect(inner) is ImageKind.CPIO:
                entries = cpio.read_newc(inner, name)
                description = f"gzip'd newc cpio, {len(entries)} entries"
                if not any(e.name in ("init", "sbin/init") for e in entries):
                    notes.append(
                        Finding(
                            "warning",
                            "the initramfs has no /init or /sbin/init: the kernel will not "
                            "find a first program unless bootargs name one (rdinit=)",
                            Location(name),
                            "add /init to the archive",
                        )
                    )
            else:
                description = "gzip'd data (not a cpio archive)"
        else:
            description = "gzip'd initrd"
    elif kind is ImageKind.CPIO:
        method = "none"
        entries = cpio.read_newc(blob.data, name) if verify else []
        description = "newc cpio" + (f", {len(entries)} entries" if verify else "")
    elif kind is ImageKind.OTHER_COMPRESSED:
        method = (compression.other_compressor(blob.data) or ("?", ""))[0]
        description = f"{method}-compressed initrd (not inspected)"
    else:
        method = "none"
        description = "raw initrd (not a cpio archive; a filesystem image?)"
    return InitrdImage(blob, method, description, name, notes)


def read_dtb(path: str | os.PathLike[str]) -> dtb.DeviceTree:
    name = os.fspath(path)
    with ImageBlob.open(
        name,
        role="device tree",
        max_bytes=dtb.LINUX_MAX_DTB_SIZE,
        fix="Linux refuses device trees over 2 MiB (arm64 booting.rst); pass the board's .dtb",
    ) as blob:
        kind = detect(blob.data)
        if kind is not ImageKind.DTB:
            if kind is ImageKind.UNKNOWN and b"/dts-v1/" in bytes(blob.data[:4096]):
                raise Sel4VmmError(
                    "the device tree is a source file (.dts), not a blob",
                    location=Location(name),
                    fix="pass it with --dts so it is compiled",
                )
            raise _wrong_role(kind, "device tree", name)
        return dtb.DeviceTree(blob.data, name)

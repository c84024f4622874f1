"""The newc cpio format of Linux initramfs images: a reader and a builder.

Each entry is a 110-byte ASCII header (``070701`` then thirteen 8-digit hex fields: ino,
mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor, namesize,
check), the NUL-terminated name padded to a 4-byte boundary, then the data padded likewise.
``TRAILER!!!`` ends an archive; the kernel accepts several archives back to back, separated
by zero padding, which is how libvmm's ``packrootfs`` appends files to a buildroot rootfs.

The builder exists so tests and demos can make a bootable initramfs from a directory or a
static busybox without root (``/dev/console`` is written as a character-device *entry*, no
``mknod`` needed) and without depending on a cpio binary.  Output is reproducible: entries
are sorted, inode numbers assigned in order, mtimes 0.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from sel4vmm.errors import Location, Sel4VmmError, read_user_file
from sel4vmm.images.compression import gzip_bytes, is_gzip, other_compressor
from sel4vmm.images.elf import interpreter

NEWC_MAGIC = b"070701"
NEWC_CRC_MAGIC = b"070702"
HEADER_SIZE = 110
TRAILER = "TRAILER!!!"

#: The console device the kernel opens before running /init (``/dev/console``, 5:1).
CONSOLE_MAJOR, CONSOLE_MINOR = 5, 1

#: A minimal /init for busybox initramfs images: mount the pseudo filesystems, say hello on
#: the console (tests wait for the banner), then give the user a shell.
DEFAULT_INIT = """#!/bin/sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev 2>/dev/null
echo "sel4vmm initramfs: $(/bin/busybox uname -sr) up"
exec /bin/sh
"""

#: Busybox applets linked into /bin of a busybox initramfs.
DEFAULT_APPLETS = ("sh", "ls", "cat", "echo", "mount", "uname", "poweroff", "dmesg", "mkdir")


@dataclass(frozen=True)
class CpioEntry:
    """One archive member; ``mode`` carries both the file type and permission bits."""

    name: str
    mode: int
    data: bytes = b""
    uid: int = 0
    gid: int = 0
    nlink: int = 1
    mtime: int = 0
    rdev_major: int = 0
    rdev_minor: int = 0

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)

    @property
    def is_file(self) -> bool:
        return stat.S_ISREG(self.mode)

    @property
    def is_symlink(self) -> bool:
        return stat.S_ISLNK(self.mode)

    @property
    def is_char_device(self) -> bool:
        return stat.S_ISCHR(self.mode)


def _pad4(n: int) -> int:
    return (4 - n % 4) % 4


def _header(entry: CpioEntry, ino: int, name_size: int) -> bytes:
    fields = (
        ino,
        entry.mode,
        entry.uid,
        entry.gid,
        entry.nlink,
        entry.mtime,
        len(entry.data),
        0,
        0,
        entry.rdev_major,
        entry.rdev_minor,
        name_size,
        0,
    )
    return NEWC_MAGIC + b"".join(f"{f:08x}".encode() for f in fields)


def write_newc(entries: list[CpioEntry]) -> bytes:
    """Serialise ``entries`` (in the given order) and the trailer as one newc archive."""
    out = bytearray()
    for ino, entry in enumerate([*entries, CpioEntry(TRAILER, 0, nlink=1)], start=1):
        name = entry.name.encode() + b"\0"
        out += _header(entry, 0 if entry.name == TRAILER else ino, len(name))
        out += name + b"\0" * _pad4(HEADER_SIZE + len(name))
        out += entry.data + b"\0" * _pad4(len(entry.data))
    return bytes(out)


#: The 13 header fields after the magic, each exactly 8 hex digits (the kernel's
#: ``Documentation/driver-api/early-userspace/buffer-format.rst``).
FIELD_NAMES = (
    "c_ino",
    "c_mode",
    "c_uid",
    "c_gid",
    "c_nlink",
    "c_mtime",
    "c_filesize",
    "c_maj",
    "c_min",
    "c_rmaj",
    "c_rmin",
    "c_namesize",
    "c_chksum",
)
#: Linux's PATH_MAX, which counts the terminating NUL as c_namesize does.
MAX_NAME_SIZE = 4096
_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")


def _header_fields(raw: bytes, pos: int, where: Location) -> list[int]:
    """The 13 fields as unsigned numbers; a sign, a space or any non-hex digit (``int()``
    would take ``-0000070`` as -112 and the reader would walk backwards forever) is refused,
    naming the field."""
    fields = []
    for index, name in enumerate(FIELD_NAMES):
        digits = raw[8 * index : 8 * index + 8]
        if len(digits) != 8 or not _HEX_DIGITS.issuperset(digits):
            raise Sel4VmmError(
                f"corrupt cpio header at offset {pos:#x}: {name} is "
                f"{digits.decode('latin-1')!r}, not 8 hexadecimal digits",
                location=where,
                fix="rebuild the archive",
            )
        fields.append(int(digits, 16))
    return fields


def read_newc(data: bytes | memoryview, path: str = "<memory>") -> list[CpioEntry]:
    """Parse every archive in ``data``; truncation, bad magic or bad hex are user errors."""
    where = Location(path)
    view = memoryview(data).cast("B")
    entries: list[CpioEntry] = []
    pos = 0
    saw_trailer = False
    while pos < len(view):
        if saw_trailer:
            # Between concatenated archives only zero padding may appear.
            if view[pos] == 0:
                pos += 1
                continue
            rest = view[pos:]
            if is_gzip(rest) or other_compressor(rest) is not None:
                # A compressed archive appended after an uncompressed one (Debian puts the
                # early microcode cpio first); the kernel unpacks it, this reader stops.
                break
            saw_trailer = False
        if pos + HEADER_SIZE > len(view):
            raise Sel4VmmError(
                f"truncated cpio archive: an entry header at offset {pos:#x} is cut off",
                location=where,
                fix="the archive was cut short; rebuild it",
            )
        magic = bytes(view[pos : pos + 6])
        if magic not in (NEWC_MAGIC, NEWC_CRC_MAGIC):
            old_format = magic == b"070707" or magic[:2] in (b"\xc7\x71", b"\x71\xc7")
            hint = (
                "this is an old odc/binary cpio; rebuild it with 'cpio -o -H newc'"
                if old_format
                else "initramfs images must be newc cpio ('cpio -o -H newc')"
            )
            raise Sel4VmmError(
                f"not a newc cpio entry at offset {pos:#x} (magic {magic!r})",
                location=where,
                fix=hint,
            )
        fields = _header_fields(bytes(view[pos + 6 : pos + HEADER_SIZE]), pos, where)
        (_ino, mode, uid, gid, nlink, mtime, file_size, _maj, _min, rmaj, rmin, name_size, _c) = (
            fields
        )
        name_start = pos + HEADER_SIZE
        data_start = name_start + name_size + _pad4(HEADER_SIZE + name_size)
        data_end = data_start + file_size
        if name_size > MAX_NAME_SIZE:
            raise Sel4VmmError(
                f"corrupt cpio header at offset {pos:#x}: c_namesize is {name_size}, longer "
                f"than a path can be ({MAX_NAME_SIZE} bytes with its NUL)",
                location=where,
                fix="rebuild the archive",
            )
        if name_size == 0 or data_end > len(view):
            raise Sel4VmmError(
                f"truncated cpio archive: the entry at offset {pos:#x} needs bytes up to "
                f"{data_end:#x} but the archive has {len(view):#x}",
                location=where,
                fix="the archive was cut short; rebuild it",
            )
        raw_name = bytes(view[name_start : name_start + name_size]).rstrip(b"\0")
        # Linux's initramfs unpacker takes names as bytes; keep non-UTF-8 ones readable.
        name = raw_name.decode("utf-8", "surrogateescape")
        pos = data_end + _pad4(file_size)
        if name == TRAILER:
            saw_trailer = True
            continue
        entries.append(
            CpioEntry(
                name=name,
                mode=mode,
                data=bytes(view[data_start:data_end]),
                uid=uid,
                gid=gid,
                nlink=nlink,
                mtime=mtime,
                rdev_major=rmaj,
                rdev_minor=rmin,
            )
        )
    if not saw_trailer:
        raise Sel4VmmError(
            "truncated cpio archive: no TRAILER!!! entry at the end",
            location=where,
            fix="the archive was cut short; rebuild it",
        )
    return entries


class InitramfsBuilder:
    """Collects entries for an initramfs; parent directories are created implicitly."""

    def __init__(self, *, with_console: bool = True) -> None:
        self._entries: dict[str, CpioEntry] = {}
        if with_console:
            self.add_char_device("/dev/console", CONSOLE_MAJOR, CONSOLE_MINOR, mode=0o600)

    @staticmethod
    def _normalise(path: str) -> str:
        parts = PurePosixPath("/" + path).parts[1:]
        if not parts or ".." in parts:
            raise Sel4VmmError(
                f"invalid initramfs path '{path}'",
                fix="use an absolute path inside the initramfs without '..'",
            )
        return "/".join(parts)

    def _add(self, entry: CpioEntry) -> None:
        name = self._normalise(entry.name)
        parent = PurePosixPath(name).parent
        while str(parent) != ".":
            key = str(parent)
            existing = self._entries.get(key)
            if existing is None:
                self._entries[key] = CpioEntry(key, stat.S_IFDIR | 0o755, nlink=2)
            elif not existing.is_dir:
                raise Sel4VmmError(f"initramfs path '/{key}' is a file, not a directory")
            parent = parent.parent
        self._entries[name] = replace(entry, name=name)

    def add_directory(self, path: str, mode: int = 0o755) -> None:
        self._add(CpioEntry(path, stat.S_IFDIR | mode, nlink=2))

    def add_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        self._add(CpioEntry(path, stat.S_IFREG | mode, data=data))

    def add_symlink(self, path: str, target: str) -> None:
        self._add(CpioEntry(path, stat.S_IFLNK | 0o777, data=target.encode()))

    def add_char_device(self, path: str, major: int, minor: int, mode: int = 0o600) -> None:
        self._add(CpioEntry(path, stat.S_IFCHR | mode, rdev_major=major, rdev_minor=minor))

    def add_tree(self, root: str | os.PathLike[str], prefix: str = "/") -> None:
        """Add everything under the host directory ``root`` (files, dirs, symlinks)."""
        base = Path(root)
        if not base.is_dir():
            raise Sel4VmmError(
                "the initramfs source is not a directory",
                location=Location(str(base)),
                fix="name a directory whose contents become the initramfs root",
            )
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for name in [*dirnames, *sorted(filenames)]:
                host = Path(dirpath) / name
                inside = prefix.rstrip("/") + "/" + host.relative_to(base).as_posix()
                info = host.lstat()
                perms = stat.S_IMODE(info.st_mode)
                if stat.S_ISLNK(info.st_mode):
                    self.add_symlink(inside, os.readlink(host))
                elif stat.S_ISDIR(info.st_mode):
                    self.add_directory(inside, perms)
                elif stat.S_ISREG(info.st_mode):
                    data = read_user_file(
                        host, f"{host}", "check the directory given for the initramfs"
                    )
                    self.add_file(inside, data, perms)

    def add_busybox(
        self,
        busybox: str | os.PathLike[str],
        *,
        init_script: str = DEFAULT_INIT,
        applets: tuple[str, ...] = DEFAULT_APPLETS,
    ) -> None:
        """A working root: /bin/busybox (must be static), applet links, /init, mount points."""
        path = Path(busybox)
        binary = read_user_file(
            path, "busybox", "install busybox-static or pass the path of a static busybox"
        )
        if not binary.startswith(b"\x7fELF"):
            raise Sel4VmmError(
                "busybox is not an ELF executable",
                location=Location(str(path)),
                fix="pass the busybox binary itself (Debian: busybox-static's /bin/busybox)",
            )
        loader = interpreter(binary)
        if loader is not None:
            raise Sel4VmmError(
                f"busybox is dynamically linked (it needs {loader}), so it cannot run from an "
                "initramfs that has no shared libraries",
                location=Location(str(path)),
                fix="use a static busybox (Debian: the busybox-static package)",
            )
        self.add_file("/bin/busybox", binary, 0o755)
        for applet in applets:
            self.add_symlink(f"/bin/{applet}", "busybox")
        for mount_point in ("/proc", "/sys", "/dev", "/tmp", "/root"):
            self.add_directory(mount_point)
        self.add_file("/init", init_script.encode(), 0o755)

    def entries(self) -> list[CpioEntry]:
        return [self._entries[name] for name in sorted(self._entries)]

    def build(self) -> bytes:
        """The uncompressed newc archive."""
        return write_newc(self.entries())

    def build_gzip(self) -> bytes:
        """The gzip-compressed archive, as bootloaders and libvmm ship initrds."""
        return gzip_bytes(self.build())

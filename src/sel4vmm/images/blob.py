"""The bytes of one image file, mapped rather than read.

Kernels and initrds are tens of megabytes; reading them into Python ``bytes`` doubles the
memory a run needs and costs a copy before the copy into guest RAM.  An :class:`ImageBlob`
maps the file read-only with :mod:`mmap` and hands out zero-copy :class:`memoryview` slices,
so parsers read headers in place and the loader copies straight from the page cache.

Every parser reports problems against the blob's ``path`` so the user sees which file is
truncated or corrupt; :func:`require` is the one place that turns "the header is shorter
than the format needs" into such an error.
"""

from __future__ import annotations

import contextlib
import mmap
import os

from sel4vmm.closing import Closing
from sel4vmm.errors import Location, Sel4VmmError, open_regular_file

#: Files whose guest is not known yet are mapped up to this size (mapping costs no memory;
#: placement then checks the image against the guest's RAM).
DEFAULT_MAX_IMAGE_BYTES = 4 << 30


class ImageBlob(Closing):
    """An image's bytes: a read-only file mapping, or bytes built in memory."""

    def __init__(self, data: bytes | bytearray | memoryview, path: str = "<memory>") -> None:
        self.path = path
        self._mmap: mmap.mmap | None = None
        self._view = memoryview(data).cast("B")

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        role: str = "image",
        max_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
        fix: str | None = None,
    ) -> ImageBlob:
        """Map ``path``; a missing, unreadable, empty, oversized or non-regular file (a FIFO,
        a device, a symlink to one) is a user error.

        Empty files are refused here because every format (and the loaders of libvmm and
        CAmkES, which print "has zero size") treat a zero-length image as a broken build.
        ``max_bytes`` is what can fit the guest (its RAM) or the format's own limit.
        """
        name = os.fspath(path)
        try:
            fd, size = open_regular_file(
                name,
                f"the {role} file",
                fix or f"pass the {role} file itself, of at most {max_bytes} bytes",
                max_bytes=max_bytes,
            )
            try:
                if size == 0:
                    raise Sel4VmmError(
                        f"the {role} file is empty (0 bytes)",
                        location=Location(name),
                        fix=f"rebuild the {role} or point at the right file",
                    )
                mapping = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
            finally:
                os.close(fd)
        except FileNotFoundError:
            raise Sel4VmmError(
                f"the {role} file does not exist",
                location=Location(name),
                fix="check the path (relative paths are taken from the current directory)",
            ) from None
        except PermissionError:
            raise Sel4VmmError(
                f"the {role} file cannot be read (permission denied)",
                location=Location(name),
                fix="make it readable by the current user",
            ) from None
        except OSError as error:
            raise Sel4VmmError(
                f"cannot read the {role} file: {error.strerror}", location=Location(name)
            ) from None
        blob = cls(b"", name)
        blob._mmap = mapping
        blob._view = memoryview(mapping)
        return blob

    @property
    def data(self) -> memoryview:
        """All of the image, zero-copy."""
        return self._view

    @property
    def size(self) -> int:
        return len(self._view)

    @property
    def location(self) -> Location:
        return Location(self.path)

    def close(self) -> None:
        """Release the mapping; views handed out earlier must not be used afterwards."""
        self._view.release()
        if self._mmap is not None:
            # If a caller still holds a slice, the mapping goes when that slice does.
            with contextlib.suppress(BufferError):
                self._mmap.close()
            self._mmap = None


def require(data: bytes | memoryview, needed: int, what: str, path: str) -> None:
    """Refuse a file shorter than ``needed`` bytes, naming the structure that is cut off."""
    if len(data) < needed:
        raise Sel4VmmError(
            f"truncated {what}: the file has {len(data)} bytes but the {what} needs {needed}",
            location=Location(path),
            fix="the file was cut short (an interrupted download or copy?); fetch or rebuild it",
        )

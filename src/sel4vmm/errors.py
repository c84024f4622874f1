"""The one error type users see.

Every failure a user can cause (a bad configuration, an image that does not fit, a pool
that runs out) is raised as a :class:`Sel4VmmError` carrying *what* went wrong, *where*
(a file location or an address) and *how to fix it*.  The command line prints these as
``file:line:col: error: message`` and never shows a traceback for them.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass


@dataclass(frozen=True)
class Location:
    """A place in a user's file; line and column are 1-based, 0 means unknown."""

    path: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if self.line and self.column:
            return f"{self.path}:{self.line}:{self.column}"
        if self.line:
            return f"{self.path}:{self.line}"
        return self.path


class Sel4VmmError(Exception):
    """A user-facing error: message, optional location, optional fix."""

    def __init__(self, message: str, *, location: Location | None = None, fix: str | None = None):
        super().__init__(message)
        self.message = message
        self.location = location
        self.fix = fix

    def __str__(self) -> str:
        text = f"{self.location}: error: {self.message}" if self.location else self.message
        if self.fix:
            text += f" (fix: {self.fix})"
        return text


class ResourceExhausted(Sel4VmmError):
    """An untyped pool or CSpace ran out; the message says how much more is needed."""


class AddressSpaceError(Sel4VmmError):
    """A reservation, mapping or RAM operation was refused; nothing was changed."""


class GuestFault(Sel4VmmError):
    """A guest access could not be handled and the VM was stopped."""


#: The bound for a user's file of no better-known kind (configurations, scripts, sources).
DEFAULT_MAX_BYTES = 64 << 20
_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def open_regular_file(
    path: str | os.PathLike[str],
    what: str,
    fix: str,
    *,
    max_bytes: int,
    location: Location | None = None,
) -> tuple[int, int]:
    """``(fd, size)`` of a regular file of at most ``max_bytes`` bytes, opened read-only.

    The file is opened with ``O_NONBLOCK`` (a FIFO without a writer would otherwise block
    the open itself) and then ``fstat``'ed, so a symlink to ``/dev/zero`` or a FIFO is seen
    for what it is.  ``OSError`` from the open (missing, permission) is the caller's to word.
    """
    name = os.fspath(path)
    where = location or Location(name)
    if "\0" in name:
        raise Sel4VmmError(
            f"the file name {name!r} of {what} contains a NUL byte",
            location=where,
            fix="remove the NUL (\\0) from the file name",
        )
    fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        for test, kind in _FILE_KINDS:
            if test(info.st_mode):
                raise Sel4VmmError(
                    f"{what} is {kind}, not a regular file",
                    location=where,
                    fix=fix if test is not stat.S_ISDIR else f"name the file inside it; {fix}",
                )
        if not stat.S_ISREG(info.st_mode):
            raise Sel4VmmError(f"{what} is not a regular file", location=where, fix=fix)
        if info.st_size > max_bytes:
            raise Sel4VmmError(
                f"{what} is {info.st_size} bytes, more than the {max_bytes} bytes "
                f"sel4vmm reads for it",
                location=where,
                fix=fix,
            )
    except BaseException:
        os.close(fd)
        raise
    return fd, info.st_size


def read_user_file(
    path: str | os.PathLike[str],
    what: str,
    fix: str,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    location: Location | None = None,
) -> bytes:
    """The bytes of a file the user named, at most ``max_bytes`` of them; an unreadable,
    oversized or non-regular one (a FIFO, a device, a symlink to one) is a located error,
    not a traceback or a hang (``what`` says which file it was meant to be: "the guest
    kernel"); ``location`` is where the error points when that is not the file itself (the
    ``#include`` line that named it)."""
    name = os.fspath(path)
    where = location or Location(name)
    try:
        fd, _size = open_regular_file(name, what, fix, max_bytes=max_bytes, location=where)
        with os.fdopen(fd, "rb") as handle:
            # The size may change after fstat: read one byte past the limit to see that.
            data = handle.read(max_bytes + 1)
    except OSError as error:
        raise Sel4VmmError(
            f"cannot read {what}: {error.strerror}", location=where, fix=fix
        ) from None
    if len(data) > max_bytes:
        raise Sel4VmmError(
            f"{what} is more than the {max_bytes} bytes sel4vmm reads for it",
            location=where,
            fix=fix,
        )
    return data

"""The one error type users see.

Every failure a user can cause (a bad configuration, an image that does not fit, a pool
that runs out) is raised as a :class:`Sel4VmmError` carrying *what* went wrong, *where*
(a file location or an address) and *how to fix it*.  The command line prints these as
``file:line:col: error: message`` and never shows a traceback for them.
"""

from __future__ import annotations

import os
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


def read_user_file(path: str | os.PathLike[str], what: str, fix: str) -> bytes:
    """The bytes of a file the user named; an unreadable one is a located error, not a
    traceback (``what`` says which file it was meant to be: "the guest kernel")."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as error:
        raise Sel4VmmError(
            f"cannot read {what}: {error.strerror}", location=Location(os.fspath(path)), fix=fix
        ) from None

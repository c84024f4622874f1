"""Resources that must be released: host mappings, KVM file descriptors, QEMU processes.

One base class gives each of them ``with`` support that calls ``close()``, so a failure
anywhere in a run still unmaps, closes and stops what it started.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self


class Closing(ABC):
    """Subclasses implement :meth:`close` (idempotent); ``with`` calls it on the way out."""

    @abstractmethod
    def close(self) -> None:
        """Release the resource; calling it again does nothing."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

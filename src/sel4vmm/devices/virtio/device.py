"""What a virtio device type provides to the transport, and the feature bits all devices share.

A device (console, block, net) is small: its ID, its feature bits, its configuration
space and what to do when the driver notifies one of its queues.  The transport
(:mod:`sel4vmm.devices.virtio.mmio`) owns the registers, negotiation, the queues and the
interrupt; it hands the device a :class:`DeviceContext` to reach them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Protocol

from sel4vmm.devices.virtio.virtqueue import SplitVirtqueue
from sel4vmm.memory.guest_ram import GuestRam

#: Reserved feature bits (virtio 1.2, section 6).
VIRTIO_RING_F_INDIRECT_DESC = 1 << 28
VIRTIO_RING_F_EVENT_IDX = 1 << 29
VIRTIO_F_VERSION_1 = 1 << 32

#: Offered by every sel4vmm device; VERSION_1 must also be accepted by the driver.
TRANSPORT_FEATURES = VIRTIO_F_VERSION_1 | VIRTIO_RING_F_INDIRECT_DESC | VIRTIO_RING_F_EVENT_IDX


class DeviceContext(Protocol):
    """The transport, as a device sees it."""

    @property
    def ram(self) -> GuestRam: ...

    @property
    def driver_features(self) -> int: ...

    def queue(self, index: int) -> SplitVirtqueue: ...

    def used_buffers(self, queue: SplitVirtqueue) -> None:
        """Raise the used-buffer interrupt if the driver wants one for ``queue``."""

    def config_changed(self) -> None:
        """Bump ConfigGeneration and raise the configuration-change interrupt."""

    @property
    def running(self) -> bool:
        """FEATURES_OK and DRIVER_OK are set and the device does not need a reset."""

    def poll(self) -> None:
        """Run the device's :meth:`VirtioDevice.poll` now, guarded like a notify."""


class VirtioDevice(ABC):
    """One virtio device type, independent of the transport."""

    #: virtio 1.2 section 5 device ID.
    device_id: int = 0
    #: Device-specific feature bits (the transport adds :data:`TRANSPORT_FEATURES`).
    features: int = 0
    num_queues: int = 1
    queue_num_max: int = 256

    @abstractmethod
    def config(self) -> bytes:
        """The device configuration space as it reads now (little-endian fields)."""

    def write_config(self, offset: int, data: bytes, context: DeviceContext) -> None:
        """A driver store into the configuration space; read-only fields ignore it."""
        del offset, data, context

    @abstractmethod
    def notify(self, queue: SplitVirtqueue, context: DeviceContext) -> None:
        """The driver made buffers available on ``queue`` (QueueNotify)."""

    def activate(self, context: DeviceContext) -> None:
        """DRIVER_OK was set: the device may start using its queues."""
        del context

    def poll(self, context: DeviceContext) -> None:
        """Host-side input arrived (console bytes, net frames): move it into the queues."""
        del context

    def reset(self) -> None:
        """Status 0 was written: drop per-driver state (host-side state such as a disk stays)."""
        return None

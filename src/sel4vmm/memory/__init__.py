"""The guest-physical address space (libsel4vm ``guest_memory.h``) and guest RAM
(``guest_ram.h``)."""

from sel4vmm.memory.address_space import GuestAddressSpace
from sel4vmm.memory.faults import FaultCallback, FaultResult, MemoryFault
from sel4vmm.memory.reservation import MappedExtent, Reservation, VmFrame

__all__ = [
    "FaultCallback",
    "FaultResult",
    "GuestAddressSpace",
    "MappedExtent",
    "MemoryFault",
    "Reservation",
    "VmFrame",
]

"""virtio 1.x over MMIO: the transport, split virtqueues, and the console, block and net devices.

Written from the virtio 1.2 specification (OASIS, ``virtio-v1.2-cs01``): section 2.7 (split
virtqueues), 4.2 (virtio over MMIO, version 2 register layout), 5.1 (net), 5.2 (block) and
5.3 (console).  Every guest-physical address a driver puts in a ring is checked against the
VM's registered RAM before it is touched; a driver that breaks the rules puts the device in
DEVICE_NEEDS_RESET with a diagnostic, it never raises out of the fault path.
"""

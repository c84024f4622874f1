"""The seL4 resources behind a VM: physical memory, untyped objects, frames, CSpace slots."""

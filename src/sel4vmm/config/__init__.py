"""Configurations users already write (Microkit ``.system``, CAmkES VM files), read into
:mod:`sel4vmm.config.spec` descriptions that the planner consumes."""

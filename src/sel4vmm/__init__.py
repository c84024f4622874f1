"""sel4vmm: the seL4 VMM guest-memory system.

Data flows one way: configuration -> plan -> seL4 objects -> guest address space -> backend.
See ARCHITECTURE.md for where each concept lives.
"""

__version__ = "0.1.0"

"""The attributes a CAmkES VM instance may set, so that a typo is caught, not ignored.

CAmkES itself rejects an attribute a component does not declare only at build time, and
camkes-vm's VM component declares a few while CAmkES adds many of its own per instance
(priorities, CNode size, pools) and per interface (``<interface>_id``,
``<interface>_shmem_size``...).  An attribute sel4vmm does not know is therefore not an
error; but one that is a letter or two away from a name VM_Arm or CAmkES reads
(``vm0.cnode_size_bit``) is almost certainly a mistake that a build would only report
much later, or (for settings CAmkES applies by default) silently never apply.

Sources of the names: camkes-vm ad66b659b31277384e96f7fc1b9ad93b350e575f,
``components/VM_Arm/configurations/vm.h`` (``VM_INIT_DEF``: the declared attributes;
``VM_CONFIGURATION_DEF`` and ``VM_DOMAIN_CONFIGURATION_DEF``: the per-instance settings
it makes) and the settings the camkes-vm-examples apps make on their VMs.
"""

from __future__ import annotations

import difflib
import re

from sel4vmm.config.spec import Finding
from sel4vmm.errors import Location, Sel4VmmError

#: Attributes VM_INIT_DEF declares.
DECLARED_BY_VM_ARM = frozenset(
    {
        "base_prio",
        "num_vcpus",
        "num_extra_frame_caps",
        "extra_frame_map_address",
        "vm_address_config",
        "vm_image_config",
        "linux_address_config",
        "linux_image_config",
        "serial_layout",
    }
)
#: Per-instance settings CAmkES itself reads (vm.h's configuration macros set these).
CAMKES_INSTANCE_SETTINGS = frozenset(
    {
        "fs_shmem_size",
        "global_endpoint_base",
        "asid_pool",
        "simple",
        "_priority",
        "priority",
        "_max_priority",
        "max_priority",
        "_affinity",
        "affinity",
        "_domain",
        "domain",
        "sem_value",
        "heap_size",
        "stack_size",
        "_stack_size",
        "cnode_size_bits",
        "tcb_pool",
        "tcb_pool_domains",
        "untyped_mmios",
        "mmios",
        "irqs",
        "dtb",
        "dtb_irqs",
        "plat_keep_devices",
        "plat_keep_devices_and_subtree",
        "allow_smc",
        "allowed_smc_functions",
        "smmu",
    }
)
KNOWN_VM_ATTRIBUTES = DECLARED_BY_VM_ARM | CAMKES_INSTANCE_SETTINGS
#: ``simple_untyped24_pool`` and friends: any size.
POOL_ATTRIBUTE = re.compile(r"simple_untyped(\d+)_pool")
#: How close a name must be to a known one to be called a typo (difflib's ratio).
TYPO_CUTOFF = 0.85


#: Settings CAmkES derives from an interface or dataport name (``send1_id``,
#: ``recv_shmem_size``, ``crossvm_dp_0_size``, ``batch_attributes``): the interfaces are
#: the application's own, so such a name is never called a typo.
_INTERFACE_SETTING = re.compile(r".+_(id|shmem_size|size|attributes|badge|access)")
#: Pool names a typo is compared with (every untyped size an architecture can have).
_POOL_NAMES = frozenset(f"simple_untyped{bits}_pool" for bits in range(4, 48))


def attribute_typo(vm_name: str, attribute: str, location: Location | None) -> Finding | None:
    """A warning when ``attribute`` is unknown but a near miss of a name VM_Arm reads."""
    if attribute in KNOWN_VM_ATTRIBUTES or POOL_ATTRIBUTE.fullmatch(attribute):
        return None
    if _INTERFACE_SETTING.fullmatch(attribute):
        return None
    candidates = sorted(KNOWN_VM_ATTRIBUTES | _POOL_NAMES)
    close = difflib.get_close_matches(attribute, candidates, n=1, cutoff=TYPO_CUTOFF)
    if not close:
        return None
    return Finding(
        "warning",
        f"{vm_name} has no attribute {attribute!r}; neither VM_Arm nor CAmkES reads it, "
        "so it has no effect",
        location,
        f"did you mean {vm_name}.{close[0]}?",
    )


#: Most untyped objects one pool may ask for: every one is a capability the planner models
#: (and a CNode slot on the board); a CNode of 2^16 slots is already a large VM.
MAX_POOL_COUNT = 1 << 16
#: Sizes of objects in bits are bounded by the 64-bit physical address space.
MAX_SIZE_BITS = 64


def size_bits(text: str, what: str, location: Location | None) -> int:
    """A size in bits (``simple_untyped<N>_pool``, ``"0xADDR:N"``): 0 to 64, never huge."""
    bits = int(text) if text.lstrip("-").isdigit() and len(text) <= 4 else -1
    if not 0 <= bits <= MAX_SIZE_BITS:
        raise Sel4VmmError(
            f"{what[:80]}: size of 2^{text[:20]} bytes is impossible",
            location=location,
            fix=f"give a size in bits between 0 and {MAX_SIZE_BITS} (12 is 4 KiB, 24 is 16 MiB)",
        )
    return bits

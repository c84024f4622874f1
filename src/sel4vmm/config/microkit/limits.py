"""The Microkit tool's limits that a protection domain and its virtual machine share.

A ``<protection_domain>`` and the ``<virtual_machine>`` nested in it are read by two
modules (:mod:`.protection_domains`, :mod:`.virtual_machines`) but bounded by the same
rules of the tool: the badge bits left for ids, the highest priority, the default budget,
the u8 a core number is kept in and the 1.4 release's missing ``vaddr`` bound.  They live
here, once, so the two readers cannot drift apart.
"""

from __future__ import annotations

from sel4vmm.config.microkit.diagnostics import MicrokitError
from sel4vmm.config.microkit.numbers import U64
from sel4vmm.config.microkit.target import MicrokitTarget
from sel4vmm.config.microkit.versions import MicrokitVersion
from sel4vmm.config.microkit.xmlsource import XmlElement

#: Badge bits left for channel/IRQ/child ids (two are used by the PPC and fault flags).
PD_MAX_ID = 61
PD_MAX_PRIORITY = 254
BUDGET_DEFAULT = 1000


def cpu_core(element: XmlElement, cpu: int, *, expect: str) -> int:
    """``cpu=``: the tool converts it to a u8 with ``.expect(...)`` -- a panic above 255."""
    if cpu > 0xFF:
        raise MicrokitError.crash(
            element,
            f'cpu="{cpu}" on <{element.tag}>: it does not fit the u8 the tool keeps cores in',
            f"{expect}: TryFromIntError(())",
            fix="name a core the kernel is built for",
        )
    return cpu


def max_map_vaddr(target: MicrokitTarget, limit: int) -> int:
    """Microkit 1.4 checks no upper bound on ``vaddr`` (2.x: the address-space top)."""
    return U64.maximum + 1 if target.microkit is MicrokitVersion.V1_4 else limit

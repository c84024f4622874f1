"""Which Microkit release a system description is checked for.

Users build with different SDKs, and the ``.system`` language changed between them:
Microkit 1.4 marks a PD that serves protected procedure calls with ``pp="true"`` on the
``<protection_domain>``, gives a virtual machine exactly one ``<vcpu id>`` and has none of
the later elements; 2.x moved ``pp`` to the calling ``<end>`` of a channel, allows several
vCPUs (each on a chosen ``cpu``), and added x86-64, IOMMU address spaces, domains, caps,
prefills and setvars of more kinds.  A file is checked under one release's rules:

* ``2`` -- the rules of the microkit commit named in ``../shared/realworld/SOURCES.txt``
  (``2.3.0-7-gcfd5216``), the default, spelled ``2.0`` or any 2.x on the command line;
* ``1.4`` -- the rules of the ``1.4.1`` tag (``tool/microkit/src/sdf.rs``), see
  :mod:`.microkit14`.
"""

from __future__ import annotations

from enum import Enum

from sel4vmm.errors import Sel4VmmError


class MicrokitVersion(Enum):
    """A Microkit release line whose ``.system`` rules we reproduce."""

    V1_4 = "1.4"
    V2 = "2"

    @property
    def label(self) -> str:
        return "Microkit 1.4" if self is MicrokitVersion.V1_4 else "Microkit 2.x"


DEFAULT_VERSION = MicrokitVersion.V2

#: What ``--microkit`` accepts, and the rules each spelling selects.
_SPELLINGS = {
    "1.4": MicrokitVersion.V1_4,
    "1.4.0": MicrokitVersion.V1_4,
    "1.4.1": MicrokitVersion.V1_4,
    "2": MicrokitVersion.V2,
    "2.0": MicrokitVersion.V2,
    "2.0.0": MicrokitVersion.V2,
    "2.0.1": MicrokitVersion.V2,
    "2.1": MicrokitVersion.V2,
    "2.1.0": MicrokitVersion.V2,
    "2.2": MicrokitVersion.V2,
    "2.2.0": MicrokitVersion.V2,
    "2.3": MicrokitVersion.V2,
    "2.3.0": MicrokitVersion.V2,
}


def parse_version(text: str) -> MicrokitVersion:
    """``--microkit VERSION``: a release we have the rules of, or one clear error."""
    version = _SPELLINGS.get(text.strip())
    if version is None:
        raise Sel4VmmError(
            f"unknown Microkit version '{text}'",
            fix="use --microkit 1.4 (the 1.4.x releases) or --microkit 2.0 (2.x, the default)",
        )
    return version


#: Microkit 1.4.1 ``tool/microkit/src/sdf.rs``: the attributes each element may carry
#: (its ``check_attributes`` lists).  Keys name the element in the place it appears.
ATTRIBUTES_1_4: dict[str, tuple[str, ...]] = {
    "protection_domain": (
        "name",
        "priority",
        "pp",
        "budget",
        "period",
        "passive",
        "stack_size",
    ),
    "child_protection_domain": (
        "name",
        "priority",
        "pp",
        "budget",
        "period",
        "passive",
        "stack_size",
        "id",
    ),
    "program_image": ("path",),
    "pd_map": ("mr", "vaddr", "perms", "cached", "setvar_vaddr"),
    "vm_map": ("mr", "vaddr", "perms", "cached"),
    "irq": ("irq", "id", "trigger"),
    "setvar": ("symbol", "region_paddr"),
    "virtual_machine": ("name", "budget", "period", "priority"),
    "vcpu": ("id",),
    "memory_region": ("name", "size", "page_size", "phys_addr"),
    "channel": (),
    "end": ("pd", "id"),
}

#: Microkit 1.4.1: the elements ``<system>`` and ``<protection_domain>`` may hold.
SYSTEM_ELEMENTS_1_4 = ("protection_domain", "channel", "memory_region")
PD_ELEMENTS_1_4 = ("program_image", "map", "irq", "setvar", "protection_domain", "virtual_machine")

#: The fix for 1.x syntax met under 2.x rules: both ways out.
PP_ON_PD_FIX = (
    'Microkit 2.x marks the caller, not the callee: remove pp from this PD and put pp="true" '
    "on the calling PD's <end> of each channel to it -- or, if the file is written for "
    "Microkit 1.4, check it with --microkit 1.4"
)
VM_ID_FIX = (
    'since Microkit 1.3 a virtual machine\'s vCPU is a child element: replace id="N" with '
    '<vcpu id="N" /> inside the <virtual_machine> (no release this checker models, 1.4 '
    "included, accepts id on <virtual_machine>)"
)
END_PP_FIX_1_4 = (
    'Microkit 1.4 marks the callee: put pp="true" on the called <protection_domain> instead '
    "-- or, if the file is written for Microkit 2.x, check it without --microkit 1.4"
)


def attributes(version: MicrokitVersion, kind: str, current: tuple[str, ...]) -> tuple[str, ...]:
    """The attributes element ``kind`` may carry under ``version`` (``current``: 2.x's)."""
    if version is MicrokitVersion.V1_4:
        return ATTRIBUTES_1_4.get(kind, current)
    return current

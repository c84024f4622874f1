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

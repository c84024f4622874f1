"""Microkit system descriptions (``.system`` files): parse, check, convert.

The checker reproduces the Microkit tool's own validation -- the same rules, in the same
order, with the same message text -- so a file it accepts is one ``microkit`` accepts and
an error names the same problem at the same ``file:line:col``.  The pipeline is:

``xmlsource`` (XML with positions) -> ``parse`` / ``regions`` / ``protection_domains`` /
``channels`` / ``iommu`` / ``schedule`` (per-element rules) -> ``system_checks`` (whole
system rules) -> ``to_spec`` (the :class:`~sel4vmm.config.spec.SystemSpec` the planner uses).
"""

from __future__ import annotations

from pathlib import Path

from sel4vmm.config.microkit.check import CheckResult, check_file, check_text
from sel4vmm.config.microkit.target import MicrokitTarget
from sel4vmm.config.microkit.to_spec import to_system_spec
from sel4vmm.config.spec import SystemSpec


def read_microkit(path: str | Path, target: MicrokitTarget | None = None) -> SystemSpec:
    """Check ``path`` and describe its virtual machines; problems are in ``findings``."""
    target = target or MicrokitTarget()
    return to_system_spec(check_file(path, target), target)


__all__ = ["CheckResult", "MicrokitTarget", "check_file", "check_text", "read_microkit"]

"""Microkit system descriptions (``.system`` files): parse, check, convert.

The checker reproduces the Microkit tool's own validation -- the same rules, in the same
order, with the same message text -- so a file it accepts is one ``microkit`` accepts and
an error names the same problem at the same ``file:line:col``.  The pipeline is:

``xmlsource`` (XML with positions) -> ``parse`` / ``regions`` / ``protection_domains`` /
``virtual_machines`` / ``channels`` / ``iommu`` / ``schedule`` (per-element rules) ->
``system_checks`` (whole system rules) -> ``to_spec`` (the
:class:`~sel4vmm.config.spec.SystemSpec` the planner uses).
"""

from __future__ import annotations

from pathlib import Path

from sel4vmm.config.microkit.check import CheckResult, check_file, check_text
from sel4vmm.config.microkit.legacy import read_as_written
from sel4vmm.config.microkit.target import MicrokitTarget
from sel4vmm.config.microkit.to_spec import to_system_spec
from sel4vmm.config.spec import SystemSpec


def read_microkit(path: str | Path, target: MicrokitTarget | None = None) -> SystemSpec:
    """Check ``path`` and describe its virtual machines; problems are in ``findings``.

    This is the planner's reader: it describes what a file asks for, so a file written in
    an older Microkit's syntax is read under the rules it was written for (see
    :func:`~sel4vmm.config.microkit.legacy.read_as_written`), with a warning saying so;
    ``sel4vmm check`` keeps to the release it is given.
    """
    target = target or MicrokitTarget()
    result, used = read_as_written(Path(path), target)
    return to_system_spec(result, used)


__all__ = ["CheckResult", "MicrokitTarget", "check_file", "check_text", "read_microkit"]

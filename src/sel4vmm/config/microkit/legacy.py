"""Reading a file in the syntax it was written in, for planning.

``sel4vmm check`` answers "does this Microkit release accept the file"; ``sel4vmm plan``
answers "what memory does it ask for".  Real systems still use older spellings: libvmm's
virtio-snd example is Microkit 1.4 (``pp`` on the called protection domain), sel4-gpi
predates every release (``<virtual_machine id="0">`` for its single vCPU; upstream VM
support arrived with ``<vcpu>``).  When the default (2.x) rules reject a file *only* for
such a spelling, the planner reads it again under the rules that accept it and says so in
a warning, instead of refusing to plan a file its authors build.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from sel4vmm.config.microkit.check import CheckResult, check_file
from sel4vmm.config.microkit.diagnostics import warning
from sel4vmm.config.microkit.target import MicrokitTarget
from sel4vmm.config.microkit.versions import DEFAULT_VERSION, MicrokitVersion

#: The tool's errors that mean "older syntax", and what reading it as written takes.
_OLDER_SYNTAX = (
    (
        "Error: invalid attribute 'pp' on element 'protection_domain'",
        "Microkit 1.4's syntax (pp on a protection domain)",
    ),
    (
        "Error: invalid attribute 'id' on element 'virtual_machine'",
        "pre-release syntax (<virtual_machine id>, no <vcpu>)",
    ),
)


def _older_syntax(result: CheckResult) -> str | None:
    for error in result.errors:
        for prefix, description in _OLDER_SYNTAX:
            if error.tool_text.startswith(prefix):
                return description
    return None


def read_as_written(path: Path, target: MicrokitTarget) -> tuple[CheckResult, MicrokitTarget]:
    """Check ``path``; if the default rules refuse only an older spelling, the result under
    the first rules that accept it (1.4, then the pre-release ``<virtual_machine id>``)."""
    result = check_file(path, target)
    if result.ok or target.microkit is not DEFAULT_VERSION:
        return result, target
    description = _older_syntax(result)
    if description is None:
        return result, target
    for candidate in (
        replace(target, microkit=MicrokitVersion.V1_4),
        replace(target, accept_vm_id=True),
        replace(target, microkit=MicrokitVersion.V1_4, accept_vm_id=True),
    ):
        retried = check_file(path, candidate)
        if retried.ok:
            rules = candidate.microkit.label + (
                " with <virtual_machine id>" if candidate.accept_vm_id else ""
            )
            note = warning(
                f"the file uses {description}: planned under {rules}'s rules; "
                f"`sel4vmm check` refuses it under {target.microkit.label}",
                result.errors[0].location,
                fix=result.errors[0].fix,
            )
            retried.diagnostics.insert(0, note)
            return retried, candidate
    return result, target

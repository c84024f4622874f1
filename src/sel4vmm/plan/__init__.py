"""Plans: what a configuration really needs, built with the memory core's own objects.

:func:`plan_system` takes a :class:`~sel4vmm.config.spec.SystemSpec` (from either reader)
and a board, builds every VM on a :class:`~sel4vmm.sel4.platform.Sel4Platform` exactly as a
run would, and reports the guest-physical map, where each region lives physically, the seL4
objects consumed, and findings with their place in the user's file and a fix.
"""

from sel4vmm.plan.builder import plan_system
from sel4vmm.plan.model import MapEntry, SystemPlan, VmPlan

__all__ = ["MapEntry", "SystemPlan", "VmPlan", "plan_system"]

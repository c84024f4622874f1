"""``<domains>``: seL4's domain scheduler -- named domains and the fixed schedule.

Domains partition time: the kernel runs the schedule's entries in order, each for a
duration, and only PDs of the entry's domain run.  Once ``<domains>`` is declared every PD
must name its domain.  Domains without an explicit ``id`` get the lowest free ids in name
order, as the tool assigns them.
"""

from __future__ import annotations

from sel4vmm.config.microkit.attributes import (
    check_attributes,
    number_text,
    optional_number,
    required,
)
from sel4vmm.config.microkit.diagnostics import MicrokitError
from sel4vmm.config.microkit.model import DomainSchedule, ScheduleEntry
from sel4vmm.config.microkit.target import MicrokitTarget
from sel4vmm.config.microkit.xmlsource import XmlElement


def _declared_ids(element: XmlElement, target: MicrokitTarget) -> tuple[XmlElement, dict[str, int]]:
    """The ``<domain_schedule>`` element and the name -> id map of ``<domain>``s."""
    explicit: dict[str, int | None] = {}
    owners: dict[int, str] = {}
    schedule_element: XmlElement | None = None
    for child in element.children:
        if child.tag == "domain":
            check_attributes(child, ("name", "id"))
            name = required(child, "name")
            domain_id = optional_number(child, "id")
            if domain_id is not None and domain_id >= target.num_domains:
                raise MicrokitError.on_element(
                    child,
                    f"domain id {domain_id} should be less than the configured "
                    f"KernelNumDomains value of {target.num_domains}",
                )
            if name in explicit:
                previous = explicit[name]
                shown = "None" if previous is None else f"Some({previous})"
                raise MicrokitError.on_element(
                    child,
                    f"Each <domain>'s name element must be unique found existing domain "
                    f"'{name}' with id '{shown}'",
                )
            explicit[name] = domain_id
            if domain_id is not None:
                if domain_id in owners:
                    raise MicrokitError.on_element(
                        child,
                        f"Each <domain>'s id element must be unique found existing domain "
                        f"'{owners[domain_id]}' with id '{domain_id}'",
                    )
                owners[domain_id] = name
        elif child.tag == "domain_schedule":
            if schedule_element is not None:
                raise MicrokitError.on_element(
                    child, "The <domain_schedule> element can only appear once"
                )
            schedule_element = child
        else:
            raise MicrokitError.colon(
                f"invalid XML element as child of <domains> '{child.tag}'", child.location
            )
    if schedule_element is None:
        raise MicrokitError.on_element(element, "The <domain_schedule> element must appear once")

    ids: dict[str, int] = {}
    for name in sorted(explicit):
        domain_id = explicit[name]
        if domain_id is None:
            free = [i for i in range(target.num_domains + 1) if i not in owners]
            if not free:
                raise MicrokitError.on_element(
                    element, f"Number of domains exceeds {target.num_domains}"
                )
            domain_id = free[0]
            owners[domain_id] = name
        ids[name] = domain_id
    return schedule_element, ids


def _entry(element: XmlElement, ids: dict[str, int]) -> ScheduleEntry:
    check_attributes(element, ("domain", "duration"))
    domain = required(element, "domain")
    duration = required(element, "duration")
    if domain not in ids:
        raise MicrokitError.on_element(element, f"domain '{domain}' does not exist,")
    value_text, space, unit = duration.partition(" ")
    if not space:
        raise MicrokitError.on_element(
            element,
            f"The duration '{duration}' must contain a value and a unit, e.g. '1000 us'",
        )
    value = number_text(element, value_text)
    if value == 0:
        raise MicrokitError.on_element(element, f"The duration '{duration}' must be non-zero")
    if unit not in ("us", "ticks"):
        raise MicrokitError.on_element(
            element, f"The duration '{duration}' must be in either 'ticks' or 'us'"
        )
    return ScheduleEntry(ids[domain], value, unit)


def parse_domains(element: XmlElement, target: MicrokitTarget) -> DomainSchedule:
    check_attributes(element, ())
    if target.num_cores != 1:
        raise MicrokitError.bare(
            "The domain scheduler is not supported in multicore builds of seL4",
            location=element.location,
        )
    schedule_element, ids = _declared_ids(element, target)

    check_attributes(schedule_element, ("index_shift", "start_index"))
    start_index = optional_number(schedule_element, "start_index") or 0
    index_shift = optional_number(schedule_element, "index_shift")
    entries = []
    for child in schedule_element.children:
        if child.tag == "schedule_entry":
            entries.append(_entry(child, ids))
        elif child.tag == "schedule_end_marker":
            check_attributes(child, ())
            entries.append(ScheduleEntry(0, None, None))
        else:
            raise MicrokitError.colon(
                f"invalid XML element as child of <domain_schedule> '{child.tag}'",
                child.location,
            )
    limit = target.num_domain_schedules
    if len(entries) >= limit:
        raise MicrokitError.plain(
            f"More than configured KernelNumDomainSchedules {limit} number of "
            "<schedule_entry> elements found",
            location=schedule_element.location,
        )
    if start_index >= len(entries):
        raise MicrokitError.on_element(
            schedule_element,
            f"schedule_start_index '{start_index}' is greater than the length of the "
            f"schedule '{len(entries)}'",
        )
    if index_shift is not None and index_shift + len(entries) >= limit:
        # The tool prints the start index here, not the shift; we keep its exact words.
        raise MicrokitError.on_element(
            schedule_element,
            f"schedule_index_shift '{start_index}' on top of the schedule length "
            f"'{len(entries)}' would exceed than the configured KernelNumDomainSchedules "
            f"{limit}",
        )
    return DomainSchedule(
        ids=ids, entries=entries, start_index=start_index, index_shift=index_shift
    )

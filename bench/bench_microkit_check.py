"""How long does checking a Microkit system description take, and how does it grow?

Prints the check time of the largest real ``.system`` file in ``../shared/realworld`` and
of generated systems with 10, 100 and 1000 virtual machines (each: a VMM PD, guest RAM
shared with the VMM, a passthrough UART at its own physical address, a GIC vCPU window,
an IRQ and a channel to a shared driver).  The Microkit tool caps systems at 63 PDs; the
generated ones lift that cap (``MicrokitTarget.max_pds``) to measure scaling only.

It then measures hostile scale (issue 10 item 7): 10^3, 10^4 and 10^5 memory regions,
PDs, maps or channels written on *one line* (the case that used to be quadratic through
the column computation), each with the ratio to its 10^3 run -- linear checking shows
x10 per step.  The machine is shared, so expect noise; compare ratios, not times.

Ratios are against a baseline measured in the same run; no timing is pass/fail.
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

from timing import best_of

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from sel4vmm.config.microkit import MicrokitTarget, check_text  # noqa: E402
from sel4vmm.config.microkit.versions import DEFAULT_VERSION, MicrokitVersion  # noqa: E402

REALWORLD = REPO.parent / "shared" / "realworld"
SIZES = (10, 100, 1000)


def generated_system(vm_count: int) -> str:
    """A valid system with ``vm_count`` VMMs, each driving one Linux guest."""
    lines = ["<system>"]
    for i in range(vm_count):
        uart = 0x9000000 + i * 0x1000
        lines += [
            f'  <memory_region name="ram{i}" size="0x10_000_000" />',
            f'  <memory_region name="uart{i}" size="0x1000" phys_addr="{uart:#x}" />',
        ]
    lines.append('  <memory_region name="gic_vcpu" size="0x1000" phys_addr="0x8040000" />')
    lines += [
        '  <protection_domain name="driver" priority="254" passive="true">',
        '    <program_image path="driver.elf" />',
        "  </protection_domain>",
    ]
    for i in range(vm_count):
        lines += [
            f'  <protection_domain name="vmm{i}" priority="100">',
            '    <program_image path="vmm.elf" />',
            f'    <map mr="ram{i}" vaddr="0x40000000" perms="rw" setvar_vaddr="guest_ram_vaddr" />',
            f'    <virtual_machine name="linux{i}">',
            '      <vcpu id="0" />',
            f'      <map mr="ram{i}" vaddr="0x40000000" perms="rwx" />',
            f'      <map mr="uart{i}" vaddr="0x9000000" perms="rw" cached="false" />',
            '      <map mr="gic_vcpu" vaddr="0x8010000" perms="rw" cached="false" />',
            "    </virtual_machine>",
            f'    <irq irq="{33 + i}" id="1" />',
            "  </protection_domain>",
            # The driver has 62 channel ids; the first 62 VMMs get a channel to it.
            f'  <channel><end pd="vmm{i}" id="2" pp="true" /><end pd="driver" id="{i}" /></channel>'
            if i < 62
            else "",
        ]
    lines.append("</system>")
    return "\n".join(line for line in lines if line)


HOSTILE_SIZES = (1_000, 10_000, 100_000)
PD = '<protection_domain name="p"><program_image path="a.elf"/></protection_domain>'


def one_line_system(kind: str, count: int) -> str:
    """``count`` elements of ``kind`` on a single line: a valid system."""
    if kind == "regions":
        body = "".join(f'<memory_region name="r{i}" size="0x1000"/>' for i in range(count)) + PD
    elif kind == "pds":
        body = "".join(PD.replace('"p"', f'"p{i}"') for i in range(count))
    elif kind == "maps":
        regions = "".join(f'<memory_region name="r{i}" size="0x1000"/>' for i in range(count))
        maps = "".join(f'<map mr="r{i}" vaddr="{i * 0x1000:#x}"/>' for i in range(count))
        body = regions + PD.replace("</protection_domain>", maps + "</protection_domain>")
    else:
        pairs = count // 60 + 1
        body = "".join(PD.replace('"p"', f'"p{i}"') for i in range(2 * pairs))
        body += "".join(
            f'<channel><end pd="p{2 * (i // 60)}" id="{i % 60}"/>'
            f'<end pd="p{2 * (i // 60) + 1}" id="{i % 60}"/></channel>'
            for i in range(count)
        )
    return f"<system>{body}</system>"


def hostile_scale() -> None:
    target = MicrokitTarget(max_pds=1 << 20)
    for kind in ("regions", "pds", "maps", "channels"):
        baseline = None
        for count in HOSTILE_SIZES:
            text = one_line_system(kind, count)
            result = check_text(text, "h.system", target)
            assert result.ok, [d.tool_text for d in result.errors]
            seconds = best_of(3 if count < 100_000 else 1, partial(check_text, text, "h", target))
            baseline = baseline or seconds
            print(
                f"{count:7d} {kind:8s} on one line: {seconds:7.3f} s   "
                f"x{seconds / baseline:6.1f} vs 10^3"
            )


def main() -> None:
    real = sorted(REALWORLD.glob("**/*.system"), key=lambda p: p.stat().st_size)
    if real:
        largest = real[-1]
        text = largest.read_text(encoding="utf-8")
        target = MicrokitTarget(
            arch="x86_64" if "x86_64" in str(largest) else "aarch64",
            # libvmm's virtio-snd (the largest) is written for Microkit 1.4.
            microkit=MicrokitVersion.V1_4 if "virtio-snd" in str(largest) else DEFAULT_VERSION,
        )
        result = check_text(text, str(largest), target)
        seconds = best_of(20, lambda: check_text(text, str(largest), target))
        print(
            f"largest real file: {largest.relative_to(REALWORLD)} ({len(text)} bytes, "
            f"{'ok' if result.ok else 'rejected'}): {seconds * 1e3:.2f} ms"
        )
    target = MicrokitTarget(max_pds=10_000)
    baseline = None
    for count in SIZES:
        text = generated_system(count)
        result = check_text(text, f"generated-{count}.system", target)
        assert result.ok, [d.tool_text for d in result.errors]
        seconds = best_of(5 if count < 1000 else 3, partial(check_text, text, "g", target))
        baseline = baseline or seconds
        print(
            f"{count:5d} VMs ({len(text) // 1024:5d} KiB): {seconds * 1e3:9.2f} ms   "
            f"x{seconds / baseline:7.1f} vs 10 VMs   ({seconds / count * 1e6:7.1f} us/VM)"
        )
    hostile_scale()


if __name__ == "__main__":
    main()

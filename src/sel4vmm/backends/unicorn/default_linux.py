"""The embedded default Linux run: Debian's arm64 kernel and a busybox initramfs.

``./install.sh`` unpacks Debian's ``linux-image-arm64`` and ``busybox-static:arm64`` into
``.cache/debian-arm64/root`` of the repository.  ``sel4vmm run`` with no kernel boots that
kernel on the bundled qemu-virt system with an initramfs built on the fly (into a
temporary directory, never into the source tree or the shared cache) whose ``/init``
prints :data:`MARKER` and powers the VM off through PSCI.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sel4vmm.errors import Sel4VmmError
from sel4vmm.images.cpio import InitramfsBuilder

#: What the default guest's /init prints once Linux runs it.
MARKER = "sel4vmm: Linux userspace is up on sel4vmm's own VMM"

MARKER_INIT = f"""#!/bin/sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
echo "{MARKER} ($(/bin/busybox uname -sr), $(/bin/busybox nproc) CPU)"
/bin/busybox poweroff -f
"""

_CACHE = Path(".cache") / "debian-arm64" / "root"


@dataclass(frozen=True)
class DebianArm64:
    """The files install.sh fetched."""

    kernel: Path
    busybox: Path


def _roots() -> list[Path]:
    """Where ``.cache`` may be: the current directory and the repository of this source."""
    here = Path(__file__).resolve()
    roots = [Path.cwd()]
    if len(here.parents) > 4:
        roots.append(here.parents[4])  # <repo>/src/sel4vmm/backends/unicorn/
    return roots


def find_debian_arm64() -> DebianArm64:
    """Debian's arm64 kernel and busybox as install.sh unpacked them, or a clear error."""
    for root in _roots():
        base = root / _CACHE
        kernels = sorted((base / "boot").glob("vmlinuz-*-arm64"))
        busybox = base / "bin" / "busybox"
        if kernels and busybox.is_file():
            return DebianArm64(kernels[-1], busybox)
    raise Sel4VmmError(
        "Debian's arm64 kernel is not there (.cache/debian-arm64/root/boot/vmlinuz-*-arm64), "
        "so the default Linux guest cannot boot",
        fix="run ./install.sh (it fetches linux-image-arm64 and busybox-static:arm64), or "
        "pass --kernel (e.g. --kernel hello for the bundled bare-metal guest)",
    )


def build_marker_initramfs(busybox: Path, directory: Path) -> Path:
    """A gzip'd busybox initramfs whose /init prints the marker and powers off."""
    builder = InitramfsBuilder()
    builder.add_busybox(busybox, init_script=MARKER_INIT, applets=("sh",))
    out = directory / "sel4vmm-marker.cpio.gz"
    out.write_bytes(builder.build_gzip())
    return out

"""What the tests that boot Debian's arm64 Linux share: where install.sh unpacked the kernel
and busybox, libvmm's virtio_mmio client files, the skip markers that say exactly what is
missing, and the initramfs they boot.

One place, so every Linux test skips for the same stated reason and builds its initramfs the
same way (``sel4vmm initramfs``'s own builder, with the modules' dependencies).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from sel4vmm.backends.unicorn.default_linux import find_debian_arm64
from sel4vmm.cli.images import build_initramfs
from tests.helpers import REALWORLD, REPO

#: Debian's arm64 kernel package and busybox-static, unpacked by ./install.sh.
DEBIAN = REPO / ".cache" / "debian-arm64" / "root"
#: libvmm's virtio_mmio example guest (linux.dts, gic_v2_overlay.dts, gic_v3_overlay.dts).
CLIENT_VM = REALWORLD / "libvmm" / "virtio_mmio" / "client_vm"
#: Puts the board's PL011 back into libvmm's client tree (its console is hvc0).
PL011_OVERLAY = REPO / "tests" / "backends" / "unicorn" / "data" / "pl011_overlay.dts"

needs_debian = pytest.mark.skipif(
    not sorted((DEBIAN / "boot").glob("vmlinuz-*-arm64")) or not (DEBIAN / "bin/busybox").is_file(),
    reason="Debian's arm64 kernel and busybox are not unpacked in .cache/debian-arm64 "
    "(run ./install.sh)",
)


def needs_client_vm(file: str = "linux.dts") -> pytest.MarkDecorator:
    """Skip unless libvmm's virtio_mmio client ``file`` is in ../shared/realworld."""
    return pytest.mark.skipif(
        not (CLIENT_VM / file).is_file(),
        reason=f"libvmm's virtio_mmio/client_vm/{file} is not in ../shared/realworld/libvmm",
    )


def debian_initramfs(out: Path, init_script: str, modules: Sequence[str] = ()) -> Path:
    """An initramfs of Debian's busybox with ``init_script`` as /init and ``modules`` (with
    their dependencies from ``modules.dep``) loaded by it."""
    init = out.with_name(out.name + ".init")
    init.write_text(init_script)
    build_initramfs(
        out,
        busybox=find_debian_arm64().busybox,
        tree=None,
        init=init,
        modules=tuple(modules),
        modules_dir=sorted((DEBIAN / "lib" / "modules").iterdir())[0] if modules else None,
    )
    return out

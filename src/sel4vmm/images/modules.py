"""Kernel modules for an initramfs: find them in an installed kernel, with their dependencies.

Debian's arm64 kernel builds the virtio drivers as modules (``virtio_mmio``, ``virtio_blk``,
``virtio_console``, ``virtio_net``; the virtio core and ring are built in), so a guest that
boots from an initramfs must load them itself.  Given module names, this finds each one
under ``lib/modules/<version>/``, follows its dependencies — from ``modules.dep`` when
``depmod`` has run, otherwise from each module's own ``.modinfo`` ``depends=`` field, which
is what ``depmod`` reads too (Debian's package ships no ``modules.dep``: its postinst runs
depmod) — and returns them in load order, dependencies first.  Names in
``modules.builtin`` are already in the kernel and are skipped.

Each module's ``vermagic=`` must name the kernel version of its directory: a module for
another kernel would be refused by ``insmod`` inside the guest, long after the mistake.
Compressed modules (``.ko.xz``, ``.ko.gz``) are decompressed here, because busybox's
``insmod`` may be built without decompression; the archive holds plain ``.ko`` files.
"""

from __future__ import annotations

import difflib
import gzip
import io
import lzma
import os
from dataclasses import dataclass
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from sel4vmm.errors import Location, Sel4VmmError, read_user_file

#: Where install.sh unpacks Debian's arm64 kernel package, relative to the repository.
DEFAULT_MODULES_ROOT = Path(".cache/debian-arm64/root/lib/modules")
#: Module file endings, plain first.
SUFFIXES = (".ko", ".ko.xz", ".ko.gz")
#: Bounds on what is read: a module, a decompressed module, the index files, the walk.
MAX_MODULE_BYTES = 64 << 20
MAX_INDEX_BYTES = 16 << 20
MAX_MODULE_FILES = 50_000


@dataclass(frozen=True)
class KernelModule:
    """One module to put in the archive."""

    name: str
    #: Path under ``lib/modules/<version>/`` (``kernel/drivers/virtio/virtio_mmio.ko``).
    relative: str
    depends: tuple[str, ...]
    #: The module's bytes, decompressed.
    data: bytes

    @property
    def archive_path(self) -> str:
        """Where the module goes in the initramfs (always a plain ``.ko``)."""
        return self.relative.removesuffix(".xz").removesuffix(".gz")


def module_name(text: str) -> str:
    """The kernel's canonical name: file suffix dropped, ``-`` read as ``_``."""
    base = text.rsplit("/", 1)[-1]
    for suffix in reversed(SUFFIXES):
        base = base.removesuffix(suffix)
    return base.replace("-", "_")


def find_modules_dir(modules_dir: Path | None) -> Path:
    """``lib/modules/<version>``: given, or the single version under the default root."""
    root = DEFAULT_MODULES_ROOT if modules_dir is None else modules_dir
    fix = "pass --modules-dir DIR (lib/modules/<version> of the guest's kernel package)"
    if (root / "kernel").is_dir() or (root / "modules.order").is_file():
        return root
    if not root.is_dir():
        raise Sel4VmmError(
            "the kernel modules directory does not exist",
            location=Location(str(root)),
            fix=fix + "; install.sh unpacks Debian's arm64 kernel into .cache/",
        )
    versions = sorted(p for p in root.iterdir() if (p / "kernel").is_dir())
    if len(versions) != 1:
        found = ", ".join(p.name for p in versions) or "none"
        raise Sel4VmmError(
            f"expected one kernel version under the modules directory, found {found}",
            location=Location(str(root)),
            fix=fix,
        )
    return versions[0]


class ModuleIndex:
    """The modules of one installed kernel, by name."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.version = directory.name
        self.builtin = self._builtin()
        self.dep = self._modules_dep()
        self.paths = self._paths() if self.dep is None else {module_name(p): p for p in self.dep}

    def _read_index(self, name: str) -> str | None:
        path = self.directory / name
        if not path.is_file():
            return None
        data = read_user_file(path, name, "reinstall the kernel package", max_bytes=MAX_INDEX_BYTES)
        return data.decode("utf-8", "replace")

    def _builtin(self) -> set[str]:
        text = self._read_index("modules.builtin") or ""
        return {module_name(line.strip()) for line in text.splitlines() if line.strip()}

    def _modules_dep(self) -> dict[str, tuple[str, ...]] | None:
        text = self._read_index("modules.dep")
        if text is None:
            return None
        dep: dict[str, tuple[str, ...]] = {}
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            module, colon, rest = line.partition(":")
            if not colon:
                raise Sel4VmmError(
                    "modules.dep line has no ':'",
                    location=Location(str(self.directory / "modules.dep"), number),
                    fix="regenerate it with depmod",
                )
            dep[module.strip()] = tuple(rest.split())
        return dep

    def _paths(self) -> dict[str, str]:
        paths: dict[str, str] = {}
        count = 0
        for dirpath, dirnames, filenames in os.walk(self.directory / "kernel"):
            dirnames.sort()
            for filename in sorted(filenames):
                if not filename.endswith(SUFFIXES):
                    continue
                count += 1
                if count > MAX_MODULE_FILES:
                    raise Sel4VmmError(
                        f"more than {MAX_MODULE_FILES} module files",
                        location=Location(str(self.directory)),
                        fix="point --modules-dir at one kernel's lib/modules/<version>",
                    )
                relative = (Path(dirpath) / filename).relative_to(self.directory).as_posix()
                paths.setdefault(module_name(filename), relative)
        return paths

    def load(self, name: str, wanted_by: str | None) -> KernelModule:
        relative = self.paths.get(name)
        if relative is None:
            close = difflib.get_close_matches(name, list(self.paths), n=3)
            who = f" (needed by {wanted_by})" if wanted_by else ""
            raise Sel4VmmError(
                f"no kernel module '{name}'{who} in {self.version}",
                location=Location(str(self.directory)),
                fix=f"did you mean {', '.join(close)}?" if close else "check the module name",
            )
        path = self.directory / relative
        data = _decompress(
            read_user_file(
                path, "a kernel module", "reinstall the kernel package", max_bytes=MAX_MODULE_BYTES
            ),
            path,
        )
        info = modinfo(data, path)
        vermagic = info.get("vermagic", "").split(" ", 1)[0]
        if vermagic != self.version:
            raise Sel4VmmError(
                f"module '{name}' was built for kernel '{vermagic}', not '{self.version}'",
                location=Location(str(path)),
                fix="take the modules from the same kernel package as the guest's kernel",
            )
        if self.dep is not None:
            depends = tuple(module_name(d) for d in self.dep.get(relative, ()))
        else:
            depends = tuple(d for d in info.get("depends", "").split(",") if d)
        return KernelModule(name, relative, tuple(module_name(d) for d in depends), data)


def _decompress(data: bytes, path: Path) -> bytes:
    try:
        if path.name.endswith(".xz"):
            return _bounded(lzma.LZMADecompressor(), data, path)
        if path.name.endswith(".gz"):
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
                out = stream.read(MAX_MODULE_BYTES + 1)
            if len(out) > MAX_MODULE_BYTES:
                raise _too_big(path)
            return out
    except (lzma.LZMAError, OSError, EOFError) as error:
        raise Sel4VmmError(
            f"cannot decompress the module: {error}",
            location=Location(str(path)),
            fix="reinstall the kernel package",
        ) from None
    return data


def _bounded(decompressor: lzma.LZMADecompressor, data: bytes, path: Path) -> bytes:
    out = decompressor.decompress(data, max_length=MAX_MODULE_BYTES + 1)
    if len(out) > MAX_MODULE_BYTES:
        raise _too_big(path)
    return out


def _too_big(path: Path) -> Sel4VmmError:
    return Sel4VmmError(
        f"the module decompresses to more than {MAX_MODULE_BYTES} bytes",
        location=Location(str(path)),
        fix="check that this is a kernel module",
    )


def modinfo(data: bytes, path: Path) -> dict[str, str]:
    """The ``key=value`` strings of a module's ``.modinfo`` section."""
    try:
        section = ELFFile(io.BytesIO(data)).get_section_by_name(".modinfo")
        raw = section.data() if section is not None else None
    except (ELFError, ValueError, OSError) as error:
        raise Sel4VmmError(
            f"not a kernel module (ELF error: {error})",
            location=Location(str(path)),
            fix="check that this is a kernel module",
        ) from None
    if raw is None:
        raise Sel4VmmError(
            "the module has no .modinfo section",
            location=Location(str(path)),
            fix="check that this is a kernel module",
        )
    info: dict[str, str] = {}
    for item in bytes(raw).split(b"\0"):
        key, equals, value = item.decode("utf-8", "replace").partition("=")
        if equals:
            info.setdefault(key, value)
    return info


def resolve_modules(names: list[str], modules_dir: Path | None) -> tuple[str, list[KernelModule]]:
    """(kernel version, modules in load order: every module after its dependencies)."""
    index = ModuleIndex(find_modules_dir(modules_dir))
    order: list[KernelModule] = []
    done: set[str] = set()
    visiting: list[str] = []

    def visit(name: str, wanted_by: str | None) -> None:
        if name in done or name in index.builtin:
            return
        if name in visiting:
            cycle = " -> ".join([*visiting[visiting.index(name) :], name])
            raise Sel4VmmError(
                f"kernel modules depend on each other in a cycle: {cycle}",
                location=Location(str(index.directory)),
                fix="regenerate modules.dep with depmod",
            )
        visiting.append(name)
        module = index.load(name, wanted_by)
        for dependency in module.depends:
            visit(dependency, name)
        visiting.pop()
        done.add(name)
        order.append(module)

    for name in names:
        visit(module_name(name), None)
    return index.version, order


def load_script(version: str, modules: list[KernelModule]) -> str:
    """``/sbin/load-modules``: insmod each module in order; say which one failed."""
    lines = ["#!/bin/sh"]
    for module in modules:
        path = f"/lib/modules/{version}/{module.archive_path}"
        lines.append(
            f"/bin/busybox insmod {path} || echo 'sel4vmm initramfs: insmod {module.name} failed'"
        )
    return "\n".join(lines) + "\n"

"""Find, preprocess and parse the files of one CAmkES VM configuration.

A camkes-vm application is split in two: the application file (``vm_minimal.camkes``)
declares the VM instances and says ``import <devices.camkes>;``, and each supported
platform has a directory (``qemu-arm-virt/``, ``zcu102/2022_1/``) holding the
``devices.camkes`` with that board's RAM window, pools and passthrough devices.  The
CAmkES build picks the directory by adding ``${KernelARMPlatform}`` to the import path;
here the platform comes from ``--define PLAT=<dir>`` (or ``KernelARMPlatform``), from an
``--include`` directory, or from the path of a ``devices.camkes`` given directly.

Each file is preprocessed on its own with the same defines, as CAmkES does, and its
imports are read before its own statements, so a platform file's settings come first and
the application's settings override them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sel4vmm.config.camkes.lexer import tokenize
from sel4vmm.config.camkes.parse import CamkesFile, Import, parse_tokens
from sel4vmm.config.camkes.preprocess import (
    BUNDLED_INCLUDE_DIR,
    display_path,
    preprocess,
    read_source,
)
from sel4vmm.config.spec import Finding
from sel4vmm.errors import Location, Sel4VmmError

#: Defines that name the platform directory, in the order they are consulted.
PLATFORM_DEFINES = ("PLAT", "KernelARMPlatform")
#: camkes-vm keeps platform headers (``<plat/smc.h>``) per SoC family, not per board.
_PLAT_INCLUDE_FAMILY = {"zcu102": "zynqmp", "ultra96v2": "ultra96v2", "ultra96": "ultra96v2"}
#: Imports of CAmkES and global-components files that only declare connectors, procedures
#: and server components; they set nothing a VM's memory depends on, so when they are not
#: found (sel4vmm does not ship them) they are skipped without a warning.
_DECLARATION_ONLY_IMPORTS = (
    "std_connector.camkes",
    "global-connectors.camkes",
    "vm-connectors.camkes",
    "FileServerInterface.camkes",
    "FileServer/FileServer.camkes",
    "SerialServer/SerialServer.camkes",
    "TimeServer/TimeServer.camkes",
    "VM/vm.camkes",
)
#: The x86 VM component's headers (camkes-vm's components/VM, not VM_Arm).
X86_INCLUDE_DIR = BUNDLED_INCLUDE_DIR / "x86"
#: Platform names that mean an x86 build (CAmkES's KernelPlatform pc99, sel4vmm's board).
_X86_PLATFORMS = frozenset({"pc99", "x86_64", "x86_64_generic", "x86_64_generic_vtx", "ia32"})
#: ``import <VM/vm.camkes>;``: the x86 VM component, which only x86 applications import.
_X86_IMPORT = re.compile(r"^\s*import\s*<VM/vm\.camkes>\s*;", re.M)


@dataclass
class ReadFiles:
    """Every file of a configuration, in the order their statements take effect."""

    files: list[CamkesFile] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    platform: str | None = None


def platform_from_defines(defines: Mapping[str, str]) -> str | None:
    for name in PLATFORM_DEFINES:
        value = defines.get(name, "").strip().strip('"')
        if value:
            return value
    return None


def platform_directories(app_dir: Path) -> list[str]:
    """Platform directories next to an application file (those holding a devices.camkes)."""
    found = sorted(
        str(p.parent.relative_to(app_dir))
        for p in app_dir.glob("**/devices.camkes")
        if p.parent != app_dir
    )
    return found


def platform_of_devices_file(path: Path) -> str:
    """``zcu102/2022_1`` for ``.../zcu102/2022_1/devices.camkes``, ``tx2`` for ``.../tx2/...``.

    Some boards keep one directory per firmware release below the board directory; a
    directory whose name starts with a digit is such a release, not a board.
    """
    directory = path.resolve().parent
    if directory.name[:1].isdigit() and directory.parent.name:
        return f"{directory.parent.name}/{directory.name}"
    return directory.name


class _Reader:
    def __init__(self, top: Path, include_dirs: Sequence[Path], defines: Mapping[str, str]) -> None:
        self.top = top
        self.defines = dict(defines)
        self.user_dirs = [Path(d) for d in include_dirs]
        self.result = ReadFiles(platform=platform_from_defines(defines))
        self.seen: set[Path] = set()
        self.x86 = False
        if self.result.platform is None and top.name == "devices.camkes":
            # A platform file given directly: its directory *is* the platform directory.
            self.result.platform = platform_of_devices_file(top)
        self.import_dirs = list(self.user_dirs)
        platform = platform_from_defines(defines)
        if platform is not None:
            self.import_dirs.append(top.parent / platform)
        self.import_dirs.append(BUNDLED_INCLUDE_DIR)

    def platform_family(self, path: Path) -> str | None:
        """The SoC family whose ``plat/`` headers ``path`` sees (``zcu102/2022_1`` -> zynqmp).

        Taken from the platform when known (given, or from the devices.camkes being read),
        else from a board name among the directories of ``path``.
        """
        if self.result.platform:
            board = Path(self.result.platform).parts[0]
            return _PLAT_INCLUDE_FAMILY.get(board, board)
        for part in path.resolve().parts:
            if part in _PLAT_INCLUDE_FAMILY:
                return _PLAT_INCLUDE_FAMILY[part]
        return None

    def cpp_dirs(self, path: Path, text: str = "") -> list[Path]:
        """``#include <...>`` search path: the user's, the platform headers, sel4vmm's.

        x86 applications (an x86 platform, or a file importing ``<VM/vm.camkes>``) see the
        x86 VM component's ``configurations/vm.h`` first, as camkes-vm's build gives them.
        """
        directories = list(self.user_dirs)
        platform = (self.result.platform or "").replace("-", "_").lower()
        if platform in _X86_PLATFORMS or self.x86 or _X86_IMPORT.search(text):
            self.x86 = True
            directories.append(X86_INCLUDE_DIR)
        family = self.platform_family(path)
        if family is not None and (BUNDLED_INCLUDE_DIR / "plat_include" / family).is_dir():
            directories.append(BUNDLED_INCLUDE_DIR / "plat_include" / family)
        directories.append(BUNDLED_INCLUDE_DIR)
        return directories

    def read(self, path: Path, importer: Location | None) -> None:
        resolved = path.resolve()
        if resolved in self.seen:
            return  # CAmkES imports every file once
        self.seen.add(resolved)
        text = read_source(path, importer)
        output = preprocess(
            path, text, include_dirs=self.cpp_dirs(path, text), defines=self.defines
        )
        shown = display_path(path)
        parsed = parse_tokens(tokenize(output, shown), shown)
        for item in parsed.imports:
            self.read_import(path, item)
        self.result.files.append(parsed)

    def read_import(self, importer: Path, item: Import) -> None:
        search = ([] if item.system else [importer.parent]) + self.import_dirs
        for directory in search:
            candidate = directory / item.path
            if candidate.is_file():
                if self.result.platform is None and candidate.name == "devices.camkes":
                    self.result.platform = platform_of_devices_file(candidate)
                self.read(candidate, item.location)
                return
        if item.path in _DECLARATION_ONLY_IMPORTS or item.path.endswith(".idl4"):
            return
        if Path(item.path).name == "devices.camkes":
            choices = platform_directories(self.top.parent)
            listed = ", ".join(choices) if choices else "none found next to the file"
            raise Sel4VmmError(
                f"cannot find {item.path}: CAmkES builds add the platform directory to the "
                f"import path (platform directories here: {listed})",
                location=item.location,
                fix="pass --define PLAT=<platform directory> (e.g. --define PLAT="
                f"{choices[0] if choices else 'qemu-arm-virt'}) or --include <directory "
                "holding devices.camkes>",
            )
        self.result.findings.append(
            Finding(
                "warning",
                f"imported file {item.path!r} was not found; its declarations are skipped",
                location=item.location,
                fix="pass its directory with --include (-I) if it configures a VM",
            )
        )


def read_files(
    path: Path, *, include_dirs: Sequence[Path], defines: Mapping[str, str]
) -> ReadFiles:
    """Read ``path`` and everything it imports; raise :class:`Sel4VmmError` on any problem."""
    if not path.is_file():
        raise Sel4VmmError(
            f"{path} does not exist or is not a file",
            location=Location(str(path)),
            fix="give the path of a .camkes file",
        )
    reader = _Reader(path, include_dirs, defines)
    reader.read(path, None)
    return reader.result

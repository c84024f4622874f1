"""The Microkit SDK's boards and the kernel configuration each is built with.

``sel4vmm check --board NAME`` checks a ``.system`` against the kernel the SDK ships for
that board, so ``check --board odroidc4 smp.system`` needs no other flag.  The facts come
from seL4/microkit at commit cfd521630a52f718b8140d504c695edbaf27a915 (the one
``../shared/realworld/SOURCES.txt`` names):

* ``build_sdk.py`` ``SUPPORTED_BOARDS``: each board's architecture, CPU (``gcc_cpu``) and
  SMP core count (``smp_cores``, elaborated into the ``smp-*`` configurations with
  ``KernelMaxNumNodes`` = cores and ``KernelNumDomains`` = 1); the defaults every board
  gets (``KernelNumDomains`` 16, ``KernelNumDomainSchedules`` 100; on AArch64
  ``KernelArmHypervisorSupport`` and ``KernelAllowSMCCalls``; on x86-64 ``KernelIOMMU``),
  and the boards that override them (``qemu_virt_aarch64_el1``: no hypervisor;
  ``x86_64_generic``: ``KernelVTX`` off, so no virtual machines).
* ``tool/microkit/src/main.rs``: how the tool turns the kernel configuration into its
  ``sel4::Config`` -- hypervisor from ``ARM_HYPERVISOR_SUPPORT`` (AArch64) or ``VTX``
  (x86-64), never on RISC-V; IOMMU only on x86-64; ``arm_smc`` from ``ALLOW_SMC_CALLS``.
* seL4's ``src/arch/arm/config.cmake``: the physical-address size per CPU (Cortex-A35,
  A53, A55: 40 bits; A57, A72: 44 bits); ``bcm2711`` (rpi4b) also sets 44 itself.

``rpi5b_2gb`` (Cortex-A76) is left out: seL4's CPU table has no A76 entry and we have not
read what its platform file sets, so its PA size is unknown here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from difflib import get_close_matches

from sel4vmm.config.microkit.target import MicrokitTarget
from sel4vmm.errors import Sel4VmmError

#: build_sdk.py: ``DEFAULT_X86_NUM_CPUS``.
DEFAULT_X86_NUM_CPUS = 16
#: build_sdk.py ``DEFAULT_KERNEL_OPTIONS``.
NUM_DOMAINS = 16
NUM_DOMAIN_SCHEDULES = 100

#: seL4 src/arch/arm/config.cmake: ``KernelArmPASizeBits40``/``44`` by CPU.
_PA_SIZE_BITS_BY_CPU = {
    "cortex-a35": 40,
    "cortex-a53": 40,
    "cortex-a55": 40,
    "cortex-a57": 44,
    "cortex-a72": 44,
}


@dataclass(frozen=True)
class SdkBoard:
    """One entry of build_sdk.py's ``SUPPORTED_BOARDS``, as the tool's Config sees it."""

    name: str
    arch: str
    kernel_platform: str
    gcc_cpu: str | None
    smp_cores: int | None
    hypervisor: bool

    @property
    def iommu(self) -> bool:
        return self.arch == "x86_64"

    @property
    def arm_smc(self) -> bool | None:
        return True if self.arch == "aarch64" else None

    @property
    def arm_pa_size_bits(self) -> int | None:
        if self.arch != "aarch64":
            return None
        assert self.gcc_cpu is not None
        return _PA_SIZE_BITS_BY_CPU[self.gcc_cpu]


def _aarch64(name: str, platform: str, cpu: str, cores: int | None, hyp: bool = True) -> SdkBoard:
    return SdkBoard(name, "aarch64", platform, cpu, cores, hyp)


def _riscv64(name: str, platform: str, cores: int | None) -> SdkBoard:
    return SdkBoard(name, "riscv64", platform, None, cores, False)


SDK_BOARDS: dict[str, SdkBoard] = {
    board.name: board
    for board in (
        _aarch64("kria_k26", "zynqmp", "cortex-a53", None),
        _aarch64("stm32mp2", "stm32mp2", "cortex-a35", 2),
        _aarch64("tqma8xqp1gb", "tqma8xqp1gb", "cortex-a35", 4),
        _aarch64("zcu102", "zynqmp", "cortex-a53", 4),
        _aarch64("maaxboard", "maaxboard", "cortex-a53", 4),
        _aarch64("imx8mm_evk", "imx8mm-evk", "cortex-a53", 4),
        _aarch64("imx8mp_evk", "imx8mp-evk", "cortex-a53", 4),
        _aarch64("imx8mq_evk", "imx8mq-evk", "cortex-a53", 4),
        _aarch64("imx8mp_iotgate", "imx8mp-evk", "cortex-a53", 4),
        _aarch64("odroidc2", "odroidc2", "cortex-a53", 4),
        _aarch64("odroidc4", "odroidc4", "cortex-a55", 4),
        _aarch64("ultra96v2", "zynqmp", "cortex-a53", 4),
        _aarch64("qemu_virt_aarch64", "qemu-arm-virt", "cortex-a53", 4),
        _aarch64("qemu_virt_aarch64_el1", "qemu-arm-virt", "cortex-a53", 4, hyp=False),
        _riscv64("qemu_virt_riscv64", "qemu-riscv-virt", 4),
        _aarch64("rpi4b_1gb", "bcm2711", "cortex-a72", 4),
        _aarch64("rpi4b_2gb", "bcm2711", "cortex-a72", 4),
        _aarch64("rpi4b_4gb", "bcm2711", "cortex-a72", 4),
        _aarch64("rpi4b_8gb", "bcm2711", "cortex-a72", 4),
        _aarch64("rockpro64", "rockpro64", "cortex-a53", 4),
        _aarch64("rock3b", "rk3568", "cortex-a55", None),
        _riscv64("hifive_p550", "hifive-p550", 4),
        _riscv64("star64", "star64", 4),
        _riscv64("ariane", "ariane", None),
        _riscv64("cheshire", "cheshire", None),
        _riscv64("serengeti", "cheshire", None),
        SdkBoard("x86_64_generic", "x86_64", "pc99", "generic", DEFAULT_X86_NUM_CPUS, False),
        SdkBoard("x86_64_generic_vtx", "x86_64", "pc99", "generic", DEFAULT_X86_NUM_CPUS, True),
    )
}


def sdk_board(name: str) -> SdkBoard:
    """The SDK board called ``name`` (``-`` and ``_`` alike), or an error naming the near ones."""
    key = name.strip().lower().replace("-", "_")
    board = SDK_BOARDS.get(key)
    if board is None:
        near = get_close_matches(key, SDK_BOARDS, n=3)
        hint = f"did you mean {', '.join(near)}? " if near else ""
        raise Sel4VmmError(
            f"'{name}' is not a board the Microkit SDK is built for",
            fix=f"{hint}the SDK's boards: {', '.join(sorted(SDK_BOARDS))}",
        )
    return board


def target_for_board(
    name: str, *, cores: int | None = None, base: MicrokitTarget | None = None
) -> MicrokitTarget:
    """The kernel configuration the SDK builds for board ``name``.

    A board with an SMP configuration is checked against it (``smp-release``: all its
    cores, one domain) unless ``cores`` asks otherwise; ``cores=1`` selects the
    uniprocessor configurations (``release``/``debug``: 16 domains).  ``base`` supplies
    the fields a board does not decide (search paths, Microkit version).
    """
    board = sdk_board(name)
    num_cores = board.smp_cores or 1 if cores is None else cores
    if num_cores > 1 and board.smp_cores is None:
        raise Sel4VmmError(
            f"the Microkit SDK builds {board.name} for one core only",
            fix=f"drop --cores; {board.name} has no smp-* configuration in build_sdk.py",
        )
    if board.smp_cores is not None and num_cores > board.smp_cores:
        raise Sel4VmmError(
            f"the Microkit SDK builds {board.name} for at most {board.smp_cores} cores",
            fix=f"use --cores {board.smp_cores} or fewer",
        )
    return replace(
        base or MicrokitTarget(),
        arch=board.arch,
        hypervisor=board.hypervisor,
        num_cores=num_cores,
        iommu=board.iommu,
        num_domains=NUM_DOMAINS if num_cores == 1 else 1,
        num_domain_schedules=NUM_DOMAIN_SCHEDULES,
        arm_smc=board.arm_smc,
        arm_pa_size_bits=board.arm_pa_size_bits,
        board=board.name,
    )

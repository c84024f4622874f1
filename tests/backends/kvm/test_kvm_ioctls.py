"""The ctypes transcription of the KVM ABI matches linux/kvm.h for x86_64."""

from __future__ import annotations

import ctypes
import platform
import shutil
import subprocess
from pathlib import Path

import pytest

from sel4vmm.backends.kvm import ioctls


def test_structure_sizes_match_the_kernel_abi() -> None:
    assert ctypes.sizeof(ioctls.KvmRegs) == 144
    assert ctypes.sizeof(ioctls.KvmSegment) == 24
    assert ctypes.sizeof(ioctls.KvmSregs) == 312
    assert ctypes.sizeof(ioctls.KvmUserspaceMemoryRegion) == 32
    assert ctypes.sizeof(ioctls.KvmDirtyLog) == 16
    assert ctypes.sizeof(ioctls.KvmCpuidEntry2) == 40
    assert ctypes.sizeof(ioctls.KvmPitConfig) == 64


def test_request_numbers_match_the_kernel_headers() -> None:
    # Values as the C preprocessor computes them from <linux/kvm.h> on x86_64.
    assert ioctls.KVM_CREATE_VM == 0xAE01
    assert ioctls.KVM_RUN == 0xAE80
    assert ioctls.KVM_GET_REGS == 0x8090AE81
    assert ioctls.KVM_SET_SREGS == 0x4138AE84
    assert ioctls.KVM_SET_USER_MEMORY_REGION == 0x4020AE46
    assert ioctls.KVM_GET_DIRTY_LOG == 0x4010AE42
    assert ioctls.KVM_GET_SUPPORTED_CPUID == 0xC008AE05
    assert ioctls.KVM_SET_CPUID2 == 0x4008AE90
    assert ioctls.KVM_CREATE_PIT2 == 0x4040AE77
    assert ioctls.KVM_SET_IDENTITY_MAP_ADDR == 0x4008AE48


_HEADER_CHECKED = {
    "KVM_GET_API_VERSION": ioctls.KVM_GET_API_VERSION,
    "KVM_CREATE_VM": ioctls.KVM_CREATE_VM,
    "KVM_CHECK_EXTENSION": ioctls.KVM_CHECK_EXTENSION,
    "KVM_GET_VCPU_MMAP_SIZE": ioctls.KVM_GET_VCPU_MMAP_SIZE,
    "KVM_GET_SUPPORTED_CPUID": ioctls.KVM_GET_SUPPORTED_CPUID,
    "KVM_CREATE_VCPU": ioctls.KVM_CREATE_VCPU,
    "KVM_GET_DIRTY_LOG": ioctls.KVM_GET_DIRTY_LOG,
    "KVM_SET_USER_MEMORY_REGION": ioctls.KVM_SET_USER_MEMORY_REGION,
    "KVM_SET_TSS_ADDR": ioctls.KVM_SET_TSS_ADDR,
    "KVM_SET_IDENTITY_MAP_ADDR": ioctls.KVM_SET_IDENTITY_MAP_ADDR,
    "KVM_CREATE_IRQCHIP": ioctls.KVM_CREATE_IRQCHIP,
    "KVM_IRQ_LINE": ioctls.KVM_IRQ_LINE,
    "KVM_CREATE_PIT2": ioctls.KVM_CREATE_PIT2,
    "KVM_RUN": ioctls.KVM_RUN,
    "KVM_GET_REGS": ioctls.KVM_GET_REGS,
    "KVM_SET_REGS": ioctls.KVM_SET_REGS,
    "KVM_GET_SREGS": ioctls.KVM_GET_SREGS,
    "KVM_SET_SREGS": ioctls.KVM_SET_SREGS,
    "KVM_SET_CPUID2": ioctls.KVM_SET_CPUID2,
    "KVM_MEM_LOG_DIRTY_PAGES": ioctls.KVM_MEM_LOG_DIRTY_PAGES,
    "KVM_MEM_READONLY": ioctls.KVM_MEM_READONLY,
    "KVM_EXIT_IO": ioctls.KVM_EXIT_IO,
    "KVM_EXIT_MMIO": ioctls.KVM_EXIT_MMIO,
    "KVM_EXIT_SHUTDOWN": ioctls.KVM_EXIT_SHUTDOWN,
    "KVM_EXIT_FAIL_ENTRY": ioctls.KVM_EXIT_FAIL_ENTRY,
    "KVM_EXIT_INTERNAL_ERROR": ioctls.KVM_EXIT_INTERNAL_ERROR,
    "KVM_EXIT_SYSTEM_EVENT": ioctls.KVM_EXIT_SYSTEM_EVENT,
    "offsetof(struct kvm_run, exit_reason)": ioctls.RUN_EXIT_REASON,
    "offsetof(struct kvm_run, immediate_exit)": ioctls.RUN_IMMEDIATE_EXIT,
    "offsetof(struct kvm_run, mmio)": ioctls.RUN_MMIO_ADDR,
    "offsetof(struct kvm_run, mmio.data)": ioctls.RUN_MMIO_DATA,
    "offsetof(struct kvm_run, mmio.len)": ioctls.RUN_MMIO_LEN,
    "offsetof(struct kvm_run, mmio.is_write)": ioctls.RUN_MMIO_IS_WRITE,
    "offsetof(struct kvm_run, io)": ioctls.RUN_UNION,
}


def test_every_number_agrees_with_the_installed_linux_headers(tmp_path: Path) -> None:
    header = Path("/usr/include/linux/kvm.h")
    compiler = shutil.which("gcc")
    if not header.exists() or compiler is None or platform.machine() != "x86_64":
        pytest.skip("needs gcc and the x86_64 <linux/kvm.h> (linux-libc-dev)")
    lines = [f'printf("%llu\\n", (unsigned long long)({expr}));' for expr in _HEADER_CHECKED]
    source = tmp_path / "numbers.c"
    source.write_text(
        "#include <stdio.h>\n#include <stddef.h>\n#include <linux/kvm.h>\n"
        "int main(void) {\n" + "\n".join(lines) + "\nreturn 0; }\n"
    )
    program = tmp_path / "numbers"
    subprocess.run([compiler, "-o", str(program), str(source)], check=True)
    output = subprocess.run([str(program)], check=True, capture_output=True, text=True).stdout
    from_headers = dict(zip(_HEADER_CHECKED, map(int, output.split()), strict=True))
    assert from_headers == _HEADER_CHECKED

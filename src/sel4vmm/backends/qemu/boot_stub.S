// The boot stub sel4vmm writes into guest RAM for the QEMU backend.
//
// QEMU starts the CPU here (-device loader,addr=<stub>,cpu-num=0) with the MMU and caches
// off and all of DAIF masked.  The stub does what Documentation/arm64/booting.rst asks of
// a boot loader's last step and nothing else: x0 = physical address of the DTB, x1-x3 = 0,
// then jump to the kernel image.  The two literals after the code are patched by
// sel4vmm.backends.qemu.stub.boot_stub().
//
// Rebuild (tests/backends/qemu/test_qemu_stub.py does this and compares):
//   aarch64-linux-gnu-as boot_stub.S -o boot_stub.o
//   aarch64-linux-gnu-objcopy -O binary boot_stub.o boot_stub.bin
    .text
    .global _start
_start:
    ldr x0, dtb_address     // x0 = DTB
    mov x1, xzr             // x1..x3 = 0 (reserved for future use)
    mov x2, xzr
    mov x3, xzr
    ldr x4, kernel_entry
    br x4                   // never returns
    .balign 8
dtb_address:
    .quad 0
kernel_entry:
    .quad 0

/*
 * Entry point and exception vectors shared by every sel4vmm AArch64 test guest.
 *
 * The VMM enters at _start in EL1 with the MMU off and x0 = guest-physical address of
 * the DTB, exactly as Linux's arm64 boot protocol (Documentation/arm64/booting.rst)
 * requires, so the guests exercise the same contract a Linux kernel relies on.
 */
    .section .text.start, "ax"
    .globl _start
_start:
    mov     x19, x0                 /* keep the DTB pointer across the set-up calls */
    ldr     x1, =__stack_top
    mov     sp, x1
    ldr     x1, =vectors
    msr     vbar_el1, x1
    isb
    /* Clear .bss: the raw binary stops at the end of .data. */
    ldr     x1, =__bss_start
    ldr     x2, =__bss_end
1:  cmp     x1, x2
    b.hs    2f
    str     xzr, [x1], #8
    b       1b
2:  mov     x0, x19
    bl      guest_main
    bl      psci_system_off
3:  wfi
    b       3b

/* Save the caller-saved registers, call a C handler, restore, return from exception. */
.macro HANDLER name, kind
    .balign 128
\name:
    sub     sp, sp, #192
    stp     x0, x1, [sp, #0]
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x30, [sp, #144]
    mov     x0, #\kind
    mrs     x1, esr_el1
    mrs     x2, elr_el1
    bl      exception_handler
    ldp     x0, x1, [sp, #0]
    ldp     x2, x3, [sp, #16]
    ldp     x4, x5, [sp, #32]
    ldp     x6, x7, [sp, #48]
    ldp     x8, x9, [sp, #64]
    ldp     x10, x11, [sp, #80]
    ldp     x12, x13, [sp, #96]
    ldp     x14, x15, [sp, #112]
    ldp     x16, x17, [sp, #128]
    ldp     x18, x30, [sp, #144]
    add     sp, sp, #192
    eret
.endm

    .balign 2048
vectors:
    /* Current EL with SP0 */
    HANDLER v_sp0_sync, 0
    HANDLER v_sp0_irq, 1
    HANDLER v_sp0_fiq, 2
    HANDLER v_sp0_serr, 3
    /* Current EL with SPx: the only group these guests use */
    HANDLER v_spx_sync, 0
    HANDLER v_spx_irq, 1
    HANDLER v_spx_fiq, 2
    HANDLER v_spx_serr, 3
    /* Lower EL, AArch64 and AArch32: never taken, report them as unexpected */
    HANDLER v_low64_sync, 4
    HANDLER v_low64_irq, 4
    HANDLER v_low64_fiq, 4
    HANDLER v_low64_serr, 4
    HANDLER v_low32_sync, 4
    HANDLER v_low32_irq, 4
    HANDLER v_low32_fiq, 4
    HANDLER v_low32_serr, 4

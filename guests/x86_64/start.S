/*
 * Entry of the sel4vmm x86_64 test guests.
 *
 * The VMM enters here already in 64-bit mode (boot page tables, flat GDT, interrupts off)
 * with %rsp at the top of a stack it reserved and %rdi holding the guest's argument.  We
 * call guest_main(argument) and report its return value on the exit port: HLT never
 * reaches the VMM when KVM's in-kernel IRQ chip is in use, so an I/O write is the only
 * reliable way for a guest to say "done".
 */
	.section .text.entry, "ax"
	.globl _start
	.code64
_start:
	cld
	call	guest_main
	movw	$0xf4, %dx		/* EXIT_PORT in guest.h */
	outl	%eax, %dx
1:	jmp	1b			/* the VMM never resumes us after the exit port */

	.section .note.GNU-stack, "", @progbits

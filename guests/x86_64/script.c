/*
 * The "script" test guest: runs a list of memory and port operations the test wrote into
 * guest RAM, storing what each read returned next to the operation.
 *
 * One interpreter instead of one guest per test keeps the expensive part (guest kernel-mode
 * instructions, ~2,800x slower under paravirtualised nested KVM) small and lets each test
 * state its accesses in Python next to its assertions.  Accesses are single volatile
 * loads/stores of the stated width, so each becomes exactly one MMIO exit when it misses
 * guest RAM.
 */
#include "guest.h"

enum op_kind {
	OP_END = 0,
	OP_WRITE = 1,     /* *(width *)addr = value */
	OP_READ = 2,      /* result = *(width *)addr */
	OP_OUT = 3,       /* out(port = addr, value) */
	OP_IN = 4,        /* result = in(port = addr) */
	OP_UART_PUTS = 5, /* send the NUL-terminated string at addr to the 8250 at port value */
	OP_READ_LOOP = 6, /* result = sum of value reads of *(u32 *)addr (benchmarks) */
};

struct op {
	u32 kind;
	u32 width; /* bytes: 1, 2, 4 or 8 */
	u64 addr;
	u64 value;
	u64 result;
};

static u64 mem_read(u64 addr, u32 width)
{
	switch (width) {
	case 1: return *(volatile u8 *)addr;
	case 2: return *(volatile u16 *)addr;
	case 4: return *(volatile u32 *)addr;
	default: return *(volatile u64 *)addr;
	}
}

static void mem_write(u64 addr, u32 width, u64 value)
{
	switch (width) {
	case 1: *(volatile u8 *)addr = (u8)value; break;
	case 2: *(volatile u16 *)addr = (u16)value; break;
	case 4: *(volatile u32 *)addr = (u32)value; break;
	default: *(volatile u64 *)addr = value; break;
	}
}

static u64 port_in(u16 port, u32 width)
{
	switch (width) {
	case 1: return inb(port);
	case 2: return inw(port);
	default: return inl(port);
	}
}

static void port_out(u16 port, u32 width, u64 value)
{
	switch (width) {
	case 1: outb(port, (u8)value); break;
	case 2: outw(port, (u16)value); break;
	default: outl(port, (u32)value); break;
	}
}

/* 8250: wait for "transmit holding register empty" (LSR bit 5) before each byte. */
static void uart_puts(u16 base, const char *text)
{
	for (; *text; text++) {
		while (!(inb(base + 5) & 0x20))
			;
		outb(base, (u8)*text);
	}
}

u32 guest_main(struct op *ops)
{
	u32 done = 0;
	for (struct op *op = ops; op->kind != OP_END; op++, done++) {
		switch (op->kind) {
		case OP_WRITE: mem_write(op->addr, op->width, op->value); break;
		case OP_READ: op->result = mem_read(op->addr, op->width); break;
		case OP_OUT: port_out((u16)op->addr, op->width, op->value); break;
		case OP_IN: op->result = port_in((u16)op->addr, op->width); break;
		case OP_UART_PUTS: uart_puts((u16)op->value, (const char *)op->addr); break;
		case OP_READ_LOOP: {
			u64 sum = 0;
			for (u64 i = 0; i < op->value; i++)
				sum += *(volatile u32 *)op->addr;
			op->result = sum;
			break;
		}
		default: return 0xffffffff; /* unknown operation: the test wrote a bad script */
		}
	}
	return done;
}

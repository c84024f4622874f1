/*
 * The tiny runtime every sel4vmm AArch64 test guest links against: PL011 output, a
 * read-only flattened-device-tree walker, PSCI calls and the exception dispatch.
 * Freestanding: no libc, no floating point, no MMU.
 */
#ifndef SEL4VMM_GUEST_RUNTIME_H
#define SEL4VMM_GUEST_RUNTIME_H

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long u64;

/* qemu virt's PL011; the VMM passes it through at the same guest address. */
#define UART_BASE 0x09000000UL

static inline u32 mmio_read32(u64 addr) { return *(volatile u32 *)addr; }
static inline void mmio_write32(u64 addr, u32 v) { *(volatile u32 *)addr = v; }

void putc(char c);
void puts(const char *s);
void put_hex(u64 v);
void put_dec(u64 v);

/* Find property `prop` of the node at `path` ("/memory", "/chosen"); node names match up
 * to their unit address, so "/memory" finds "/memory@40000000". Returns NULL if absent. */
const void *fdt_getprop(const void *fdt, const char *path, const char *prop, u32 *len);
u32 fdt_be32(const void *p);
u64 fdt_be64(const void *p);
int fdt_valid(const void *fdt);
u32 fdt_totalsize(const void *fdt);

u64 psci_call(u64 fn, u64 a1, u64 a2, u64 a3);
void psci_system_off(void) __attribute__((noreturn));
#define PSCI_VERSION 0x84000000UL
#define PSCI_SYSTEM_OFF 0x84000008UL

/* Exception kinds passed from the vectors in start.S. */
enum { EXC_SYNC = 0, EXC_IRQ = 1, EXC_FIQ = 2, EXC_SERROR = 3, EXC_LOWER = 4 };
/* Guests that take interrupts define this; the default reports a spurious IRQ. */
void irq_handler(void);

int guest_main(const void *dtb);

#endif

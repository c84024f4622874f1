/*
 * The "probe" test guest: reports the RAM the VMM gave it and proves that RAM is real.
 *
 * It is entered by the Linux 64-bit boot protocol (sel4vmm's load_linux), so %rsi holds
 * the zero page.  It prints the zero page's E820 table on COM1 in Linux's own words
 * ("BIOS-e820: [mem 0x...-0x...] usable"), so a test compares a probe and a real kernel
 * with one parser.  Then it writes an address-dependent word at the first and last 8 bytes
 * of every usable range and at every 1 MiB boundary inside it (above its own image), and
 * reads them all back only after all were written: a page that is not backed exits to the
 * VMM, and two guest addresses backed by one host page read back the wrong word.  A few
 * hundred accesses keep guest kernel mode (very slow under nested KVM) short.
 *
 * "probe.touch=0xADDR" on the command line makes it read 8 bytes at ADDR last and print
 * them: a window the plan gave it reads back, anything else stops it with the VMM's fault.
 */
#include "guest.h"

#define COM1 0x3f8
#define LSR_THRE 0x20
/* struct boot_params (Documentation/arch/x86/zero-page.rst). */
#define ZP_E820_ENTRIES 0x1e8
#define ZP_E820_TABLE 0x2d0
#define ZP_CMD_LINE_PTR 0x228
#define E820_RAM 1
#define STRIDE (1ul << 20)
#define PATTERN 0x5e14a11c0ffee000ul

struct e820_entry {
	u64 addr;
	u64 size;
	u32 type;
} __attribute__((packed));

extern char _end[];

static void putc(char c)
{
	while (!(inb(COM1 + 5) & LSR_THRE))
		;
	outb(COM1, (u8)c);
}

static void puts(const char *s)
{
	while (*s)
		putc(*s++);
}

static void puthex(u64 value, int digits)
{
	puts("0x");
	for (int shift = (digits - 1) * 4; shift >= 0; shift -= 4)
		putc("0123456789abcdef"[(value >> shift) & 0xf]);
}

static void putdec(u64 value)
{
	char digits[21];
	int n = 0;
	do {
		digits[n++] = (char)('0' + value % 10);
		value /= 10;
	} while (value);
	while (n)
		putc(digits[--n]);
}

/* Visit the probed words of [start, end): first, every STRIDE boundary, last. */
static u64 visit(u64 start, u64 end, int verify, u64 *bad)
{
	u64 count = 0;
	u64 addr = start;
	while (addr + 8 <= end) {
		volatile u64 *word = (volatile u64 *)addr;
		if (verify) {
			if (*word != (addr ^ PATTERN) && !*bad)
				*bad = addr;
		} else {
			*word = addr ^ PATTERN;
		}
		count++;
		u64 next = (addr | (STRIDE - 1)) + 1;
		if (addr < end - 8 && next > end - 8)
			next = end - 8;
		addr = next;
	}
	return count;
}

/* The hexadecimal value of "probe.touch=0x..." in the command line, or 0 when absent. */
static u64 touch_address(const char *cmdline)
{
	static const char key[] = "probe.touch=0x";
	for (const char *p = cmdline; *p; p++) {
		int i = 0;
		while (key[i] && p[i] == key[i])
			i++;
		if (key[i])
			continue;
		u64 value = 0;
		for (p += i;; p++) {
			char c = *p;
			if (c >= '0' && c <= '9')
				value = value * 16 + (u64)(c - '0');
			else if (c >= 'a' && c <= 'f')
				value = value * 16 + (u64)(c - 'a' + 10);
			else
				return value;
		}
	}
	return 0;
}

u32 guest_main(u64 unused, const u8 *zero_page)
{
	(void)unused;
	u32 entries = zero_page[ZP_E820_ENTRIES];
	const struct e820_entry *table = (const struct e820_entry *)(zero_page + ZP_E820_TABLE);
	u64 floor = ((u64)_end + 0xfff) & ~0xffful;
	for (u32 i = 0; i < entries; i++) {
		puts("BIOS-e820: [mem ");
		puthex(table[i].addr, 16);
		putc('-');
		puthex(table[i].addr + table[i].size - 1, 16);
		puts(table[i].type == E820_RAM ? "] usable\n" : "] reserved\n");
	}
	u64 words = 0, bad = 0;
	for (int verify = 0; verify < 2; verify++) {
		for (u32 i = 0; i < entries; i++) {
			u64 start = table[i].addr, end = start + table[i].size;
			if (table[i].type != E820_RAM || end <= floor)
				continue;
			if (start < floor)
				start = floor;
			u64 n = visit(start, end, verify, &bad);
			if (!verify)
				words += n;
		}
	}
	if (bad) {
		puts("probe: RAM at ");
		puthex(bad, 16);
		puts(" did not keep what was written\n");
		return 1;
	}
	puts("probe: wrote and verified ");
	putdec(words);
	puts(" words of RAM\n");
	u64 touch = touch_address((const char *)(u64) * (const u32 *)(zero_page + ZP_CMD_LINE_PTR));
	if (touch) {
		puts("probe: reading ");
		puthex(touch, 16);
		putc('\n');
		u64 value = *(volatile u64 *)touch;
		puts("probe: read ");
		puthex(value, 16);
		putc('\n');
	}
	return 0;
}

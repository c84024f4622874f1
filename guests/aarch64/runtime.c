/* See runtime.h: output, FDT walking, PSCI and exception dispatch for the test guests. */
#include "runtime.h"

#define UART_DR 0x00
#define UART_FR 0x18
#define UART_FR_TXFF (1u << 5)

void putc(char c)
{
    if (c == '\n')
        putc('\r');
    while (mmio_read32(UART_BASE + UART_FR) & UART_FR_TXFF)
        ;
    mmio_write32(UART_BASE + UART_DR, (u8)c);
}

void puts(const char *s)
{
    while (*s)
        putc(*s++);
}

void put_hex(u64 v)
{
    static const char digits[] = "0123456789abcdef";
    int shift = 60;
    puts("0x");
    while (shift > 0 && ((v >> shift) & 0xf) == 0)
        shift -= 4;
    for (; shift >= 0; shift -= 4)
        putc(digits[(v >> shift) & 0xf]);
}

void put_dec(u64 v)
{
    char buf[24];
    int i = 0;
    do {
        buf[i++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (i)
        putc(buf[--i]);
}

/* ---- flattened device tree (big-endian, version 17) ---------------------------- */
#define FDT_MAGIC 0xd00dfeedu
#define FDT_BEGIN_NODE 1u
#define FDT_END_NODE 2u
#define FDT_PROP 3u
#define FDT_NOP 4u
#define FDT_END 9u

u32 fdt_be32(const void *p)
{
    const u8 *b = p;
    return ((u32)b[0] << 24) | ((u32)b[1] << 16) | ((u32)b[2] << 8) | b[3];
}

u64 fdt_be64(const void *p)
{
    return ((u64)fdt_be32(p) << 32) | fdt_be32((const u8 *)p + 4);
}

int fdt_valid(const void *fdt) { return fdt && fdt_be32(fdt) == FDT_MAGIC; }
u32 fdt_totalsize(const void *fdt) { return fdt_be32((const u8 *)fdt + 4); }

static int str_eq(const char *a, const char *b)
{
    while (*a && *a == *b) {
        a++;
        b++;
    }
    return *a == *b;
}

static u32 str_len(const char *s)
{
    u32 n = 0;
    while (s[n])
        n++;
    return n;
}

/* Does node `name` ("memory@40000000") match path component [c, c+n) ("memory")? */
static int name_matches(const char *name, const char *c, u32 n)
{
    u32 i;
    for (i = 0; i < n; i++)
        if (name[i] != c[i])
            return 0;
    return name[n] == '\0' || (name[n] == '@' && c[n] != '@');
}

const void *fdt_getprop(const void *fdt, const char *path, const char *prop, u32 *len)
{
    const u8 *base = fdt;
    const u8 *p;
    const char *strings;
    int depth = 0;     /* depth of the node we are in (root = 1) */
    int matched = 0;   /* how many leading path components the current nodes match */
    const char *comp[8];
    u32 comp_len[8];
    int ncomp = 0;

    if (!fdt_valid(fdt))
        return 0;
    /* Split the path into components. */
    while (*path) {
        while (*path == '/')
            path++;
        if (!*path)
            break;
        if (ncomp == 8)
            return 0;
        comp[ncomp] = path;
        comp_len[ncomp] = 0;
        while (path[comp_len[ncomp]] && path[comp_len[ncomp]] != '/')
            comp_len[ncomp]++;
        path += comp_len[ncomp];
        ncomp++;
    }
    p = base + fdt_be32(base + 8);
    strings = (const char *)base + fdt_be32(base + 12);
    for (;;) {
        u32 token = fdt_be32(p);
        p += 4;
        if (token == FDT_BEGIN_NODE) {
            const char *name = (const char *)p;
            depth++;
            /* The root is depth 1 and matches zero components. */
            if (depth > 1 && matched == depth - 2 && depth - 2 < ncomp &&
                name_matches(name, comp[depth - 2], comp_len[depth - 2]))
                matched = depth - 1;
            p += (str_len(name) + 4) & ~3u;
        } else if (token == FDT_END_NODE) {
            if (matched == depth - 1 && depth > 1)
                matched--;
            depth--;
        } else if (token == FDT_PROP) {
            u32 plen = fdt_be32(p);
            u32 nameoff = fdt_be32(p + 4);
            if (matched == ncomp && depth == ncomp + 1 && str_eq(strings + nameoff, prop)) {
                if (len)
                    *len = plen;
                return p + 8;
            }
            p += 8 + ((plen + 3) & ~3u);
        } else if (token == FDT_NOP) {
            continue;
        } else {
            return 0; /* FDT_END or corruption */
        }
    }
}

/* ---- PSCI over HVC (SMC Calling Convention) ------------------------------------ */
u64 psci_call(u64 fn, u64 a1, u64 a2, u64 a3)
{
    register u64 x0 __asm__("x0") = fn;
    register u64 x1 __asm__("x1") = a1;
    register u64 x2 __asm__("x2") = a2;
    register u64 x3 __asm__("x3") = a3;
    __asm__ volatile("hvc #0" : "+r"(x0) : "r"(x1), "r"(x2), "r"(x3) : "memory");
    return x0;
}

void psci_system_off(void)
{
    psci_call(PSCI_SYSTEM_OFF, 0, 0, 0);
    for (;;)
        __asm__ volatile("wfi");
}

/* ---- exceptions ----------------------------------------------------------------- */
__attribute__((weak)) void irq_handler(void)
{
    puts("unexpected IRQ\n");
}

void exception_handler(u64 kind, u64 esr, u64 elr)
{
    if (kind == EXC_IRQ) {
        irq_handler();
        return;
    }
    puts("guest exception: kind ");
    put_dec(kind);
    puts(" esr ");
    put_hex(esr);
    puts(" elr ");
    put_hex(elr);
    puts("\n");
    psci_system_off();
}

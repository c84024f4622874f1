/*
 * share: two guests (or a guest and a VMM component) talk through a shared region and a
 * doorbell. The guest finds its part in the device tree the VMM generates for it
 * (src/sel4vmm/backends/unicorn/devicetree.py), so the one binary plays every part and
 * `sel4vmm run SYSTEM --kernel share` needs no command line:
 *
 *   /chosen/sel4vmm,vm                 the VM's own name
 *   doorbell@ADDR (sel4vmm,microkit-doorbell): reg, interrupts (GIC SPI), the channel ids
 *       it may ring (sel4vmm,channels) and the VM at the other end (sel4vmm,channel-peers)
 *   NAME@ADDR (sel4vmm,shared-memory): reg and the parties sharing it (sel4vmm,shared-with)
 *   NAME@ADDR (sel4vmm,crossvm-event-page): a CAmkES cross-VM connection's event page;
 *       its dataport is the shared-memory node of the same linux,uio-name
 *
 * With a Microkit doorbell the guest takes the first channel; of the two VMs, the one
 * whose name sorts first plays "first", the other "second"; the window is the one shared
 * with the peer:
 *
 *   first   writes a pattern over the region, rings its channel, waits for the peer's
 *       interrupt, then checks the peer's answer (every word inverted) and powers off.
 *   second  waits for the interrupt, checks the pattern, writes the answer, rings back.
 *   rounds=R (kernel command line, both roles, default 1) adds R-1 ping-pongs of a counter
 *       in word 0 after the first exchange (first writes k, second answers ~k), for the
 *       round-trip benchmark.
 *   camkes  (an event page) vm_cross_connector's cross_vm_test: reads the string
 *       CrossvmInit wrote into the dataport, writes its own, emits (event page offset 0),
 *       waits for the consumed event (offset 4 counts it; writing 0 clears it), powers off.
 *
 * The command line may override what the tree says (role=, shm=, size=, bell=, ring=,
 * irq=), for tests of a guest that misbehaves (rings a channel it was not given).
 *
 * Every check prints "share: ... ok" or "share: FAIL ..." so the host test reads the result
 * off the console.
 */
#include "runtime.h"
#include "gic.h"

/* sel4vmm's Microkit doorbell (src/sel4vmm/devices/doorbell.py). */
#define BELL_RING 0x00
#define BELL_PENDING 0x08
#define BELL_ACK 0x10
/* cross_vm_connection.c's event page. */
#define EVENT_EMIT 0x0
#define EVENT_CONSUME 0x4
#define EVENT_NAME 0x8

static u64 shm, size, bell, ring, irq, rounds = 1;
static char role[16];
static volatile u32 interrupts;
static volatile u32 pending_seen;

static int starts_with(const char *s, const char *prefix)
{
    while (*prefix)
        if (*s++ != *prefix++)
            return 0;
    return 1;
}

static u64 parse_number(const char *s)
{
    u64 v = 0;
    int base = 10;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s += 2;
    }
    for (;; s++) {
        u64 digit;
        if (*s >= '0' && *s <= '9')
            digit = (u64)(*s - '0');
        else if (base == 16 && *s >= 'a' && *s <= 'f')
            digit = (u64)(*s - 'a' + 10);
        else if (base == 16 && *s >= 'A' && *s <= 'F')
            digit = (u64)(*s - 'A' + 10);
        else
            return v;
        v = v * (u64)base + digit;
    }
}

static void parse_bootargs(const char *args, u32 len)
{
    const char *end = args + len;
    const char *p = args;
    while (p < end && *p) {
        if (starts_with(p, "role=")) {
            u32 i = 0;
            p += 5;
            while (p < end && *p && *p != ' ' && i + 1 < sizeof(role))
                role[i++] = *p++;
            role[i] = 0;
        } else if (starts_with(p, "shm=")) {
            shm = parse_number(p + 4);
        } else if (starts_with(p, "size=")) {
            size = parse_number(p + 5);
        } else if (starts_with(p, "bell=")) {
            bell = parse_number(p + 5);
        } else if (starts_with(p, "ring=")) {
            ring = parse_number(p + 5);
        } else if (starts_with(p, "irq=")) {
            irq = parse_number(p + 4);
        } else if (starts_with(p, "rounds=")) {
            rounds = parse_number(p + 7);
        }
        while (p < end && *p && *p != ' ')
            p++;
        while (p < end && *p == ' ')
            p++;
    }
}

static int same(const char *a, const char *b)
{
    while (*a && *a == *b) {
        a++;
        b++;
    }
    return *a == *b;
}

static u32 pattern(u64 i) { return (u32)(0x5eed0000u ^ (i * 0x9e3779b1u)); }

void irq_handler(void)
{
    u32 iar = mmio_read32(GICC_BASE + GICC_IAR);
    u32 id = iar & 0x3ff;
    if (id == 1023)
        return;
    if (id == irq) {
        if (same(role, "camkes")) {
            pending_seen = mmio_read32(bell + EVENT_CONSUME);
            mmio_write32(bell + EVENT_CONSUME, 0); /* consumed: the line drops */
        } else {
            pending_seen = mmio_read32(bell + BELL_PENDING);
            mmio_write32(bell + BELL_ACK, pending_seen);
        }
        interrupts++;
    } else {
        puts("share: FAIL unexpected interrupt ");
        put_dec(id);
        puts("\n");
    }
    mmio_write32(GICC_BASE + GICC_EOIR, iar);
}

static void gic_enable(void)
{
    mmio_write32(GICD_BASE + GICD_ISENABLER + 4 * (irq / 32), 1u << (irq % 32));
    *(volatile u8 *)(GICD_BASE + GICD_IPRIORITYR + irq) = 0xa0;
    *(volatile u8 *)(GICD_BASE + GICD_ITARGETSR + irq) = 0x01;
    mmio_write32(GICD_BASE + GICD_CTLR, 1);
    mmio_write32(GICC_BASE + GICC_PMR, 0xff);
    mmio_write32(GICC_BASE + GICC_CTLR, 1);
    __asm__ volatile("msr daifclr, #2");
}

static void wait_for_interrupts(u32 count)
{
    while (interrupts < count)
        __asm__ volatile("wfi");
}

static void wait_for_interrupt(void) { wait_for_interrupts(1); }

static u64 check(u32 invert)
{
    volatile u32 *words = (volatile u32 *)shm;
    u64 bad = 0;
    for (u64 i = 0; i < size / 4; i++)
        if (words[i] != (invert ? ~pattern(i) : pattern(i)))
            bad++;
    return bad;
}

static int first(void)
{
    volatile u32 *words = (volatile u32 *)shm;
    for (u64 i = 0; i < size / 4; i++)
        words[i] = pattern(i);
    puts("share: pattern written, ringing channel ");
    put_dec(ring);
    puts("\n");
    mmio_write32(bell + BELL_RING, (u32)ring);
    wait_for_interrupt();
    puts("share: interrupt, pending ");
    put_hex(pending_seen);
    puts("\n");
    u64 bad = check(1);
    if (bad) {
        puts("share: FAIL answer: ");
        put_dec(bad);
        puts(" words wrong\n");
        return 1;
    }
    puts("share: answer ok\n");
    for (u64 k = 2; k <= rounds; k++) {
        words[0] = (u32)k;
        mmio_write32(bell + BELL_RING, (u32)ring);
        wait_for_interrupts((u32)k);
        if (words[0] != (u32)~k) {
            puts("share: FAIL round ");
            put_dec(k);
            puts("\n");
            return 1;
        }
    }
    if (rounds > 1) {
        puts("share: ");
        put_dec(rounds);
        puts(" rounds ok\n");
    }
    return 0;
}

static int second(void)
{
    volatile u32 *words = (volatile u32 *)shm;
    wait_for_interrupt();
    puts("share: interrupt, pending ");
    put_hex(pending_seen);
    puts("\n");
    u64 bad = check(0);
    if (bad) {
        puts("share: FAIL pattern: ");
        put_dec(bad);
        puts(" words wrong\n");
        return 1;
    }
    puts("share: pattern ok\n");
    for (u64 i = 0; i < size / 4; i++)
        words[i] = ~words[i];
    puts("share: answer written, ringing channel ");
    put_dec(ring);
    puts("\n");
    mmio_write32(bell + BELL_RING, (u32)ring);
    for (u64 k = 2; k <= rounds; k++) {
        wait_for_interrupts((u32)k);
        if (words[0] != (u32)k) {
            puts("share: FAIL round ");
            put_dec(k);
            puts("\n");
            return 1;
        }
        words[0] = (u32)~k;
        mmio_write32(bell + BELL_RING, (u32)ring);
    }
    return 0;
}

static int camkes(void)
{
    static const char expected[] = "This is a crossvm dataport test string\n";
    static const char mine[] = "This is a test user string\n";
    volatile char *data = (volatile char *)shm;
    char name[16];
    u32 i;
    for (i = 0; i + 1 < sizeof(name); i++)
        name[i] = *(volatile char *)(bell + EVENT_NAME + i);
    name[i] = 0;
    puts("share: connection ");
    puts(name);
    puts("\n");
    for (i = 0; i < sizeof(expected); i++) {
        if (data[i] != expected[i]) {
            puts("share: FAIL dataport does not hold CrossvmInit's string\n");
            return 1;
        }
    }
    puts("share: dataport string ok\n");
    for (i = 0; i < sizeof(mine); i++)
        data[i] = mine[i];
    mmio_write32(bell + EVENT_EMIT, 1);
    wait_for_interrupt();
    puts("share: event consumed, count ");
    put_dec(pending_seen);
    puts("\n");
    return pending_seen == 1 ? 0 : 1;
}

/* ---- what the VMM's device tree says ----------------------------------------------- */
#define FDT_BEGIN_NODE 1u
#define FDT_END_NODE 2u
#define FDT_PROP 3u
#define FDT_NOP 4u
#define MAX_NODES 32

static u32 name_length(const char *s)
{
    u32 n = 0;
    while (s[n])
        n++;
    return n;
}

/* The names of the root's children, pointers into the blob; how many there are. */
static u32 root_children(const void *fdt, const char **names)
{
    const u8 *base = fdt;
    const u8 *p = base + fdt_be32(base + 8);
    int depth = 0;
    u32 count = 0;
    for (;;) {
        u32 token = fdt_be32(p);
        p += 4;
        if (token == FDT_BEGIN_NODE) {
            const char *name = (const char *)p;
            depth++;
            if (depth == 2 && count < MAX_NODES)
                names[count++] = name;
            p += (name_length(name) + 4) & ~3u;
        } else if (token == FDT_END_NODE) {
            if (--depth == 0)
                return count;
        } else if (token == FDT_PROP) {
            p += 8 + ((fdt_be32(p) + 3) & ~3u);
        } else if (token != FDT_NOP) {
            return count;
        }
    }
}

/* Property `prop` of the root's child `name`. */
static const void *child_prop(const void *fdt, const char *name, const char *prop, u32 *len)
{
    char path[72];
    u32 i = 0;
    path[i++] = '/';
    while (*name && i + 1 < sizeof(path))
        path[i++] = *name++;
    path[i] = 0;
    return fdt_getprop(fdt, path, prop, len);
}

static int same(const char *a, const char *b);

/* Does the string list [list, list+len) hold `value`? */
static int list_has(const char *list, u32 len, const char *value)
{
    u32 at = 0;
    while (at < len) {
        if (same(list + at, value))
            return 1;
        at += name_length(list + at) + 1;
    }
    return 0;
}

static int compatible(const void *fdt, const char *name, const char *what)
{
    u32 len = 0;
    const char *list = child_prop(fdt, name, "compatible", &len);
    return list && list_has(list, len, what);
}

static int less(const char *a, const char *b)
{
    while (*a && *a == *b) {
        a++;
        b++;
    }
    return (u8)*a < (u8)*b;
}

static void copy_role(const char *r)
{
    u32 i = 0;
    while (r[i] && i + 1 < sizeof(role)) {
        role[i] = r[i];
        i++;
    }
    role[i] = 0;
}

/* Fill shm/size/bell/ring/irq/role from the tree; 0 if it has no doorbell. */
static int from_device_tree(const void *fdt)
{
    const char *names[MAX_NODES];
    u32 count = root_children(fdt, names);
    u32 len = 0;
    const char *own = fdt_getprop(fdt, "/chosen", "sel4vmm,vm", &len);
    const char *peer = 0;
    const char *event = 0;
    for (u32 i = 0; i < count; i++) {
        int microkit = compatible(fdt, names[i], "sel4vmm,microkit-doorbell");
        if (!microkit && !compatible(fdt, names[i], "sel4vmm,crossvm-event-page"))
            continue;
        const u8 *reg = child_prop(fdt, names[i], "reg", &len);
        const u8 *cells = child_prop(fdt, names[i], "interrupts", &len);
        if (!reg || !cells || len < 12)
            return 0;
        bell = fdt_be64(reg);
        irq = fdt_be32(cells + 4) + 32; /* GIC_SPI n is INTID 32 + n */
        if (microkit) {
            const u8 *ids = child_prop(fdt, names[i], "sel4vmm,channels", &len);
            peer = child_prop(fdt, names[i], "sel4vmm,channel-peers", &len);
            if (ids)
                ring = fdt_be32(ids);
            if (own && peer)
                copy_role(less(own, peer) ? "first" : "second");
        } else {
            event = child_prop(fdt, names[i], "linux,uio-name", &len);
            copy_role("camkes");
        }
        break;
    }
    for (u32 i = 0; i < count && (peer || event); i++) {
        if (!compatible(fdt, names[i], "sel4vmm,shared-memory"))
            continue;
        const char *list = child_prop(fdt, names[i], "sel4vmm,shared-with", &len);
        int mine = peer ? list && list_has(list, len, peer) : 0;
        if (event) {
            const char *uio = child_prop(fdt, names[i], "linux,uio-name", &len);
            mine = uio && same(uio, event);
        }
        const u8 *reg = child_prop(fdt, names[i], "reg", &len);
        if (mine && reg && len >= 16) {
            shm = fdt_be64(reg);
            size = fdt_be64(reg + 8);
            break;
        }
    }
    return bell != 0;
}

int guest_main(const void *dtb)
{
    u32 len = 0;
    const char *args = fdt_getprop(dtb, "/chosen", "bootargs", &len);
    from_device_tree(dtb);
    if (args)
        parse_bootargs(args, len);
    if (!shm || !bell || !irq) {
        puts("share: FAIL the device tree gives no shared region and doorbell\n");
        return 1;
    }
    gic_enable();
    if (same(role, "first"))
        return first();
    if (same(role, "second"))
        return second();
    if (same(role, "camkes"))
        return camkes();
    puts("share: FAIL unknown role\n");
    return 1;
}

/*
 * memtest: writes and verifies every byte of RAM the DTB gives the guest, from the end of
 * its own image to the end of /memory. A pattern that depends on the address catches
 * aliasing (two guest pages backed by one frame) as well as missing memory; it also
 * depends on a seed, the FNV-1a hash of the DTB's /chosen bootargs, so two VMs with
 * different command lines write different bytes at the same guest address and the host
 * can tell whose pattern a frame holds (sel4vmm's multi-VM isolation test).
 */
#include "runtime.h"

extern char __image_end[];

static u64 seed;

static u64 pattern(u64 addr) { return addr ^ 0x5a5aa5a5c3c33c3cUL ^ (addr << 17) ^ seed; }

/* FNV-1a, 64-bit (offset basis 0xcbf29ce484222325, prime 0x100000001b3), over the
 * property's bytes up to its terminating NUL. */
static u64 fnv1a(const u8 *bytes, u32 len)
{
    u64 hash = 0xcbf29ce484222325UL;
    for (u32 i = 0; i < len && bytes[i]; i++) {
        hash ^= bytes[i];
        hash *= 0x100000001b3UL;
    }
    return hash;
}

int guest_main(const void *dtb)
{
    u32 len = 0;
    const u8 *reg = fdt_getprop(dtb, "/memory", "reg", &len);
    u64 base, size, start, end, p;

    if (!reg || len < 16) {
        puts("memtest: no /memory in the DTB\n");
        return 1;
    }
    {
        u32 args_len = 0;
        const u8 *args = fdt_getprop(dtb, "/chosen", "bootargs", &args_len);
        seed = args ? fnv1a(args, args_len) : 0;
    }
    puts("memtest: seed ");
    put_hex(seed);
    puts("\n");
    base = fdt_be64(reg);
    size = fdt_be64(reg + 8);
    start = ((u64)__image_end + 0xfff) & ~0xfffUL;
    end = base + size;
    puts("memtest: testing ");
    put_hex(start);
    puts("..");
    put_hex(end);
    puts("\n");
    for (p = start; p < end; p += 8)
        *(volatile u64 *)p = pattern(p);
    for (p = start; p < end; p += 8) {
        if (*(volatile u64 *)p != pattern(p)) {
            puts("memtest: FAIL at ");
            put_hex(p);
            puts("\n");
            return 1;
        }
    }
    puts("memtest: OK ");
    put_dec(end - start);
    puts(" bytes\n");
    return 0;
}

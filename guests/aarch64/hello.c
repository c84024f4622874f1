/*
 * hello: proves the boot contract. Reads the DTB whose address the VMM put in x0 and
 * prints what a kernel would look at first: the /memory node and /chosen.
 */
#include "runtime.h"

static void print_string_prop(const void *dtb, const char *path, const char *prop)
{
    u32 len = 0;
    const char *value = fdt_getprop(dtb, path, prop, &len);
    puts(path);
    puts(" ");
    puts(prop);
    puts(": ");
    puts(value ? value : "(absent)");
    puts("\n");
}

int guest_main(const void *dtb)
{
    u32 len = 0;
    const u8 *reg;

    puts("hello from the sel4vmm aarch64 guest\n");
    puts("dtb at ");
    put_hex((u64)dtb);
    if (!fdt_valid(dtb)) {
        puts(": no device tree\n");
        return 1;
    }
    puts(", ");
    put_dec(fdt_totalsize(dtb));
    puts(" bytes\n");
    reg = fdt_getprop(dtb, "/memory", "reg", &len);
    if (reg && len >= 16) {
        puts("memory: base ");
        put_hex(fdt_be64(reg));
        puts(" size ");
        put_hex(fdt_be64(reg + 8));
        puts("\n");
    } else {
        puts("memory: no /memory reg\n");
    }
    print_string_prop(dtb, "/chosen", "bootargs");
    print_string_prop(dtb, "/chosen", "stdout-path");
    puts("psci version ");
    put_hex(psci_call(PSCI_VERSION, 0, 0, 0));
    puts("\n");
    return 0;
}

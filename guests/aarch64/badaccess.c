/*
 * badaccess: touches a guest-physical address no reservation covers. The VMM must stop
 * the VM with a clean diagnostic (PC, address, access, registers) and never crash.
 */
#include "runtime.h"

#define NOT_GIVEN 0x20000000UL

int guest_main(const void *dtb)
{
    u32 value;
    (void)dtb;

    puts("badaccess: reading ");
    put_hex(NOT_GIVEN);
    puts("\n");
    value = mmio_read32(NOT_GIVEN);
    puts("badaccess: the read returned ");
    put_hex(value);
    puts(" - the VMM should have stopped this VM\n");
    return 1;
}

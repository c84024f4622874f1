/*
 * configurations/vm.h for x86 VMs, as sel4vmm provides it: the macros camkes-vm's
 * components/VM/configurations/vm.h gives x86 configurations (camkes-vm-examples'
 * apps/x86/...), each expanding to the same kind of CAmkES statements: the Init
 * component body, one Init<N> instance vm<N> per VM, and the settings the real
 * macros make.  sel4vmm reads only the VM instances and their attributes; the servers
 * and connections are declared so the composition reads like the real one.
 */

#pragma once

#define _VAR_STRINGIZE(...) #__VA_ARGS__
#define VAR_STRINGIZE(...) _VAR_STRINGIZE(__VA_ARGS__)

/* The body of the Init (x86 VMM) component: the attributes it reads. */
#define VM_INIT_DEF() \
    control; \
    uses PutChar putchar; \
    uses PutChar guest_putchar; \
    uses FileServerInterface fs; \
    uses GetChar serial_getchar; \
    attribute string kernel_cmdline; \
    attribute string kernel_image; \
    attribute string kernel_relocs; \
    attribute string initrd_image; \
    attribute int iospace_domain; \
    attribute int guest_ram_mb; \
    attribute int cnode_size_bits = 21; \
    attribute string vswitch_mac_address = ""; \
    attribute int guest_cid = 0;

/* The servers every x86 VM system has. */
#define VM_COMPOSITION_DEF() \
    component FileServer fserv; \
    component SerialServer serial; \
    component PCIConfigIO pci_config; \
    component TimeServer time_server; \
    component RTC rtc;

/* One VM: an instance of Init<num> called vm<num>, connected to the servers. */
#define VM_PER_VM_COMP_DEF(num) \
    component Init##num vm##num; \
    connection seL4RPCDataport fs##num(from vm##num.fs, to fserv.fs_ctrl); \
    connection seL4RPCCall serial_vm##num(from vm##num.putchar, to serial.processed_putchar); \
    connection seL4RPCCall serial_guest_vm##num(from vm##num.guest_putchar, to serial.raw_putchar); \
    connection seL4SerialServer serial_input##num(from vm##num.serial_getchar, to serial.getchar);

#define VM_CONFIGURATION_DEF() \
    fserv.heap_size = 0x30000; \
    time_server.timers_per_client = 12; \
    time_server.priority = 255; \
    time_server.simple = true; \
    serial.serial_irq_priority = 200;

#define VM_PER_VM_CONFIG_DEF(num) \
    vm##num.fs_shmem_size = 0x1000; \
    vm##num.serial_getchar_attributes = VAR_STRINGIZE(num); \
    vm##num.serial_getchar_shmem_size = 0x1000; \
    vm##num.simple = true; \
    vm##num.asid_pool = true; \
    vm##num.global_endpoint_base = 1 << 27;

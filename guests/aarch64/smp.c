/*
 * smp: brings up the secondary vCPUs with PSCI CPU_ON and exercises what they share and
 * what they do not. Each secondary enters at secondary_entry with x0 = its context id
 * (its index), finds its own stack, reads its MPIDR and its banked GIC registers and
 * prints "cpu N up" under a spinlock built from exclusives (LDAXR/STXR). CPU 0 then sends
 * SGI 3 to CPU 1 only (GICD_SGIR target list), CPU 1 takes and acknowledges it, every
 * secondary reports and turns itself off (CPU_OFF), and CPU 0 checks AFFINITY_INFO before
 * powering the system off.
 */
#include "runtime.h"
#include "gic.h"


#define PSCI_CPU_OFF 0x84000002UL
#define PSCI_CPU_ON 0xc4000003UL
#define PSCI_AFFINITY_INFO 0xc4000004UL
#define PSCI_INVALID_PARAMETERS (-2L)
#define PSCI_ALREADY_ON (-4L)

#define MAX_CPUS 8
#define STACK_SIZE 4096
#define SGI 3

u8 smp_stacks[MAX_CPUS + 1][STACK_SIZE] __attribute__((aligned(16)));
u64 boot_vbar;

static volatile u32 print_lock;
static volatile u32 cpus_up;
static volatile u32 ready_for_sgi;
static volatile u32 go;
static volatile u32 reported;
static volatile u32 sgi_cpu = 0xff;
static volatile u32 sgi_iar;

void secondary_entry(void);
__asm__(".text\n"
        ".globl secondary_entry\n"
        "secondary_entry:\n"
        "    ldr     x1, =smp_stacks\n"
        "    add     x2, x0, #2\n"
        "    lsl     x2, x2, #12\n"
        "    add     x1, x1, x2\n"
        "    mov     sp, x1\n"
        "    ldr     x1, =boot_vbar\n"
        "    ldr     x1, [x1]\n"
        "    msr     vbar_el1, x1\n"
        "    isb\n"
        "    bl      secondary_main\n"
        "1:  wfi\n"
        "    b       1b\n");

static void lock(void)
{
    u32 held, failed;
    __asm__ volatile("1: ldaxr   %w0, [%2]\n"
                     "   cbnz    %w0, 1b\n"
                     "   stxr    %w1, %w3, [%2]\n"
                     "   cbnz    %w1, 1b\n"
                     : "=&r"(held), "=&r"(failed)
                     : "r"(&print_lock), "r"(1u)
                     : "memory");
}

static void unlock(void)
{
    __asm__ volatile("stlr wzr, [%0]" ::"r"(&print_lock) : "memory");
}

static void atomic_inc(volatile u32 *counter)
{
    u32 value, failed;
    __asm__ volatile("1: ldaxr   %w0, [%2]\n"
                     "   add     %w0, %w0, #1\n"
                     "   stlxr   %w1, %w0, [%2]\n"
                     "   cbnz    %w1, 1b\n"
                     : "=&r"(value), "=&r"(failed)
                     : "r"(counter)
                     : "memory");
}

static u64 mpidr(void)
{
    u64 value;
    __asm__ volatile("mrs %0, mpidr_el1" : "=r"(value));
    return value;
}

static void gic_cpu_init(void)
{
    mmio_write32(GICC_BASE + GICC_PMR, 0xff);
    mmio_write32(GICC_BASE + GICC_CTLR, 1);
}

void irq_handler(void)
{
    u32 iar = mmio_read32(GICC_BASE + GICC_IAR);
    u32 id = iar & 0x3ff;

    if (id == 1023)
        return;
    if (id == SGI) {
        sgi_iar = iar;
        sgi_cpu = (u32)(mpidr() & 0xff);
    }
    mmio_write32(GICC_BASE + GICC_EOIR, iar);
}

void secondary_main(u64 context)
{
    u32 cpu = (u32)(mpidr() & 0xff);
    u32 targets = mmio_read32(GICD_BASE + GICD_ITARGETSR);

    /* Banked: this SGI's priority is this CPU's own; CPU 0's stays as it set it. */
    *(volatile u8 *)(GICD_BASE + GICD_IPRIORITYR + SGI) = (u8)(0x10 * cpu);
    gic_cpu_init();
    lock();
    puts("cpu ");
    put_dec(cpu);
    puts(" up: context ");
    put_dec(context);
    puts(", mpidr ");
    put_hex(mpidr());
    puts(", itargetsr0 ");
    put_hex(targets);
    puts(", sgi priority ");
    put_hex(*(volatile u8 *)(GICD_BASE + GICD_IPRIORITYR + SGI));
    puts("\n");
    unlock();
    atomic_inc(&cpus_up);
    if (cpu == 1) {
        __asm__ volatile("msr daifclr, #2");
        ready_for_sgi = 1;
        while (sgi_cpu == 0xff)
            __asm__ volatile("wfi");
        __asm__ volatile("msr daifset, #2");
    }
    while (!go)
        ;
    lock();
    puts("cpu ");
    put_dec(cpu);
    puts(" done\n");
    unlock();
    atomic_inc(&reported);
    psci_call(PSCI_CPU_OFF, 0, 0, 0);
    lock();
    puts("cpu ");
    put_dec(cpu);
    puts(": CPU_OFF returned\n");
    unlock();
}

static u32 count_cpus(void)
{
    u32 n = 0;
    while (n < MAX_CPUS && (long)psci_call(PSCI_AFFINITY_INFO, n, 0, 0) >= 0)
        n++;
    return n;
}

int guest_main(const void *dtb)
{
    u32 ncpus, gic_cpus, i;
    long r;
    (void)dtb;

    __asm__ volatile("mrs %0, vbar_el1" : "=r"(boot_vbar));
    ncpus = count_cpus();
    gic_cpus = ((mmio_read32(GICD_BASE + GICD_TYPER) >> 5) & 7) + 1;
    puts("smp: ");
    put_dec(ncpus);
    puts(" cpus (gic: ");
    put_dec(gic_cpus);
    puts("), cpu 0 mpidr ");
    put_hex(mpidr());
    puts("\n");
    mmio_write32(GICD_BASE + GICD_CTLR, 1);
    *(volatile u8 *)(GICD_BASE + GICD_IPRIORITYR + SGI) = 0xa0;
    gic_cpu_init();

    r = (long)psci_call(PSCI_CPU_ON, 0, (u64)secondary_entry, 0);
    puts(r == PSCI_ALREADY_ON ? "cpu_on 0: already on\n" : "cpu_on 0: WRONG\n");
    r = (long)psci_call(PSCI_CPU_ON, MAX_CPUS, (u64)secondary_entry, 0);
    puts(r == PSCI_INVALID_PARAMETERS ? "cpu_on 8: invalid parameters\n" : "cpu_on 8: WRONG\n");

    for (i = 1; i < ncpus; i++) {
        r = (long)psci_call(PSCI_CPU_ON, i, (u64)secondary_entry, i);
        if (r != 0) {
            puts("cpu_on failed\n");
            return 1;
        }
        while (cpus_up < i)
            ;
    }
    if (ncpus > 1) {
        r = (long)psci_call(PSCI_CPU_ON, 1, (u64)secondary_entry, 1);
        puts(r == PSCI_ALREADY_ON ? "cpu_on 1: already on\n" : "cpu_on 1: WRONG\n");
        while (!ready_for_sgi)
            ;
        mmio_write32(GICD_BASE + GICD_SGIR, (1u << (16 + 1)) | SGI); /* list: CPU 1 only */
        while (sgi_cpu == 0xff)
            ;
        lock();
        puts("sgi ");
        put_dec(sgi_iar & 0x3ff);
        puts(" from cpu ");
        put_dec((sgi_iar >> 10) & 7);
        puts(" taken by cpu ");
        put_dec(sgi_cpu);
        puts("\n");
        unlock();
    }
    go = 1;
    while (reported < ncpus - 1)
        ;
    for (i = 1; i < ncpus; i++)
        while (psci_call(PSCI_AFFINITY_INFO, i, 0, 0) != 1)
            ;
    lock();
    puts("cpu 0 sgi priority ");
    put_hex(*(volatile u8 *)(GICD_BASE + GICD_IPRIORITYR + SGI));
    puts("\nsmp: all ");
    put_dec(ncpus);
    puts(" cpus reported, secondaries off\n");
    unlock();
    return 0;
}

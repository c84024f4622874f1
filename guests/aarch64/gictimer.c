/*
 * gictimer: drives the interrupt path end to end. Enables the (VMM-emulated) GIC
 * distributor and the (passed-through) virtual CPU interface, arms the generic virtual
 * timer (PPI 27) five times and takes the PL011's receive interrupt (SPI 1 = INTID 33),
 * acknowledging each through IAR and completing it through EOIR.
 */
#include "runtime.h"
#include "gic.h"

#define UART_IMSC 0x038
#define UART_ICR 0x044
#define UART_DR 0x000
#define UART_FR 0x018
#define UART_FR_RXFE (1u << 4)
#define UART_RXIM (1u << 4)

#define TIMER_PPI 27
#define UART_SPI 33
#define TICKS 5

static volatile u32 ticks;
static volatile u32 uart_irqs;
static u64 tick_interval;

static void timer_arm(void)
{
    __asm__ volatile("msr cntv_tval_el0, %0" ::"r"(tick_interval));
    __asm__ volatile("msr cntv_ctl_el0, %0" ::"r"(1UL));
    __asm__ volatile("isb");
}

void irq_handler(void)
{
    u32 iar = mmio_read32(GICC_BASE + GICC_IAR);
    u32 id = iar & 0x3ff;

    if (id == TIMER_PPI) {
        ticks++;
        puts("tick ");
        put_dec(ticks);
        puts("\n");
        if (ticks < TICKS)
            timer_arm();
        else
            __asm__ volatile("msr cntv_ctl_el0, %0" ::"r"(0UL));
    } else if (id == UART_SPI) {
        uart_irqs++;
        while (!(mmio_read32(UART_BASE + UART_FR) & UART_FR_RXFE)) {
            puts("uart rx '");
            putc((char)(mmio_read32(UART_BASE + UART_DR) & 0xff));
            puts("'\n");
        }
        mmio_write32(UART_BASE + UART_ICR, UART_RXIM);
    } else if (id == 1023) {
        puts("spurious interrupt\n");
        return;
    } else {
        puts("unexpected interrupt ");
        put_dec(id);
        puts("\n");
    }
    mmio_write32(GICC_BASE + GICC_EOIR, iar);
}

int guest_main(const void *dtb)
{
    u64 freq;
    u32 lines;
    (void)dtb;

    lines = 32 * ((mmio_read32(GICD_BASE + GICD_TYPER) & 0x1f) + 1);
    puts("gic: ");
    put_dec(lines);
    puts(" interrupt lines\n");
    mmio_write32(GICD_BASE + GICD_ISENABLER + 0, 1u << TIMER_PPI);
    mmio_write32(GICD_BASE + GICD_ISENABLER + 4, 1u << (UART_SPI - 32));
    *(volatile u8 *)(GICD_BASE + GICD_IPRIORITYR + UART_SPI) = 0xa0;
    *(volatile u8 *)(GICD_BASE + GICD_ITARGETSR + UART_SPI) = 0x01;
    mmio_write32(GICD_BASE + GICD_CTLR, 1);
    mmio_write32(GICC_BASE + GICC_PMR, 0xff);
    mmio_write32(GICC_BASE + GICC_CTLR, 1);
    mmio_write32(UART_BASE + UART_IMSC, UART_RXIM);

    __asm__ volatile("mrs %0, cntfrq_el0" : "=r"(freq));
    tick_interval = freq / 100; /* 10 ms of guest time */
    timer_arm();
    __asm__ volatile("msr daifclr, #2");
    while (ticks < TICKS)
        __asm__ volatile("wfi");
    __asm__ volatile("msr daifset, #2");
    puts("gictimer: ");
    put_dec(ticks);
    puts(" timer ticks, ");
    put_dec(uart_irqs);
    puts(" uart interrupts\n");
    return 0;
}

/*
 * dma: programs a VMM-emulated DMA engine with guest-physical addresses, as a driver for
 * real hardware would. The engine copies *physical* memory without any translation (there
 * is no SMMU), so the copy is only right when guest RAM is mapped 1:1 (IPA == PA) - the
 * reason CAmkES VMs use map_one_to_one for DMA-capable passthrough devices.
 */
#include "runtime.h"

#define DMA_BASE 0x0b000000UL
#define DMA_SRC_LO 0x00
#define DMA_SRC_HI 0x04
#define DMA_DST_LO 0x08
#define DMA_DST_HI 0x0c
#define DMA_LEN 0x10
#define DMA_CTRL 0x14
#define DMA_STATUS 0x18
#define DMA_START 1u
#define DMA_DONE 1u
#define DMA_ERROR 2u
#define BUF_SIZE 4096

static u8 src[BUF_SIZE] __attribute__((aligned(4096)));
static u8 dst[BUF_SIZE] __attribute__((aligned(4096)));

int guest_main(const void *dtb)
{
    u32 i, status;
    (void)dtb;

    for (i = 0; i < BUF_SIZE; i++) {
        src[i] = (u8)(i * 7 + 3);
        dst[i] = 0;
    }
    mmio_write32(DMA_BASE + DMA_SRC_LO, (u32)(u64)src);
    mmio_write32(DMA_BASE + DMA_SRC_HI, (u32)((u64)src >> 32));
    mmio_write32(DMA_BASE + DMA_DST_LO, (u32)(u64)dst);
    mmio_write32(DMA_BASE + DMA_DST_HI, (u32)((u64)dst >> 32));
    mmio_write32(DMA_BASE + DMA_LEN, BUF_SIZE);
    mmio_write32(DMA_BASE + DMA_CTRL, DMA_START);
    status = mmio_read32(DMA_BASE + DMA_STATUS);
    if (status & DMA_ERROR) {
        puts("dma: ERROR (the device could not reach the physical addresses)\n");
        return 1;
    }
    for (i = 0; i < BUF_SIZE; i++) {
        if (dst[i] != src[i]) {
            puts("dma: MISMATCH at byte ");
            put_dec(i);
            puts(" (guest-physical != physical)\n");
            return 1;
        }
    }
    puts("dma: OK ");
    put_dec(BUF_SIZE);
    puts(" bytes copied\n");
    return 0;
}

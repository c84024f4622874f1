/*
 * The "virtio" test guest: a virtio-mmio driver in a few hundred instructions.
 *
 * For each device the test names (a virtio-console and/or a virtio-blk window and its
 * GSI), it probes the registers (magic 0x74726976, version 2, device ID), negotiates
 * VIRTIO_F_VERSION_1 and nothing else, sets up split virtqueues of QUEUE_SIZE entries in
 * its own RAM and drives real requests through them:
 *   console: the test's message through the transmit queue (queue 1);
 *   block:   IN of sector 0 into read_data, then OUT of write_data to sector 1,
 *            then `repeat` more IN requests of sector 0 (the benchmark's round trips).
 * After each notify it waits for the used-buffer interrupt the real way: the IOAPIC pin
 * of the device's GSI is programmed level-triggered to a vector, the local APIC is
 * enabled, and the guest sleeps in `sti; hlt` until the handler has read InterruptStatus,
 * acknowledged it (the device lowers its line) and sent the EOI.  Then it checks the used
 * ring (id, length) and the request's status byte.
 *
 * With hostile_addr set, the block read's data descriptor points there instead (a test
 * puts it past the guest's RAM): the device must refuse the chain, set DEVICE_NEEDS_RESET
 * and send a configuration-change interrupt; the guest records what it saw and stops.
 *
 * guest_main returns 0 when everything checked out, or the number of the step that did
 * not (STEP_*), which start.S writes to the exit port.
 */
#include "guest.h"

#define QUEUE_SIZE 8

/* virtio-mmio registers (virtio 1.2, 4.2.2). */
#define VIRTIO_MAGIC 0x000
#define VIRTIO_VERSION 0x004
#define VIRTIO_DEVICE_ID 0x008
#define VIRTIO_DEVICE_FEATURES 0x010
#define VIRTIO_DEVICE_FEATURES_SEL 0x014
#define VIRTIO_DRIVER_FEATURES 0x020
#define VIRTIO_DRIVER_FEATURES_SEL 0x024
#define VIRTIO_QUEUE_SEL 0x030
#define VIRTIO_QUEUE_NUM_MAX 0x034
#define VIRTIO_QUEUE_NUM 0x038
#define VIRTIO_QUEUE_READY 0x044
#define VIRTIO_QUEUE_NOTIFY 0x050
#define VIRTIO_INTERRUPT_STATUS 0x060
#define VIRTIO_INTERRUPT_ACK 0x064
#define VIRTIO_STATUS 0x070
#define VIRTIO_QUEUE_DESC_LOW 0x080
#define VIRTIO_QUEUE_DESC_HIGH 0x084
#define VIRTIO_QUEUE_DRIVER_LOW 0x090
#define VIRTIO_QUEUE_DRIVER_HIGH 0x094
#define VIRTIO_QUEUE_DEVICE_LOW 0x0a0
#define VIRTIO_QUEUE_DEVICE_HIGH 0x0a4

#define MAGIC_VIRT 0x74726976
#define STATUS_ACKNOWLEDGE 1
#define STATUS_DRIVER 2
#define STATUS_DRIVER_OK 4
#define STATUS_FEATURES_OK 8
#define STATUS_DEVICE_NEEDS_RESET 64

#define DESC_F_NEXT 1
#define DESC_F_WRITE 2

#define CONSOLE_ID 3
#define BLOCK_ID 2
#define CONSOLE_TRANSMITQ 1
#define BLK_T_IN 0
#define BLK_T_OUT 1

/* The PC's interrupt hardware, served by KVM's in-kernel irqchip. */
#define IOAPIC_BASE 0xfec00000ul
#define LAPIC_BASE 0xfee00000ul
#define LAPIC_EOI 0x0b0
#define LAPIC_SVR 0x0f0
#define LAPIC_LVT0 0x350
#define LVT_MASKED (1u << 16)
#define PIC_MASTER_DATA 0x21
#define PIC_SLAVE_DATA 0xa1
#define VECTOR_BASE 0x30 /* device d interrupts on VECTOR_BASE + d */
#define BOOT_CS 0x10

enum step {
	STEP_OK = 0,
	STEP_MAGIC = 1,
	STEP_VERSION = 2,
	STEP_DEVICE_ID = 3,
	STEP_FEATURES = 4,
	STEP_FEATURES_OK = 5,
	STEP_QUEUE_SIZE = 6,
	STEP_USED = 7,
	STEP_REQUEST_STATUS = 8,
	STEP_DEVICE_ERROR = 9, /* hostile request: the device reported it, as it must */
	STEP_NO_DEVICE_ERROR = 10,
	STEP_EXCEPTION = 0xee,
};

enum device { CONSOLE = 0, BLOCK = 1, DEVICES = 2 };

struct virtio_args {
	/* in */
	u64 base[DEVICES];       /* 0: no such device */
	u32 gsi[DEVICES];
	u64 hostile_addr;        /* nonzero: the block read's data buffer is here */
	u32 repeat;              /* extra sector-0 reads after the first two requests */
	u32 message_len;
	u8 message[64];
	u8 write_data[512];
	/* out */
	u32 magic[DEVICES], version[DEVICES], device_id[DEVICES];
	u32 interrupts[DEVICES];       /* interrupts taken */
	u32 interrupt_status[DEVICES]; /* every InterruptStatus bit the handler saw */
	u32 status_after[DEVICES];     /* device Status when the guest finished with it */
	u32 used_len[4];               /* console tx, block in, block out, last repeat */
	u8 request_status[2];          /* block in, block out */
	u8 pad[6];
	u8 read_data[512];
};

struct desc {
	u64 addr;
	u32 len;
	u16 flags;
	u16 next;
};

struct queue {
	struct desc desc[QUEUE_SIZE] __attribute__((aligned(16)));
	struct {
		u16 flags, idx, ring[QUEUE_SIZE], used_event;
	} avail __attribute__((aligned(2)));
	struct {
		u16 flags, idx;
		struct {
			u32 id, len;
		} ring[QUEUE_SIZE];
		u16 avail_event;
	} used __attribute__((aligned(4)));
	u16 next_avail;
};

struct blk_header {
	u32 type, reserved;
	u64 sector;
};

struct idt_gate {
	u16 offset_low, selector;
	u8 ist, type;
	u16 offset_mid;
	u32 offset_high, zero;
};

static struct queue queues[DEVICES] __attribute__((aligned(4096)));
static struct idt_gate idt[256] __attribute__((aligned(16)));
static struct blk_header header;
static u8 status_byte;
static struct virtio_args *args;
static volatile u32 taken[DEVICES];

static u32 mmio_read(u64 addr) { return *(volatile u32 *)addr; }
static void mmio_write(u64 addr, u32 value) { *(volatile u32 *)addr = value; }
static void barrier(void) { __asm__ volatile("" ::: "memory"); }

/* Interrupt entry: save the caller-saved registers, call irq_handler(device), iretq. */
void irq_handler(u32 device);
void irq_console(void);
void irq_block(void);
void irq_unexpected(void);
__asm__(".text\n"
	"irq_console: push %rdi; mov $0, %edi; jmp irq_common\n"
	"irq_block: push %rdi; mov $1, %edi; jmp irq_common\n"
	"irq_common: push %rax; push %rcx; push %rdx; push %rsi\n"
	"  push %r8; push %r9; push %r10; push %r11\n"
	"  call irq_handler\n"
	"  pop %r11; pop %r10; pop %r9; pop %r8\n"
	"  pop %rsi; pop %rdx; pop %rcx; pop %rax; pop %rdi\n"
	"  iretq\n"
	/* Any other vector is a fault of this guest: end the run with STEP_EXCEPTION. */
	"irq_unexpected: mov $0xee, %eax; mov $0xf4, %dx; outl %eax, %dx\n"
	"1: jmp 1b\n");

void irq_handler(u32 device)
{
	u64 base = args->base[device];
	u32 status = mmio_read(base + VIRTIO_INTERRUPT_STATUS);
	args->interrupt_status[device] |= status;
	mmio_write(base + VIRTIO_INTERRUPT_ACK, status); /* the device lowers its line */
	taken[device]++;
	args->interrupts[device] = taken[device];
	mmio_write(LAPIC_BASE + LAPIC_EOI, 0);
}

static void set_gate(int vector, void (*handler)(void))
{
	u64 offset = (u64)handler;
	idt[vector] = (struct idt_gate){(u16)offset, BOOT_CS, 0, 0x8e, (u16)(offset >> 16),
					(u32)(offset >> 32), 0};
}

static void ioapic_write(u32 reg, u32 value)
{
	mmio_write(IOAPIC_BASE, reg);
	mmio_write(IOAPIC_BASE + 0x10, value);
}

static void setup_interrupts(void)
{
	for (int v = 0; v < 256; v++)
		set_gate(v, irq_unexpected);
	set_gate(VECTOR_BASE + CONSOLE, irq_console);
	set_gate(VECTOR_BASE + BLOCK, irq_block);
	struct {
		u16 limit;
		u64 base;
	} __attribute__((packed)) idtr = {sizeof(idt) - 1, (u64)idt};
	__asm__ volatile("lidt %0" ::"m"(idtr));
	mmio_write(LAPIC_BASE + LAPIC_SVR, 0x1ff); /* software-enable, spurious vector 0xff */
	/*
	 * GSIs below 16 also reach the 8259 PICs, and KVM resets the BSP's LINT0 to ExtINT
	 * (virtual-wire mode, as a BIOS leaves it): mask both, as an OS using the IOAPIC does,
	 * or each interrupt would arrive twice, once on an unprogrammed PIC vector.
	 */
	outb(PIC_MASTER_DATA, 0xff);
	outb(PIC_SLAVE_DATA, 0xff);
	mmio_write(LAPIC_BASE + LAPIC_LVT0, LVT_MASKED);
	for (int d = 0; d < DEVICES; d++) {
		if (!args->base[d])
			continue;
		/* Redirection entry: fixed delivery to APIC 0, level-triggered, unmasked. */
		ioapic_write(0x11 + 2 * args->gsi[d], 0);
		ioapic_write(0x10 + 2 * args->gsi[d], (VECTOR_BASE + d) | (1u << 15));
	}
}

/* Sleep until device d has taken an interrupt since `before`. */
static void wait_interrupt(int d, u32 before)
{
	while (taken[d] == before)
		__asm__ volatile("sti; hlt; cli" ::: "memory");
}

static u32 probe(int d, u32 device_id)
{
	u64 base = args->base[d];
	args->magic[d] = mmio_read(base + VIRTIO_MAGIC);
	args->version[d] = mmio_read(base + VIRTIO_VERSION);
	args->device_id[d] = mmio_read(base + VIRTIO_DEVICE_ID);
	if (args->magic[d] != MAGIC_VIRT)
		return STEP_MAGIC;
	if (args->version[d] != 2)
		return STEP_VERSION;
	if (args->device_id[d] != device_id)
		return STEP_DEVICE_ID;
	mmio_write(base + VIRTIO_STATUS, 0);
	mmio_write(base + VIRTIO_STATUS, STATUS_ACKNOWLEDGE);
	mmio_write(base + VIRTIO_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
	mmio_write(base + VIRTIO_DEVICE_FEATURES_SEL, 1);
	if (!(mmio_read(base + VIRTIO_DEVICE_FEATURES) & 1)) /* bit 32: VIRTIO_F_VERSION_1 */
		return STEP_FEATURES;
	mmio_write(base + VIRTIO_DRIVER_FEATURES_SEL, 1);
	mmio_write(base + VIRTIO_DRIVER_FEATURES, 1);
	mmio_write(base + VIRTIO_DRIVER_FEATURES_SEL, 0);
	mmio_write(base + VIRTIO_DRIVER_FEATURES, 0);
	mmio_write(base + VIRTIO_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
	if (!(mmio_read(base + VIRTIO_STATUS) & STATUS_FEATURES_OK))
		return STEP_FEATURES_OK;
	return STEP_OK;
}

static u32 setup_queue(int d, u32 index)
{
	u64 base = args->base[d];
	struct queue *q = &queues[d];
	mmio_write(base + VIRTIO_QUEUE_SEL, index);
	if (mmio_read(base + VIRTIO_QUEUE_NUM_MAX) < QUEUE_SIZE)
		return STEP_QUEUE_SIZE;
	mmio_write(base + VIRTIO_QUEUE_NUM, QUEUE_SIZE);
	mmio_write(base + VIRTIO_QUEUE_DESC_LOW, (u32)(u64)q->desc);
	mmio_write(base + VIRTIO_QUEUE_DESC_HIGH, (u32)((u64)q->desc >> 32));
	mmio_write(base + VIRTIO_QUEUE_DRIVER_LOW, (u32)(u64)&q->avail);
	mmio_write(base + VIRTIO_QUEUE_DRIVER_HIGH, (u32)((u64)&q->avail >> 32));
	mmio_write(base + VIRTIO_QUEUE_DEVICE_LOW, (u32)(u64)&q->used);
	mmio_write(base + VIRTIO_QUEUE_DEVICE_HIGH, (u32)((u64)&q->used >> 32));
	mmio_write(base + VIRTIO_QUEUE_READY, 1);
	mmio_write(base + VIRTIO_STATUS,
		   STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK);
	return STEP_OK;
}

/* Make the chain at descriptor 0 available, notify, wait; the used element's length. */
static u32 submit(int d, u32 index, u32 *used_len)
{
	struct queue *q = &queues[d];
	u32 before = taken[d];
	q->avail.ring[q->next_avail % QUEUE_SIZE] = 0;
	barrier();
	q->avail.idx = ++q->next_avail;
	barrier();
	mmio_write(args->base[d] + VIRTIO_QUEUE_NOTIFY, index);
	wait_interrupt(d, before);
	barrier();
	args->status_after[d] = mmio_read(args->base[d] + VIRTIO_STATUS);
	if (q->used.idx != q->next_avail || q->used.ring[(q->next_avail - 1) % QUEUE_SIZE].id != 0)
		return STEP_USED;
	*used_len = q->used.ring[(q->next_avail - 1) % QUEUE_SIZE].len;
	return STEP_OK;
}

static u32 console_send(void)
{
	u32 step = probe(CONSOLE, CONSOLE_ID);
	if (step == STEP_OK)
		step = setup_queue(CONSOLE, CONSOLE_TRANSMITQ);
	if (step != STEP_OK)
		return step;
	struct desc *desc = queues[CONSOLE].desc;
	desc[0] = (struct desc){(u64)args->message, args->message_len, 0, 0};
	return submit(CONSOLE, CONSOLE_TRANSMITQ, &args->used_len[0]);
}

/* One block request: header, data (device-writable for IN), status byte. */
static u32 block_request(u32 type, u64 sector, u64 data, u32 *used_len, u8 *status)
{
	struct desc *desc = queues[BLOCK].desc;
	header = (struct blk_header){type, 0, sector};
	status_byte = 0xff;
	desc[0] = (struct desc){(u64)&header, sizeof(header), DESC_F_NEXT, 1};
	desc[1] = (struct desc){data, 512, (u16)(DESC_F_NEXT | (type == BLK_T_IN ? DESC_F_WRITE : 0)), 2};
	desc[2] = (struct desc){(u64)&status_byte, 1, DESC_F_WRITE, 0};
	u32 before = taken[BLOCK];
	u32 step = submit(BLOCK, 0, used_len);
	if (args->status_after[BLOCK] & STATUS_DEVICE_NEEDS_RESET)
		return taken[BLOCK] != before ? STEP_DEVICE_ERROR : STEP_USED;
	if (step != STEP_OK)
		return step;
	*status = status_byte;
	return status_byte == 0 ? STEP_OK : STEP_REQUEST_STATUS;
}

static u32 block_io(void)
{
	u32 step = probe(BLOCK, BLOCK_ID);
	if (step == STEP_OK)
		step = setup_queue(BLOCK, 0);
	if (step != STEP_OK)
		return step;
	u64 target = args->hostile_addr ? args->hostile_addr : (u64)args->read_data;
	step = block_request(BLK_T_IN, 0, target, &args->used_len[1], &args->request_status[0]);
	if (args->hostile_addr)
		return step == STEP_DEVICE_ERROR ? STEP_DEVICE_ERROR : STEP_NO_DEVICE_ERROR;
	if (step == STEP_OK)
		step = block_request(BLK_T_OUT, 1, (u64)args->write_data, &args->used_len[2],
				     &args->request_status[1]);
	u8 ignored;
	for (u32 i = 0; step == STEP_OK && i < args->repeat; i++)
		step = block_request(BLK_T_IN, 0, (u64)args->read_data, &args->used_len[3], &ignored);
	return step;
}

u32 guest_main(struct virtio_args *arguments)
{
	args = arguments;
	setup_interrupts();
	u32 step = STEP_OK;
	if (args->base[CONSOLE])
		step = console_send();
	if (step == STEP_OK && args->base[BLOCK])
		step = block_io();
	return step;
}

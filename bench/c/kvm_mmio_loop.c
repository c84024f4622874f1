/*
 * Baseline for bench/bench_kvm.py: the smallest C VMM that runs the same guest as the
 * Python benchmark and answers its MMIO reads, so the two exit loops can be compared.
 *
 * usage: kvm_mmio_loop GUEST_IMAGE ENTRY GDT PML4
 *   GUEST_IMAGE  raw bytes of guest-physical memory [0, size) (tables + code, made by the
 *                benchmark with sel4vmm's own x86_boot so both runs boot identically)
 * The guest's loop count is baked into its code.  Prints "<exits> <seconds>" for the
 * timed KVM_RUN loop.
 */
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define EXIT_PORT 0xf4

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static void set_segment(struct kvm_segment *seg, uint16_t selector, int code)
{
	memset(seg, 0, sizeof(*seg));
	seg->limit = 0xffffffff;
	seg->selector = selector;
	seg->type = code ? 0xb : 0x3;
	seg->present = 1;
	seg->s = 1;
	seg->l = code;
	seg->db = !code;
	seg->g = 1;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: %s GUEST_IMAGE ENTRY GDT PML4\n", argv[0]);
		return 2;
	}
	uint64_t entry = strtoull(argv[2], NULL, 0);
	uint64_t gdt = strtoull(argv[3], NULL, 0);
	uint64_t pml4 = strtoull(argv[4], NULL, 0);

	int image = open(argv[1], O_RDONLY);
	if (image < 0)
		die("open image");
	struct stat st;
	fstat(image, &st);
	size_t mem_size = (st.st_size + 0x1fffff) & ~0x1fffffUL;
	uint8_t *mem = mmap(NULL, mem_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED || read(image, mem, st.st_size) != st.st_size)
		die("load image");

	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		die("/dev/kvm");
	int vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		die("KVM_CREATE_VM");
	uint64_t identity = 0xfffbc000;
	if (ioctl(vm, KVM_SET_IDENTITY_MAP_ADDR, &identity) < 0 || ioctl(vm, KVM_SET_TSS_ADDR, 0xfffbd000UL) < 0 ||
	    ioctl(vm, KVM_CREATE_IRQCHIP, 0) < 0)
		die("VM setup");
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
	if (ioctl(vm, KVM_CREATE_PIT2, &pit) < 0)
		die("KVM_CREATE_PIT2");
	struct kvm_userspace_memory_region region = {
		.slot = 0, .guest_phys_addr = 0, .memory_size = mem_size, .userspace_addr = (uint64_t)mem,
	};
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		die("KVM_SET_USER_MEMORY_REGION");
	int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0)
		die("KVM_CREATE_VCPU");
	int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	struct kvm_run *run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	if (run == MAP_FAILED)
		die("mmap kvm_run");

	struct {
		struct kvm_cpuid2 header;
		struct kvm_cpuid_entry2 entries[256];
	} cpuid = { .header.nent = 256 };
	if (ioctl(kvm, KVM_GET_SUPPORTED_CPUID, &cpuid) < 0 || ioctl(vcpu, KVM_SET_CPUID2, &cpuid) < 0)
		die("CPUID");

	struct kvm_sregs sregs;
	if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0)
		die("KVM_GET_SREGS");
	set_segment(&sregs.cs, 0x10, 1);
	set_segment(&sregs.ds, 0x18, 0);
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
	memset(&sregs.tr, 0, sizeof(sregs.tr));
	sregs.tr.selector = 0x20;
	sregs.tr.limit = 0x67;
	sregs.tr.type = 0xb;
	sregs.tr.present = 1;
	sregs.gdt.base = gdt;
	sregs.gdt.limit = 5 * 8 - 1;
	sregs.idt.base = 0;
	sregs.idt.limit = 0;
	sregs.cr0 = 0x80010033;
	sregs.cr3 = pml4;
	sregs.cr4 = 0x620;
	sregs.efer = 0x500;
	if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0)
		die("KVM_SET_SREGS");
	struct kvm_regs regs = { .rip = entry, .rflags = 2 };
	if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0)
		die("KVM_SET_REGS");

	uint64_t exits = 0;
	struct timespec start, end;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		if (ioctl(vcpu, KVM_RUN, 0) < 0)
			die("KVM_RUN");
		exits++;
		if (run->exit_reason == KVM_EXIT_MMIO) {
			if (!run->mmio.is_write) {
				uint64_t value = run->mmio.phys_addr;
				memcpy(run->mmio.data, &value, run->mmio.len);
			}
			continue;
		}
		if (run->exit_reason == KVM_EXIT_IO && run->io.port == EXIT_PORT)
			break;
		fprintf(stderr, "unexpected exit %u\n", run->exit_reason);
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &end);
	printf("%llu %.9f\n", (unsigned long long)exits,
	       (end.tv_sec - start.tv_sec) + (end.tv_nsec - start.tv_nsec) / 1e9);
	return 0;
}

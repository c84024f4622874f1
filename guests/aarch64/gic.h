/*
 * The GICv2 the guests see on qemu virt: the distributor the VMM emulates through
 * faults, and the CPU interface (the vCPU interface passed through at GICC's address).
 * Register offsets from the GICv2 architecture specification.
 */
#ifndef SEL4VMM_GUEST_GIC_H
#define SEL4VMM_GUEST_GIC_H

#define GICD_BASE 0x08000000UL
#define GICC_BASE 0x08010000UL
#define GICD_CTLR 0x000
#define GICD_TYPER 0x004
#define GICD_ISENABLER 0x100
#define GICD_IPRIORITYR 0x400
#define GICD_ITARGETSR 0x800
#define GICD_SGIR 0xf00
#define GICC_CTLR 0x000
#define GICC_PMR 0x004
#define GICC_IAR 0x00c
#define GICC_EOIR 0x010

#endif

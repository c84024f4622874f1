#!/bin/sh
# Build the x86_64 test guests with the host gcc: static ELF executables linked at 1 MiB,
# entered by sel4vmm in 64-bit mode (probe.elf: at 256 KiB, by the Linux boot protocol).
# Usage: build.sh OUTPUT_DIR  (the tests call this).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/build}
mkdir -p "$out"
CC=${CC:-gcc}
CFLAGS="-O2 -ffreestanding -fno-pic -fno-pie -fno-stack-protector -fcf-protection=none \
 -mno-red-zone -mgeneral-regs-only -fno-asynchronous-unwind-tables -Wall -Wextra -Werror"
for guest in script virtio; do
	$CC $CFLAGS -nostdlib -static -no-pie -Wl,--build-id=none -T "$here/guest.ld" \
		-o "$out/$guest.elf" "$here/start.S" "$here/$guest.c"
done
# The RAM probe has its own link address (probe.ld says why).
$CC $CFLAGS -nostdlib -static -no-pie -Wl,--build-id=none -T "$here/probe.ld" \
	-o "$out/probe.elf" "$here/start.S" "$here/probe.c"

#!/bin/sh
# Build the AArch64 test guests reproducibly into src/sel4vmm/data/guests/aarch64/.
#
# Reproducible: fixed flags, no build id, file paths mapped to a constant prefix, the C
# locale and a fixed SOURCE_DATE_EPOCH, so the committed binaries can be rebuilt and
# compared byte for byte (tests/backends/unicorn/test_guests.py does so).
#
# Usage: guests/aarch64/build.sh [OUTPUT_DIR]
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-"$HERE/../../src/sel4vmm/data/guests/aarch64"}
CC=${CROSS_COMPILE:-aarch64-linux-gnu-}gcc
OBJCOPY=${CROSS_COMPILE:-aarch64-linux-gnu-}objcopy
export LC_ALL=C SOURCE_DATE_EPOCH=0 TZ=UTC
CFLAGS="-ffreestanding -nostdlib -O2 -fno-pie -no-pie -mgeneral-regs-only -mstrict-align \
 -fno-stack-protector -fno-asynchronous-unwind-tables -fno-ident -std=c11 -Wall -Wextra \
 -ffile-prefix-map=$HERE=guests/aarch64"
LDFLAGS="-static -Wl,--build-id=none -Wl,-T,$HERE/guest.ld -Wl,--no-warn-rwx-segments"
mkdir -p "$OUT"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
for guest in hello memtest gictimer dma badaccess smp share; do
    # Objects get fixed names: the linker records them in the ELF symbol table.
    for src in start.S runtime.c "$guest.c"; do
        # shellcheck disable=SC2086
        (cd "$TMP" && $CC $CFLAGS -c -o "${src%.*}.o" "$HERE/$src")
    done
    # shellcheck disable=SC2086
    (cd "$TMP" && $CC $CFLAGS $LDFLAGS -o "$guest.elf" start.o runtime.o "$guest.o")
    $OBJCOPY -O binary "$TMP/$guest.elf" "$OUT/$guest.bin"
    cp "$TMP/$guest.elf" "$OUT/$guest.elf"
done

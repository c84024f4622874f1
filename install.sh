#!/usr/bin/env bash
# Set up everything sel4vmm needs on a Debian 12 machine, as root:
#  - Debian packages: QEMU for aarch64, the aarch64 cross compiler (rebuilds the test
#    guests), dtc/fdtoverlay, busybox-static (initramfs), the x86_64 Debian kernel
#    (KVM boot-path test), cpio (to cross-check our cpio writer), build-essential and
#    python3-dev (the optional C extensions in sel4vmm/native and the x86_64 test guests),
#    chromium (the test of plan --html opens the page in headless Chromium);
#  - Debian's arm64 kernel and busybox (downloaded, not installed) into .cache/debian-arm64
#    for the real Linux boot on QEMU;
#  - the Python package with its test dependencies.
set -euo pipefail
cd "$(dirname "$0")"

export DEBIAN_FRONTEND=noninteractive
APT_PACKAGES=(
    qemu-system-arm gcc-aarch64-linux-gnu device-tree-compiler busybox-static
    linux-image-amd64 cpio build-essential python3-dev chromium
)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Debian's arm64 kernel and busybox, for booting a real Linux on QEMU from sel4vmm's RAM.
ARM64_DIR=.cache/debian-arm64
if [ ! -e "$ARM64_DIR/.done" ]; then
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
        dpkg --add-architecture arm64
        apt-get update -qq
    fi
    mkdir -p "$ARM64_DIR/debs"
    (cd "$ARM64_DIR/debs" && apt-get download -qq linux-image-arm64:arm64 busybox-static:arm64 \
        || { apt-get update -qq && apt-get download -qq linux-image-arm64:arm64 busybox-static:arm64; })
    # linux-image-arm64 is a metapackage: fetch the versioned image it depends on.
    image_pkg=$(dpkg-deb -f "$ARM64_DIR"/debs/linux-image-arm64_*.deb Depends \
        | tr ',' '\n' | grep -o 'linux-image-[0-9][^ ]*' | head -n1)
    (cd "$ARM64_DIR/debs" && apt-get download -qq "${image_pkg}:arm64")
    rm -rf "$ARM64_DIR/root"
    for deb in "$ARM64_DIR"/debs/*.deb; do
        dpkg-deb -x "$deb" "$ARM64_DIR/root"
    done
    touch "$ARM64_DIR/.done"
fi

# A fresh Debian has python3 but not always pip.
if ! python3 -m pip --version >/dev/null 2>&1; then
    apt-get update -qq
    apt-get install -y -qq python3-pip >/dev/null
fi

PIP=(python3 -m pip install -q --disable-pip-version-check)
if ! "${PIP[@]}" -e '.[test]' 2>/tmp/sel4vmm-pip.err; then
    if grep -q externally-managed /tmp/sel4vmm-pip.err; then
        "${PIP[@]}" --break-system-packages -e '.[test]'
    else
        cat /tmp/sel4vmm-pip.err >&2
        exit 1
    fi
fi
